"""The embedded default detector `motion`: background subtraction learned over one clip, no weights.

For the sampled frames of ONE clip (static camera assumed; clips with camera motion are filtered upstream):

1. Work at reduced resolution (`work_width`), lightly blurred against compression noise.
2. Background = per-pixel temporal median of the clip's frames (up to `bg_max_frames`, evenly spread).
   Anything that moves covers a given pixel for less than half the clip, so the median is the static scene.
   Global brightness changes (auto exposure) are undone per frame first (`exposure`, `_equalize_exposure`).
3. Foreground = colour difference to the background (max over R, G, B) above a per-pixel threshold: the larger
   of `min_diff` and `noise_k` x the noise, where the noise is the larger of the clip's global level and the
   pixel's own (lower quartile of its frame-to-frame changes: high only where the scene flickers).
   Ghosts (background revealed where an object sat for most of the clip, recognised by an outline that is an
   edge of the background image, not of the frame) take the frame's pixels as background, and 3 is redone.
4. Morphology (open; close with a vertically elongated kernel; holes filled) and connected components.
5. Merged blobs are split where the mask shows it: first at heads (`_head_parts`: local maxima of the blob's
   upper contour standing out from it on both sides within a person's width; each head gives a person box
   `person_aspect` x its height wide, from the head down to the blob's bottom under it), kept only when the
   heads' boxes cover most of the blob and every part passes a lenient HOG person check (`head_hog`), and
   never for blobs cut by the frame's top edge or covering much of the frame. Otherwise wide blobs are scanned by
   OpenCV's HOG people detector (a few scales, inside the blob only; a blob followed from frame to frame on every
   `hog_every`-th frame of its chain, `_scan_wide`) and cut between the people it finds; otherwise at deep
   valleys of the blob's column profile (foreground pixels per column). Small fragments right above / below a
   larger blob (a head, feet) are joined to it.
6. Each blob gets a score in [0, 1] from four cues (see `_score`): foreground strength, fill of its box,
   size, and persistence (a blob at the same place on the neighbouring frames); x `border_penalty` when it
   touches the frame's edge (cut off, so its box is not the object's). Clean, solid, persistent blobs score
   about 0.8-1.0; fragments and flicker stay below ByteTrack's high threshold (0.6).
7. Label `person` when the linear SVM of OpenCV's `getDefaultPeopleDetector` (w.x + b on the HOG descriptor)
   scores the blob's crop, fitted into the 64x128 window with the window's margins, above `person_threshold`;
   else `object`. `extra["person_score"]` = sigmoid(margin - person_threshold), > 0.5 exactly for `person`.

Deterministic (no randomness), no state kept between calls. Clips of fewer than 3 frames give empty
Detections: a background cannot be told from a moving object with fewer frames.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence

import cv2
import numpy as np

from fm_assets.labels.masks import rle_of_crop
from fm_assets.labels.plots import shrink
from fm_assets.labels.types import Detections

_HOG_WIN = (64, 128)  # OpenCV default people detector window (w, h)
_HOG_PERSON_H = 96.0  # a person's height inside that window (INRIA training crops: 16 px margins)


class MotionDetector:
    """Background-subtraction detector over one clip (see the module docstring).

    Parameters (sizes are fractions of the frame so they hold at any resolution):
        work_width: process at this width (px); smaller frames are used as they are.
        bg_max_frames: at most this many frames (evenly spread over the clip) build the median background
            (and the noise estimate).
        min_diff: lowest foreground threshold on the colour difference to the background (0-255).
        noise_k: the threshold is at least noise_k x the noise level (global and per pixel).
        min_area: smallest blob kept, as a fraction of the frame area.
        split: split merged blobs at valleys of their column profile (when the HOG scan does not split them).
        split_valley: a valley splits when it is below this fraction of the lower of its two flanking peaks.
        split_min_width: each part of a split is at least this fraction of the blob's height wide.
        person_threshold: HOG SVM margin above which a blob is labelled `person`.
        hog: run the HOG person check at all (False: every blob is `object`, person_score 0).
        hog_split: scan blobs wider than `hog_split_aspect` x their height with the HOG people detector
            (a few scales, inside the blob only) and, when it finds two or more people, cut the blob into them.
        hog_split_aspect: width / height above which a blob may hold several people (one walking person,
            legs apart, is about 0.4-0.6).
        hog_min_person: smallest person the scan looks for, as a fraction of the blob's height.
        hog_hit: SVM margin a scanned window needs to count as a person.
        masks: return COCO RLE masks (pycocotools, counts as str) at the frame's resolution.
        persistence_window: neighbouring frames on each side that the persistence cue looks at (a blob there
            is the same object when it overlaps, or has its size within 2x and lies within its own size per
            frame of it: a small fast object does not overlap itself from frame to frame).
        merge: join a small fragment to the larger blob right above or below it (a head, feet, legs that the
            threshold cut off the body).
        ghosts: find "ghosts" (background revealed where an object sat for most of the clip: their outline
            is an edge of the background, not of the frame), take the frame's pixels there as background and
            subtract again, so objects that stand still for long and then move (or the reverse) are found.
        border_penalty: score factor for blobs touching the frame's edge (the object is cut off, so its box
            is not the object's extent).
        head_split: split merged blobs at the heads of their upper contour (see step 5).
        shadows: a pixel darker than the background by a factor in `shadow_ratio`, equally in R, G and B (within
            `shadow_chroma`), where the background's texture shows through (local correlation of the frame's and
            the background's grey levels >= `shadow_texture`) is a cast shadow, not foreground.
        person_aspect: a pedestrian's box width / height (0.41: the usual pedestrian-benchmark aspect).
        head_drop: a head stands out from the contour on both sides by at least this fraction of its height.
        head_gap: heads closer than head_gap x a person's width are one person (the higher kept).
        head_cover: the heads' person boxes must hold at least this fraction of the blob's pixels.
        head_hog: every part of a head split needs a HOG margin (`hog_margin`) above this (lenient).
        exposure: undo global brightness changes (auto exposure, white balance) frame by frame (step 2b).
        exposure_tol: per-channel gains within 1 +- this are left alone.
        hog_every: a blob followed from frame to frame (each the other's best match, IoU > 0.5) gets the person
            check on every `hog_every`-th frame of that chain (and its last), the frames between take the nearest
            check's margin (1: every blob of every frame is checked). The same for the scan of wide blobs for
            people side by side (`hog_split`), where a frame next to a scan that found a group is scanned too.
    """

    name = "motion"
    parallel_clips = True  # detect_clip keeps no state between calls: clips may be detected in threads
    # the largest frame (longer side, px) this detector gains from; the detection pass gives it no larger ones
    # (DetectionParams.max_side still caps it lower). Its masks and boxes come from `work_width` (320); only the
    # HOG person checks (crops brought to a 96 px person) and the boxes' colours read the frame itself. A clip's
    # frames are held in memory until it is detected (up to 100 sampled frames; a clip per worker in flight
    # and the one being read), so for HD video a 960 px frame instead of a 1280 px one is half the memory.
    max_side = 960

    def __init__(
        self,
        work_width: int = 320,
        bg_max_frames: int = 31,
        min_diff: float = 21.0,
        noise_k: float = 4.0,
        min_area: float = 0.0015,
        split: bool = True,
        split_valley: float = 0.6,
        split_min_width: float = 0.2,
        person_threshold: float = 0.25,
        hog: bool = True,
        hog_split: bool = True,
        hog_split_aspect: float = 0.6,
        hog_min_person: float = 0.6,
        hog_hit: float = 0.3,
        masks: bool = True,
        persistence_window: int = 2,
        merge: bool = True,
        ghosts: bool = True,
        border_penalty: float = 0.75,
        head_split: bool = True,
        person_aspect: float = 0.41,
        head_drop: float = 0.06,
        head_gap: float = 0.5,
        head_cover: float = 0.75,
        head_hog: float = -1.5,
        exposure: bool = True,
        exposure_tol: float = 0.03,
        hog_every: int = 4,
        shadows: bool = True,
        shadow_ratio: tuple[float, float] = (0.55, 0.92),
        shadow_chroma: float = 0.05,
        shadow_texture: float = 0.6,
    ) -> None:
        self.work_width = int(work_width)
        self.bg_max_frames = int(bg_max_frames)
        self.min_diff = float(min_diff)
        self.noise_k = float(noise_k)
        self.min_area = float(min_area)
        self.split = bool(split)
        self.split_valley = float(split_valley)
        self.split_min_width = float(split_min_width)
        self.person_threshold = float(person_threshold)
        self.hog = bool(hog)
        self.hog_split = bool(hog_split)
        self.hog_split_aspect = float(hog_split_aspect)
        self.hog_min_person = float(hog_min_person)
        self.hog_hit = float(hog_hit)
        self.masks = bool(masks)
        self.persistence_window = int(persistence_window)
        self.merge = bool(merge)
        self.ghosts = bool(ghosts)
        self.border_penalty = float(border_penalty)
        self.head_split = bool(head_split)
        self.person_aspect = float(person_aspect)
        self.head_drop = float(head_drop)
        self.head_gap = float(head_gap)
        self.head_cover = float(head_cover)
        self.head_hog = float(head_hog)
        self.exposure = bool(exposure)
        self.exposure_tol = float(exposure_tol)
        self.hog_every = max(1, int(hog_every))
        self.shadows = bool(shadows)
        self.shadow_ratio = (float(shadow_ratio[0]), float(shadow_ratio[1]))
        self.shadow_chroma = float(shadow_chroma)
        self.shadow_texture = float(shadow_texture)
        self._local = threading.local()  # OpenCV HOG objects per thread (clips may be detected in threads)
        svm = np.asarray(cv2.HOGDescriptor.getDefaultPeopleDetector(), np.float32).reshape(-1)
        self._svm_w, self._svm_b = svm[:-1], float(svm[-1])

    def __getstate__(self) -> dict:  # sent to a worker process: the parameters, not this thread's HOG objects
        return {k: v for k, v in self.__dict__.items() if k != "_local"}

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    # ------------------------------------------------------------------------------------------------
    def detect_clip(self, frames: Sequence[np.ndarray]) -> list[Detections]:
        frames = list(frames)
        n = len(frames)
        if n < 3:
            return [Detections.empty() for _ in range(n)]
        full_h, full_w = frames[0].shape[:2]
        scale = min(1.0, self.work_width / full_w)
        w, h = max(8, round(full_w * scale)), max(8, round(full_h * scale))
        sx, sy = full_w / w, full_h / h

        # 1. reduced, lightly blurred frames
        small = np.empty((n, h, w, 3), np.uint8)
        for i, f in enumerate(frames):
            small[i] = cv2.GaussianBlur(shrink(f, w, h), (3, 3), 0)

        # 2. background: per-pixel temporal median of (a spread subset of) the clip
        pick = np.unique(np.linspace(0, n - 1, min(n, self.bg_max_frames)).round().astype(int))
        bg = np.median(small[pick], axis=0).astype(np.int16)
        # 2b. exposure: a camera's auto exposure / white balance scales the whole frame (a white car entering
        # darkens everything). Each frame's per-channel gain against the background is the median pixel ratio
        # (moving objects cover well under half the frame); frames are divided by it and the background redone.
        if self.exposure and _equalize_exposure(small, bg, self.exposure_tol):
            bg = np.median(small[pick], axis=0).astype(np.int16)

        # 3. colour difference to the background, thresholded against the noise (global + per pixel)
        diff, thr = self._difference(small, bg, pick)
        min_area_px = max(4.0, self.min_area * w * h)

        # 3b. ghosts: where something sat still for most of the clip and then left (or arrived late), the median
        # holds the object and the revealed background shows up as a blob. A ghost's outline is an edge of the
        # background image, not of the frame: such regions take the frame's pixels as background, then redo 3.
        comps: list[list[tuple[int, int, np.ndarray]]] | None = None  # each frame's components, when found here
        if self.ghosts:
            bg_grad = _grad(bg.astype(np.uint8))
            acc, cnt = np.zeros((h, w, 3), np.float32), np.zeros((h, w), np.float32)
            comps = []
            for i in range(n):
                f_grad = None
                comps.append(self._components(diff[i], thr, min_area_px))
                for x, y, m in comps[i]:
                    if m.shape[0] * m.shape[1] > 0.3 * w * h:
                        continue  # a change over much of the frame (light, camera) is not a revealed background
                    if f_grad is None:
                        f_grad = _grad(small[i])
                    if _is_ghost(m, x, y, f_grad, bg_grad):
                        sl = (slice(y, y + m.shape[0]), slice(x, x + m.shape[1]))
                        acc[sl][m > 0] += small[i][sl][m > 0]
                        cnt[sl][m > 0] += 1
            if cnt.any():
                bg = np.where(cnt[..., None] > 0, acc / np.maximum(cnt, 1)[..., None], bg).round().astype(np.int16)
                diff, thr = self._difference(small, bg, pick)
                comps = None  # a new background: its components are found again below

        # 4-5. components -> split at heads; the wide blobs left are scanned for people side by side
        if comps is None:
            comps = [self._components(diff[i], thr, min_area_px) for i in range(n)]
        split: list[list[list[tuple[int, int, np.ndarray]] | None]] = []
        wide: list[list[int]] = []  # per frame: its blobs that the HOG scan may split
        for i in range(n):
            split.append([])
            wide.append([])
            for j, (x, y, m) in enumerate(comps[i]):
                bh, bw = m.shape
                parts = None
                # a blob cut by the frame's top edge has no visible heads; one covering much of the frame is a
                # global change (light, camera), not a group of people
                if self.head_split and y > 0 and bh * bw <= 0.3 * w * h:
                    parts = self._head_parts(m, x, y, sy / sx, min_area_px)
                    if parts is not None and self.hog and not self._people(frames[i], parts, sx, sy):
                        parts = None
                if parts is None and self.hog and self.hog_split and bw > self.hog_split_aspect * bh * sy / sx:
                    wide[i].append(j)
                split[i].append(parts)
        self._scan_wide(frames, comps, split, wide, sx, sy, min_area_px)

        # per blob: box (work px), mask crop, cues
        per_frame: list[list[dict]] = []
        for i in range(n):
            strength = diff[i] / thr
            blobs = []
            for (x, y, m), parts in zip(comps[i], split[i]):
                bh, bw = m.shape
                if parts is None:
                    ranges = self._split(m) if self.split else [(0, bw)]
                    parts = [(x + c0, y, m[:, c0:c1]) for c0, c1 in ranges]
                for px, py, pm in parts:
                    rows = np.flatnonzero(pm.any(axis=1))
                    cols = np.flatnonzero(pm.any(axis=0))
                    if len(rows) == 0:
                        continue
                    pm = pm[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
                    px, py = px + cols[0], py + rows[0]
                    parea = int(pm.sum())
                    if parea < min_area_px:
                        continue
                    s_crop = strength[py : py + pm.shape[0], px : px + pm.shape[1]]
                    blobs.append(
                        {"box": (px, py, px + pm.shape[1], py + pm.shape[0]), "mask": pm, "area": parea,
                             "strength": _median(s_crop[pm > 0]), "fill": parea / pm.size}
                    )
            per_frame.append(self._merge_fragments(blobs) if self.merge else blobs)

        # 6. persistence over neighbouring frames, then scores
        boxes_w = [np.array([b["box"] for b in bl], np.float32).reshape(-1, 4) for bl in per_frame]
        checked = _chain_checks(boxes_w, self.hog_every) if self.hog else {}
        margin_cache: dict[tuple[int, int], float] = {}

        def margin_of(i: int, j: int, box: np.ndarray) -> float:
            """HOG margin of blob j of frame i: measured on the frame of its chain that `checked` names."""
            ci, cj = checked.get((i, j), (i, j))
            if (ci, cj) not in margin_cache:
                cb = box if (ci, cj) == (i, j) else boxes_w[ci][cj] * np.array([sx, sy, sx, sy], np.float32)
                cb = cb.copy()
                cb[[0, 2]], cb[[1, 3]] = cb[[0, 2]].clip(0, full_w), cb[[1, 3]].clip(0, full_h)
                margin_cache[(ci, cj)] = self.hog_margin(frames[ci], cb)
            return margin_cache[(ci, cj)]

        out: list[Detections] = []
        for i, blobs in enumerate(per_frame):
            if not blobs:
                out.append(Detections.empty())
                continue
            persist = self._persistence(boxes_w, i)
            scores = np.array(
                [self._score(b, p, min_area_px) for b, p in zip(blobs, persist)], np.float32
            )
            bxw = boxes_w[i]
            at_edge = (bxw[:, 0] <= 0) | (bxw[:, 1] <= 0) | (bxw[:, 2] >= w) | (bxw[:, 3] >= h)
            scores = np.where(at_edge, scores * self.border_penalty, scores).astype(np.float32)
            boxes = bxw * np.array([sx, sy, sx, sy], np.float32)
            boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, full_w)
            boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, full_h)
            # 7. person check on the full-resolution frame (a followed blob: on every hog_every-th frame only)
            if self.hog:
                margins = np.array([margin_of(i, j, bx) for j, bx in enumerate(boxes)], np.float32)
                z = np.clip(margins - self.person_threshold, -30, 30)
                pscore = (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
                labels = ["person" if mg > self.person_threshold else "object" for mg in margins]
            else:
                pscore, labels = np.zeros(len(blobs), np.float32), ["object"] * len(blobs)
            crops = [self._crop(b, full_w, full_h, sx, sy) for b in blobs] if self.masks else None
            masks = [rle_of_crop(crop, x, y, full_h, full_w) for x, y, crop in crops] if crops is not None else None
            out.append(Detections(boxes, scores, labels, masks, extra={"person_score": pscore}, mask_crops=crops))
        return out

    # ------------------------------------------------------------------------------------------------
    def _difference(self, small: np.ndarray, bg: np.ndarray, pick: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per frame max-over-channels |frame - background| (uint8) and the per-pixel threshold (float32)."""
        bg8 = bg.astype(np.uint8)
        diff = np.empty(small.shape[:3], np.uint8)
        shadow = _Shadows(bg8, self.shadow_ratio, self.shadow_chroma, self.shadow_texture) if self.shadows else None
        for i in range(len(small)):
            diff[i] = _max3(cv2.absdiff(small[i], bg8))
            if shadow is not None:
                # only pixels that could be foreground (above the lowest threshold) are tested
                diff[i].reshape(-1)[shadow.pixels(small[i], np.flatnonzero(diff[i].reshape(-1) > self.min_diff))] = 0
        # a pixel's noise from the lower quartile of its frame-to-frame changes: low for static background and
        # for slowly moving objects, high only where the scene itself flickers (screens, foliage, water).
        # For |N(0, sigma * sqrt(2))|, the 25th percentile is 0.45 sigma.
        nxt = np.minimum(pick + 1, len(small) - 1)
        nxt[nxt == pick] = np.maximum(pick[nxt == pick] - 1, 0)
        step = np.stack([_max3(cv2.absdiff(small[a], small[b])) for a, b in zip(pick, nxt)])
        q = max(0, (len(pick) - 1) // 4)
        pixel_noise = np.partition(step, q, axis=0)[q] / 0.45
        global_noise = float(np.median(pixel_noise))
        thr = np.maximum(self.min_diff, self.noise_k * np.maximum(pixel_noise, global_noise)).astype(np.float32)
        return diff, thr

    def _components(self, diff: np.ndarray, thr: np.ndarray, min_area_px: float) -> list[tuple[int, int, np.ndarray]]:
        """Foreground of one frame -> opened, closed (vertically elongated kernel), holes filled -> connected
        components of at least min_area_px, as (x, y, mask crop)."""
        h = diff.shape[0]
        fg = (diff > thr).astype(np.uint8)
        fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, _K_OPEN)
        kc = max(3, int(round(h / 60)) | 1)
        fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (kc, 2 * kc + 1)))
        n_cc, cc, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
        out = []
        for c in range(1, n_cc):
            x, y, bw, bh, area = stats[c]
            if area < min_area_px:
                continue
            m = (cc[y : y + bh, x : x + bw] == c).astype(np.uint8)
            # fill holes: whatever the crop's border cannot reach through background is inside the blob
            pad = np.pad(m, 1)
            reach = pad.copy()
            cv2.floodFill(reach, None, (0, 0), 1)
            m = (pad | (1 - reach))[1:-1, 1:-1].astype(np.uint8)
            out.append((int(x), int(y), m))
        return out

    @staticmethod
    def _merge_fragments(blobs: list[dict]) -> list[dict]:
        """Join each small blob to a larger one directly above or below it (mostly inside its columns, with a
        vertical gap under 15% of the larger one's height), largest first, until nothing changes."""
        blobs = sorted(blobs, key=lambda b: -b["area"])
        changed = True
        while changed:
            changed = False
            for i, big in enumerate(blobs):
                bx1, by1, bx2, by2 = big["box"]
                for j in range(len(blobs) - 1, i, -1):
                    sm = blobs[j]
                    sx1, sy1, sx2, sy2 = sm["box"]
                    if sm["area"] > 0.4 * big["area"]:
                        continue
                    overlap = min(bx2, sx2) - max(bx1, sx1)
                    gap = max(sy1 - by2, by1 - sy2)
                    if overlap < 0.6 * (sx2 - sx1) or gap > 0.15 * (by2 - by1):
                        continue
                    ux1, uy1, ux2, uy2 = min(bx1, sx1), min(by1, sy1), max(bx2, sx2), max(by2, sy2)
                    mask = np.zeros((uy2 - uy1, ux2 - ux1), np.uint8)
                    for b in (big, sm):
                        x1, y1, x2, y2 = b["box"]
                        mask[y1 - uy1 : y2 - uy1, x1 - ux1 : x2 - ux1] |= b["mask"]
                    area = int(mask.sum())
                    big = {"box": (ux1, uy1, ux2, uy2), "mask": mask, "area": area, "fill": area / mask.size,
                               "strength": (big["strength"] * big["area"] + sm["strength"] * sm["area"])
                               / (big["area"] + sm["area"])}
                    blobs[i] = big
                    bx1, by1, bx2, by2 = big["box"]
                    del blobs[j]
                    changed = True
        return blobs

    def _scan_wide(self, frames: list[np.ndarray], comps: list[list[tuple[int, int, np.ndarray]]],
                   split: list[list[list[tuple[int, int, np.ndarray]] | None]], wide: list[list[int]],
                   sx: float, sy: float, min_area_px: float) -> None:
        """The HOG scan for people side by side (`_hog_parts`) of the wide blobs (`wide[i]`: indices into
        comps[i]), written into split[i][j]. A wide blob followed from frame to frame (`_chain_checks`: each the
        other's best match, IoU > 0.5) is scanned on every `hog_every`-th frame of that chain and its last; a
        frame between takes the nearest scan's answer when that found no group, and is scanned itself when it
        found one (a group's frames are all cut where their own people are). One scan costs a few HOG passes
        over the blob's region at four scales, and finds a group in few blobs: on footage with many wide blobs
        (a moving camera, vehicles, objects handled) it was most of the detector's time."""
        boxes = [np.array([(x, y, x + m.shape[1], y + m.shape[0]) for x, y, m in (comps[i][j] for j in idx)],
                          np.float32).reshape(-1, 4) for i, idx in enumerate(wide)]
        stands_for = _chain_checks(boxes, self.hog_every)
        scanned: dict[tuple[int, int], list[tuple[int, int, np.ndarray]] | None] = {}

        def scan(i: int, k: int) -> list[tuple[int, int, np.ndarray]] | None:
            if (i, k) not in scanned:
                x, y, m = comps[i][wide[i][k]]
                scanned[(i, k)] = self._hog_parts(frames[i], m, x, y, sx, sy, min_area_px)
            return scanned[(i, k)]

        for i, idx in enumerate(wide):
            for k, j in enumerate(idx):
                split[i][j] = scan(i, k) if scan(*stands_for[(i, k)]) is not None else None

    def _hog_parts(self, frame: np.ndarray, m: np.ndarray, x: int, y: int, sx: float, sy: float,
                   min_area_px: float) -> list[tuple[int, int, np.ndarray]] | None:
        """People in blob mask `m` (work px, top-left at x, y) found by a small multi-scale HOG scan of the blob's
        region of the full-resolution frame; None unless at least two are found. Each person is returned as the
        blob's mask cut to the person's box (x, y, mask crop); a large remainder outside them is kept too."""
        bh, bw = m.shape
        fx1, fy1, fbw, fbh = x * sx, y * sy, bw * sx, bh * sy  # blob box, full-res px
        found = []  # (score, x1, y1, x2, y2) person boxes in full-res px
        ww, wh = _HOG_WIN
        for rel in np.geomspace(1.0, self.hog_min_person, 4):
            ph = rel * fbh  # person height scanned at this scale
            f = _HOG_PERSON_H / ph
            mx, my = 0.3 * ph, (wh / _HOG_PERSON_H - 1) / 2 * ph + 4 / f
            ox, oy = fx1 - mx, fy1 - my
            out_w, out_h = int(round((fbw + 2 * mx) * f)), int(round((fbh + 2 * my) * f))
            if out_w < ww or out_h < wh:
                continue
            mat = np.float32([[f, 0, -f * ox], [0, f, -f * oy]])
            img = cv2.warpAffine(frame, mat, (out_w, out_h), flags=cv2.INTER_AREA if f < 1 else cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            locs, weights = self._hog_detector().detect(img, hitThreshold=self.hog_hit, winStride=(8, 8))
            for (lx, ly), wgt in zip(np.asarray(locs).reshape(-1, 2), np.asarray(weights).reshape(-1)):
                # the person inside the window: 96 px high, centred, ~0.4 x its height wide
                cx, top = ox + (lx + ww / 2) / f, oy + (ly + (wh - _HOG_PERSON_H) / 2) / f
                found.append((float(wgt), cx - 0.2 * ph, top, cx + 0.2 * ph, top + ph))
        if len(found) < 2:
            return None
        found.sort(key=lambda r: -r[0])
        keep: list[np.ndarray] = []
        for r in found:  # greedy NMS; also drop a box mostly inside a better one
            b = np.array(r[1:], np.float32)
            if keep:
                kb = np.stack(keep)
                inter = _inter(b[None], kb)[0]
                area = (b[2] - b[0]) * (b[3] - b[1])
                if (_iou(b[None], kb)[0] > 0.3).any() or (inter / area > 0.6).any():
                    continue
            keep.append(b)
        if len(keep) < 2:
            return None
        # every blob pixel goes to the nearest person (horizontal distance in person widths, plus a penalty
        # outside the person's rows), so the split leaves no stray head / feet fragments
        rows = np.arange(bh, dtype=np.float32)[:, None]
        cols = np.arange(bw, dtype=np.float32)[None, :]
        cost = []
        for b in keep:
            pw, ph = (b[2] - b[0]) / sx, (b[3] - b[1]) / sy
            pcx, r0, r1 = (b[0] + b[2]) / 2 / sx - x, b[1] / sy - y - 0.1 * ph, b[3] / sy - y + 0.1 * ph
            outside = ((rows < r0) | (rows > r1)).astype(np.float32)
            cost.append(np.abs(cols - pcx) / max(pw, 1.0) + outside)
        owner = np.argmin(np.stack(cost), axis=0)
        parts = [(x, y, (m & (owner == k)).astype(np.uint8)) for k in range(len(keep))]
        parts = [p for p in parts if p[2].sum() >= min_area_px]
        return parts if len(parts) >= 2 else None

    def _head_parts(self, m: np.ndarray, x: int, y: int, aspect_scale: float,
                    min_area_px: float) -> list[tuple[int, int, np.ndarray]] | None:
        """People in blob mask `m` (work px, top-left at x, y) found as heads: local maxima of the silhouette's
        upper contour that stand out (by `head_drop` x the person's height) from the contour on both sides within
        a person's width, the shape of a head above the shoulders (a disc's or a box's top has none). Each head
        gives a person box `person_aspect` x its height wide (work px: x `aspect_scale` = sy / sx), centred under
        the head, from the head down to the lowest blob pixel below it; the blob's pixels go to the nearest
        person box that holds them (so parts never overlap); a large remainder outside them is kept as a part.
        None unless at least two heads are found."""
        bh, bw = m.shape
        if bh < 16:
            return None
        filled = m.any(axis=0)
        top = np.where(filled, m.argmax(axis=0), bh).astype(np.float32)
        bot = np.where(filled, bh - 1 - m[::-1].argmax(axis=0), -1).astype(np.float32)
        up = bh - top  # height of the upper contour above the blob's bottom (0: empty column)
        k = max(1, int(round(0.02 * bh))) * 2 + 1
        up = np.convolve(np.pad(up, k // 2, mode="edge"), np.ones(k, np.float32) / k, mode="valid")
        heads = []  # (col, top row, bottom row)
        r = max(2, int(round(0.05 * bh)))
        for c in range(bw):
            if not filled[c]:
                continue
            lo, hi = max(0, c - r), min(bw, c + r + 1)
            if up[c] < up[lo:hi].max() or (c > lo and up[c - 1] == up[c]):
                continue  # not the (first column of a) local maximum
            t = bh - up[c]
            cols = slice(max(0, c - r), min(bw, c + r + 1))
            b = float(np.median(bot[cols]))
            hp = b - t
            if hp < 0.3 * bh:
                continue
            half = max(2, int(round(0.5 * self.person_aspect * hp * aspect_scale)))  # half a person's width
            drop = self.head_drop * hp
            left, right = up[max(0, c - half) : c], up[c + 1 : c + half + 1]
            # a side reaching the blob's edge (or an empty column) counts as dropping
            ok_l = c - half < 0 or (len(left) and left.min() <= up[c] - drop)
            ok_r = c + half >= bw or (len(right) and right.min() <= up[c] - drop)
            if ok_l and ok_r:
                heads.append((c, t, b, half))
        # two heads closer than half a person's width are one person (a raised arm, a backpack): keep the higher
        heads.sort(key=lambda hd: hd[1])
        kept: list[tuple] = []
        for hd in heads:
            if all(abs(hd[0] - kh[0]) >= self.head_gap * max(hd[3], kh[3]) * 2 for kh in kept):
                kept.append(hd)
        heads = sorted(kept)
        if len(heads) < 2:
            return None
        cols = np.arange(bw, dtype=np.float32)[None, :]
        rows = np.arange(bh, dtype=np.float32)[:, None]
        cost = []
        for c, t, b, half in heads:
            inside = (np.abs(cols - c) <= half) & (rows >= t) & (rows <= b)
            cost.append(np.where(inside, np.abs(cols - c) / half, np.inf))
        cost = np.stack(cost)
        owner = np.argmin(cost, axis=0)
        covered = np.isfinite(cost.min(axis=0))
        if (m & covered).sum() < self.head_cover * m.sum():
            return None  # the heads' person boxes do not explain the blob (a car's roof, a wide object)
        parts = [(x, y, (m & (owner == j) & covered).astype(np.uint8)) for j in range(len(heads))]
        parts = [p for p in parts if p[2].sum() >= min_area_px]
        rest = (m & ~covered).astype(np.uint8)
        if rest.sum() >= max(min_area_px, 0.15 * m.sum()):
            n_cc, cc, stats, _ = cv2.connectedComponentsWithStats(rest, connectivity=8)
            for j in range(1, n_cc):
                if stats[j, 4] >= max(min_area_px, 0.3 * bh * bh * self.person_aspect * 0.5):
                    parts.append((x, y, (cc == j).astype(np.uint8)))
        return parts if len(parts) >= 2 else None

    def _people(self, frame: np.ndarray, parts: list[tuple[int, int, np.ndarray]], sx: float, sy: float) -> bool:
        """True when the HOG person check (`hog_margin`) of every part's box scores above `head_hog`: the heads
        belong to people (not to the bumps of a car's roof or a box's outline)."""
        for px, py, pm in parts:
            rows, cols = np.flatnonzero(pm.any(axis=1)), np.flatnonzero(pm.any(axis=0))
            if not len(rows):
                continue
            box = np.array([(px + cols[0]) * sx, (py + rows[0]) * sy, (px + cols[-1] + 1) * sx,
                            (py + rows[-1] + 1) * sy], np.float32)
            if self.hog_margin(frame, box) <= self.head_hog:
                return False
        return True

    def _hog_detector(self) -> cv2.HOGDescriptor:
        """This thread's HOG people detector (the default SVM set)."""
        if not hasattr(self._local, "detector"):
            self._local.detector = cv2.HOGDescriptor()
            self._local.detector.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())
        return self._local.detector

    def _hog_descriptor(self) -> cv2.HOGDescriptor:
        """This thread's HOG descriptor (default: 64x128 window, 16 px blocks, 8 px cells, 9 bins)."""
        if not hasattr(self._local, "descriptor"):
            self._local.descriptor = cv2.HOGDescriptor()
        return self._local.descriptor

    def _split(self, m: np.ndarray) -> list[tuple[int, int]]:
        """Column ranges [c0, c1) of the parts of blob mask `m`, cut at deep valleys of its column profile."""
        bh, bw = m.shape
        min_w = max(3, int(round(self.split_min_width * bh)))
        if bw < 2 * min_w:
            return [(0, bw)]
        prof = m.sum(axis=0).astype(np.float32)
        k = max(3, int(round(0.08 * bh)) | 1)
        prof = np.convolve(prof, np.ones(k, np.float32) / k, mode="same")
        lo, hi = min_w, bw - min_w
        if hi <= lo:
            return [(0, bw)]
        left = np.maximum.accumulate(prof)  # highest peak at or left of each column
        right = np.maximum.accumulate(prof[::-1])[::-1]  # ... at or right of it
        ratio = prof[lo:hi] / np.maximum(np.minimum(left[lo:hi], right[lo:hi]), 1e-6)
        if ratio.min() >= self.split_valley:
            return [(0, bw)]
        best = lo + int(np.argmin(ratio))
        left = self._split(m[:, :best])
        right = self._split(m[:, best:])
        return left + [(a + best, b + best) for a, b in right]

    def _persistence(self, boxes_w: list[np.ndarray], i: int) -> np.ndarray:
        """Per blob of frame i: fraction of the neighbouring frames (within the window) with a blob that follows
        it (_follows)."""
        cur = boxes_w[i]
        hits = np.zeros(len(cur), np.float32)
        seen = 0
        for j in range(i - self.persistence_window, i + self.persistence_window + 1):
            if j == i or j < 0 or j >= len(boxes_w):
                continue
            seen += 1
            if len(boxes_w[j]):
                hits += _follows(cur, boxes_w[j], abs(j - i)).astype(np.float32)
        return hits / seen if seen else np.ones(len(cur), np.float32)

    def _score(self, b: dict, persist: float, min_area_px: float) -> float:
        """Score in [0, 1]: weighted mean of strength, fill, size and persistence cues (each in [0, 1])."""
        strength = min(1.0, max(0.0, (b["strength"] - 1.0) / 1.5))  # median diff 2.5x the threshold -> 1
        fill = min(1.0, b["fill"] / 0.55)  # a walking person fills ~55% of the box, solid objects more
        size = min(1.0, math.log(b["area"] / min_area_px + 1.0) / math.log(8.0))  # 7x the minimum area -> 1
        return float(0.25 * strength + 0.2 * fill + 0.25 * size + 0.3 * persist)

    def hog_margin(self, frame: np.ndarray, box: np.ndarray) -> float:
        """Linear SVM margin (w.x + b) of OpenCV's default people detector on the box fitted into the 64x128
        window as a person of height 96 px (centred, the window's margins around it), taken from the
        full-resolution RGB frame; the best of five small scale / vertical jitters (a blob box is rarely
        exactly the person's box)."""
        x1, y1, x2, y2 = (float(v) for v in box)
        bh = max(2.0, y2 - y1)
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        best = -np.inf
        for rel, dy in ((1.0, 0.0), (0.9, 0.0), (1.12, 0.0), (1.0, -0.06), (1.0, 0.06)):
            s = _HOG_PERSON_H / (bh * rel)
            mat = np.float32([[s, 0, _HOG_WIN[0] / 2 - s * cx], [0, s, _HOG_WIN[1] / 2 - s * (cy + dy * bh)]])
            win = cv2.warpAffine(frame, mat, _HOG_WIN, flags=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
            desc = self._hog_descriptor().compute(cv2.cvtColor(win, cv2.COLOR_RGB2BGR)).reshape(-1)
            best = max(best, float(desc @ self._svm_w + self._svm_b))
        return best

    @staticmethod
    def _crop(b: dict, full_w: int, full_h: int, sx: float, sy: float) -> tuple[int, int, np.ndarray]:
        """A blob's mask at full resolution: (x, y, crop), the crop placed at column x, row y of the frame."""
        x1, y1, x2, y2 = b["box"]
        fx1, fy1 = int(round(x1 * sx)), int(round(y1 * sy))
        fx2, fy2 = min(full_w, int(round(x2 * sx))), min(full_h, int(round(y2 * sy)))
        if fx2 <= fx1 or fy2 <= fy1:
            return 0, 0, np.zeros((0, 0), np.uint8)  # empty
        return fx1, fy1, cv2.resize(b["mask"], (fx2 - fx1, fy2 - fy1), interpolation=cv2.INTER_NEAREST)


_K_OPEN = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (3, 3))
_K_RING = np.ones((3, 3), np.uint8)


def _median(v: np.ndarray) -> float:
    """np.median of a non-empty 1-D float32 array without NaN, exactly (the middle value, or the float32 mean of
    the middle two), without np.median's overhead (a call per blob of every frame)."""
    n = len(v)
    k = n // 2
    if n % 2:
        return float(np.partition(v, k)[k])
    p = np.partition(v, (k - 1, k))
    return float((p[k - 1] + p[k]) / np.float32(2))


def _max3(d: np.ndarray) -> np.ndarray:
    """Max over the channels of an (h, w, 3) uint8 image (much faster than ndarray.max(axis=2))."""
    return cv2.max(cv2.max(d[..., 0], d[..., 1]), d[..., 2])


def _equalize_exposure(small: np.ndarray, bg: np.ndarray, tol: float) -> bool:
    """Divide each frame of `small` (n, h, w, 3 uint8, in place) by its per-channel gain against `bg`: the
    median ratio frame / background over every 4th pixel in both directions where the background is neither
    dark nor saturated. Returns True when any frame's gain was outside 1 +- tol (and frames were changed)."""
    b = bg[::4, ::4].astype(np.float32)
    gains = np.ones((len(small), 3), np.float32)
    for c in range(3):
        valid = (b[..., c] > 16) & (b[..., c] < 240)
        if valid.sum() < 32:
            continue
        ratio = small[:, ::4, ::4, c][:, valid].astype(np.float32) / b[..., c][valid]
        gains[:, c] = np.median(ratio, axis=1)
    off = (np.abs(gains - 1.0) > tol).any(axis=1)
    for i in np.flatnonzero(off):
        small[i] = np.clip(small[i] / gains[i], 0, 255).round().astype(np.uint8)
    return bool(off.any())


class _Shadows:
    """Cast-shadow test against one background (see MotionDetector's `shadows`): a pixel darker than the
    background by one factor in every channel, with the background's texture still visible (a shadow dims the
    ground, an object hides it). The background's own statistics are computed once per clip."""

    _K = (7, 7)  # window of the local texture correlation

    def __init__(self, bg8: np.ndarray, ratio: tuple[float, float], chroma: float, texture: float) -> None:
        self.ratio, self.chroma, self.texture = ratio, chroma, texture
        self.bg_f = bg8.reshape(-1, 3).astype(np.float32) + 1.0
        self.bg_grey = cv2.cvtColor(bg8, cv2.COLOR_RGB2GRAY).astype(np.float32)
        self.mb = cv2.blur(self.bg_grey, self._K)
        self.vb = np.maximum(cv2.blur(self.bg_grey * self.bg_grey, self._K) - self.mb * self.mb, 1e-3)
        self.flat = (self.vb < 4.0).reshape(-1)  # no texture to compare: a flat ground dimmed alike counts as shadow

    def pixels(self, frame: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """The flat indices among `idx` (pixels of `frame`, RGB uint8) that are cast shadow."""
        if not len(idx):
            return idx
        r = (frame.reshape(-1, 3)[idx].astype(np.float32) + 1.0) / self.bg_f[idx]
        m = r.mean(axis=1)
        cand = (m >= self.ratio[0]) & (m <= self.ratio[1]) & (np.abs(r - m[:, None]).max(axis=1) <= self.chroma * 3 * m)
        idx = idx[cand]
        if not len(idx):
            return idx
        textured = idx[~self.flat[idx]]
        if len(textured):
            grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
            mf = cv2.blur(grey, self._K).reshape(-1)[textured]
            vf = cv2.blur(grey * grey, self._K).reshape(-1)[textured] - mf * mf
            cov = cv2.blur(grey * self.bg_grey, self._K).reshape(-1)[textured] - mf * self.mb.reshape(-1)[textured]
            ncc = cov / np.sqrt(np.maximum(vf, 1e-3) * self.vb.reshape(-1)[textured])
            idx = np.concatenate([idx[self.flat[idx]], textured[ncc >= self.texture]])
        return idx


def _grad(img: np.ndarray) -> np.ndarray:
    """Gradient magnitude of an RGB image's grey level (float32)."""
    g = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY) if img.ndim == 3 else img
    return cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))


def _is_ghost(m: np.ndarray, x: int, y: int, f_grad: np.ndarray, bg_grad: np.ndarray) -> bool:
    """True when the blob's outline is much more an edge of the background image than of the frame."""
    h, w = f_grad.shape
    x0, y0 = max(0, x - 2), max(0, y - 2)
    x1, y1 = min(w, x + m.shape[1] + 2), min(h, y + m.shape[0] + 2)
    mm = np.zeros((y1 - y0, x1 - x0), np.uint8)
    mm[y - y0 : y - y0 + m.shape[0], x - x0 : x - x0 + m.shape[1]] = m
    ring = (cv2.dilate(mm, _K_RING) - cv2.erode(mm, _K_RING)) > 0
    ef, eb = float(f_grad[y0:y1, x0:x1][ring].sum()), float(bg_grad[y0:y1, x0:x1][ring].sum())
    return ef < 0.6 * eb


def _chain_checks(boxes: list[np.ndarray], every: int) -> dict[tuple[int, int], tuple[int, int]]:
    """Blobs followed from frame to frame (boxes[i]: the xyxy boxes of frame i; a blob continues the one of the
    previous frame that is its best match and whose best match it is, IoU > 0.5): for each (frame, blob), the
    (frame, blob) of its chain whose person check stands for it, the nearest of the chain's every `every`-th
    blob and its last one (itself when every = 1 or it is one of those)."""
    chains: list[list[tuple[int, int]]] = []
    chain_of: dict[tuple[int, int], int] = {}
    for i, cur in enumerate(boxes):
        links: dict[int, int] = {}
        if i > 0 and len(cur) and len(boxes[i - 1]):
            iou = _iou(cur, boxes[i - 1])
            best_prev, best_cur = iou.argmax(axis=1), iou.argmax(axis=0)
            links = {j: int(k) for j, k in enumerate(best_prev) if iou[j, k] > 0.5 and best_cur[k] == j}
        for j in range(len(cur)):
            c = chain_of[(i - 1, links[j])] if j in links else len(chains)
            if c == len(chains):
                chains.append([])
            chains[c].append((i, j))
            chain_of[(i, j)] = c
    out: dict[tuple[int, int], tuple[int, int]] = {}
    for chain in chains:
        anchors = sorted(set(range(0, len(chain), every)) | {len(chain) - 1})
        for pos, key in enumerate(chain):
            out[key] = chain[min(anchors, key=lambda a: (abs(a - pos), a))]
    return out


def _inter(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise intersection areas of xyxy boxes (N, 4) x (M, 4)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    return np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)


def _follows(a: np.ndarray, b: np.ndarray, gap: int) -> np.ndarray:
    """Per box of a: a box of b (gap frames away) is the same object: they overlap (IoU > 0.3), or b's box has
    a's size within a factor 2 and its centre within gap times a's larger side (an object moving up to its own
    size a frame: a small fast one no longer overlaps itself)."""
    near = _iou(a, b) > 0.3
    ca, cb = (a[:, :2] + a[:, 2:]) / 2, (b[:, :2] + b[:, 2:]) / 2
    sa, sb = a[:, 2:] - a[:, :2], b[:, 2:] - b[:, :2]
    ratio = (sb[None, :, 0] * sb[None, :, 1]) / np.maximum(sa[:, None, 0] * sa[:, None, 1], 1e-6)
    dist = np.hypot(*(ca[:, None, :] - cb[None, :, :]).transpose(2, 0, 1))
    moved = (dist <= gap * sa.max(axis=1)[:, None]) & (ratio >= 0.5) & (ratio <= 2.0)
    return (near | moved).any(axis=1)


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of xyxy boxes (N, 4) x (M, 4)."""
    ix1 = np.maximum(a[:, None, 0], b[None, :, 0])
    iy1 = np.maximum(a[:, None, 1], b[None, :, 1])
    ix2 = np.minimum(a[:, None, 2], b[None, :, 2])
    iy2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(ix2 - ix1, 0, None) * np.clip(iy2 - iy1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-6)
