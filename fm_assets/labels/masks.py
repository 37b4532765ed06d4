"""Object shapes over time: box and COCO-RLE masks, and a track's box / mask at any frame (TrackPath). The GroundMoRe
export paints with these and `fm eval grounded` rebuilds its ground truth with them, so the two cannot drift."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np


def box_mask(box, height: int, width: int) -> np.ndarray:
    """The pixels [floor(x1), ceil(x2)) x [floor(y1), ceil(y2)) of a box, clipped to the image (coordinates within
    1e-6 of an integer count as that integer, so interpolation noise never adds a pixel row)."""
    import numpy as np

    m = np.zeros((height, width), bool)
    x1, y1 = max(0, int(math.floor(box[0] + 1e-6))), max(0, int(math.floor(box[1] + 1e-6)))
    x2, y2 = min(width, int(math.ceil(box[2] - 1e-6))), min(height, int(math.ceil(box[3] - 1e-6)))
    if x2 > x1 and y2 > y1:
        m[y1:y2, x1:x2] = True
    return m


def decode_rle(rle: dict, height: int | None = None, width: int | None = None) -> np.ndarray:
    """A COCO RLE ({"size": [h, w], "counts": str | list}) as a bool mask; resized (nearest) to (height, width)
    when given and different (the detector may run at a lower resolution)."""
    import numpy as np
    from pycocotools import mask as mask_utils

    h, w = (int(v) for v in rle["size"])
    counts = rle["counts"]
    if isinstance(counts, list):
        obj = mask_utils.frPyObjects({"size": [h, w], "counts": counts}, h, w)
    else:
        obj = {"size": [h, w], "counts": counts.encode("ascii") if isinstance(counts, str) else counts}
    with warnings.catch_warnings():  # pycocotools' __array__ predates numpy 2's copy keyword
        warnings.simplefilter("ignore", DeprecationWarning)
        m = mask_utils.decode(obj).astype(bool)
    if height is not None and m.shape != (height, width):
        import cv2

        assert width is not None, "decode_rle: height and width are given together"

        m = cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
    return m


def rle_runs(counts: str) -> np.ndarray:
    """Run lengths (0s, 1s, 0s, ... in column-major order) of a COCO compressed RLE string: the 5-bit groups with a
    continuation bit, every count from the fourth on stored as the difference to the one two places before
    (pycocotools' rleFrString), vectorised over the characters."""
    c = np.frombuffer(counts.encode("ascii"), np.uint8).astype(np.int64) - 48
    if not len(c):
        return np.zeros(0, np.int64)
    last = (c & 0x20) == 0  # a number's last character (no continuation bit)
    if not last[-1]:
        raise ValueError(f"not a COCO RLE string: it ends inside a number ({counts[-8:]!r})")
    starts = np.flatnonzero(np.concatenate([[True], last[:-1]]))
    k = np.arange(len(c)) - np.repeat(starts, np.diff(np.append(starts, len(c))))  # place within its number
    if k.max() > 12:
        raise ValueError("not a COCO RLE string: a number longer than 64 bits")
    x = np.add.reduceat((c & 0x1F) << (5 * k), starts)
    negative = (c[last] & 0x10) != 0  # the last group's top bit: sign-extended
    x = np.where(negative, x | (np.int64(-1) << (5 * (k[last] + 1)).clip(max=63)), x)
    runs = x.copy()  # from the fourth on: the difference to the one two places before
    runs[1::2] = np.cumsum(x[1::2])
    runs[2::2] = np.cumsum(x[2::2])
    return runs


def rle_string(runs: np.ndarray) -> str:
    """The COCO compressed string of run lengths (pycocotools' rleToString), vectorised over the runs."""
    x = np.asarray(runs, np.int64).copy()
    if len(x) > 3:
        x[3:] = x[3:] - np.asarray(runs, np.int64)[1:-2]
    chunks = []
    live = np.ones(len(x), bool)
    for _ in range(13):  # 5 bits a group: enough for any 64-bit difference
        c = x & 0x1F
        x = x >> 5  # arithmetic shift: negative differences end at -1
        more = np.where(c & 0x10, x != -1, x != 0) & live
        chunks.append(np.where(live, (c | np.where(more, 0x20, 0)) + 48, 0))
        live = more
        if not live.any():
            break
    codes = np.stack(chunks, axis=1).reshape(-1)
    return codes[codes > 0].astype(np.uint8).tobytes().decode("ascii")


def rle_columns(counts: str, height: int, x1: int, x2: int) -> np.ndarray:
    """Columns [x1, x2) of a COCO RLE mask of `height` rows, as a bool (height, x2 - x1) array, without decoding
    the rest of the frame."""
    runs = rle_runs(counts)
    ends = np.cumsum(runs)
    lo, hi = x1 * height, x2 * height
    inside = np.clip(ends, lo, hi) - np.clip(ends - runs, lo, hi)  # each run's length within the columns
    return np.repeat(np.arange(len(runs)) % 2 == 1, inside).reshape(x2 - x1, height).T


def rle_of_crop(crop: np.ndarray, x: int, y: int, height: int, width: int) -> dict:
    """The COCO RLE ({"size", "counts": str}) of a (height, width) mask that is empty except for `crop` (any
    dtype, nonzero = in) placed at column x, row y; the same as pycocotools' encode of the whole frame, without
    building it."""
    ch, cw = crop.shape
    cols = np.zeros((cw, height), bool)  # the crop's columns, full height, column-major like COCO
    cols[:, y : y + ch] = crop.T != 0
    v = cols.reshape(-1)
    if not v.any():
        return {"size": [int(height), int(width)], "counts": rle_string(np.array([height * width]))}
    edges = np.flatnonzero(v[1:] != v[:-1]) + 1
    bounds = np.concatenate([[0], edges, [len(v)]])
    runs = np.diff(bounds).astype(np.int64)
    if v[0]:  # COCO runs start with 0s
        runs = np.concatenate([[0], runs])
    runs[0] += x * height  # the empty columns left of the crop
    after = (width - x - cw) * height
    if len(runs) % 2 == 1:  # ends in 0s: they continue to the end
        runs[-1] += after
    elif after:
        runs = np.concatenate([runs, [after]])
    return {"size": [int(height), int(width)], "counts": rle_string(runs)}


def _shift(mask: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """mask moved by (dx, dy) pixels, zero-filled."""
    import numpy as np

    if dx == 0 and dy == 0:
        return mask
    out = np.zeros_like(mask)
    h, w = mask.shape
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    if abs(dx) < w and abs(dy) < h:
        out[yd, xd] = mask[ys, xs]
    return out


def shape_mask(shape: tuple | None, height: int, width: int) -> np.ndarray:
    import numpy as np

    if shape is None:
        return np.zeros((height, width), bool)
    kind = shape[0]
    if kind == "box":
        return box_mask(shape[1], height, width)
    if kind == "rle":
        _, rle, (dx, dy), _box = shape
        return _shift(decode_rle(json.loads(rle), height, width), dx, dy)
    if kind == "png":
        from PIL import Image

        path, obj_id = Path(shape[1]), int(shape[2])
        if not path.exists():  # GroundMoRe: a frame without a mask file has an empty mask
            return np.zeros((height, width), bool)
        ids = np.array(Image.open(path))
        if ids.ndim == 3:
            ids = ids[..., 0]
        m = ids == obj_id
        if m.shape != (height, width):
            import cv2

            m = cv2.resize(m.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)
        return m
    raise ValueError(f"unknown shape kind {kind!r}")


def _box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of box a (4,) with boxes b (n, 4), x1y1x2y2."""
    import numpy as np

    ix = np.clip(np.minimum(a[2], b[:, 2]) - np.maximum(a[0], b[:, 0]), 0, None)
    iy = np.clip(np.minimum(a[3], b[:, 3]) - np.maximum(a[1], b[:, 1]), 0, None)
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


class TrackPath:
    """A track's boxes at the tracker's sampled frames; `box_at(f)` interpolates linearly between consecutive
    observations (any gap, like tracking.mot_text) and is None outside [first, last]. Where the detection matched
    to an observation (IoU >= 0.5, same frame) has a mask, `shape_at` gives that mask (from the nearest
    observation, moved by the change of the box centre)."""

    def __init__(self, rows, dets=None) -> None:
        import numpy as np
        import polars as pl

        rows = rows.sort("frame_idx")
        self.frames = rows["frame_idx"].to_numpy().astype(int)
        self.boxes = rows.select("x1", "y1", "x2", "y2").to_numpy().astype(float)
        self.rles: list[str | None] = [None] * len(self.frames)
        if dets is not None and len(dets) and "mask_rle" in dets.columns:
            dets = dets.filter(pl.col("mask_rle").is_not_null())
            by_frame = {k[0]: g for k, g in dets.group_by("frame_idx")} if len(dets) else {}
            for i, (f, box) in enumerate(zip(self.frames, self.boxes)):
                cand = by_frame.get(int(f))
                if cand is None:
                    continue
                iou = _box_iou(box, cand.select("x1", "y1", "x2", "y2").to_numpy().astype(float))
                k = int(np.argmax(iou))
                if iou[k] >= 0.5:
                    self.rles[i] = cand["mask_rle"][k]

    @property
    def span(self) -> tuple[int, int] | None:
        return (int(self.frames[0]), int(self.frames[-1])) if len(self.frames) else None

    def _locate(self, f: int) -> tuple[int, int, float] | None:
        import numpy as np

        fr = self.frames
        if not len(fr) or f < fr[0] or f > fr[-1]:
            return None
        k = int(np.searchsorted(fr, f))
        if fr[k] == f:
            return k, k, 0.0
        return k - 1, k, (f - fr[k - 1]) / (fr[k] - fr[k - 1])

    def box_at(self, f: int) -> np.ndarray | None:
        loc = self._locate(f)
        if loc is None:
            return None
        a, b, w = loc
        return (1 - w) * self.boxes[a] + w * self.boxes[b]

    def shape_at(self, f: int) -> tuple | None:
        loc = self._locate(f)
        if loc is None:
            return None
        a, b, w = loc
        box = (1 - w) * self.boxes[a] + w * self.boxes[b]
        near = a if w <= 0.5 else b
        if self.rles[near] is not None:
            nb = self.boxes[near]
            dx = int(round((box[0] + box[2]) / 2 - (nb[0] + nb[2]) / 2))
            dy = int(round((box[1] + box[3]) / 2 - (nb[1] + nb[3]) / 2))
            return ("rle", self.rles[near], (dx, dy), tuple(float(v) for v in box))
        return ("box", tuple(float(v) for v in box))
