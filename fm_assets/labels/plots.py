"""Pure drawing functions behind the `trajectories` materialization's pictures (no Dagster, no IO):

- ``trajectory_overlay``: each kept track's smoothed path over a representative frame of its clip, a dot at
  the start, an arrow at the end, and a legend (colour, track id, label, colour name, direction) under it; one
  panel per clip (the clips with the most kept tracks), tiled.
- ``speed_plot``: the speed of each drawn track over time (frame diagonals per second, from the smoothed
  path), in the same colours: stops, starts and speed changes are easy to check against the facts.
- ``shrink``: the anti-aliased downscale that the detector's frames take (`DetectionPass`, the `motion` detector).
- ``encode_png`` keeps a picture under a byte budget (palette PNG, then smaller) for Dagster's metadata;
  ``md_image`` makes the Markdown that the UI shows.

Images are RGB ``uint8`` arrays (height x width x 3) until they are encoded.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping, Sequence

import cv2
import numpy as np
import polars as pl
from PIL import Image

# Ten saturated colours (RGB) that stay distinct from each other and from most backgrounds.
PALETTE: tuple[tuple[int, int, int], ...] = (
    (255, 48, 48), (40, 120, 255), (0, 200, 70), (255, 150, 0), (200, 60, 255),
    (0, 210, 220), (255, 60, 190), (190, 230, 0), (140, 90, 40), (255, 230, 0),
)
FONT = cv2.FONT_HERSHEY_SIMPLEX
MAX_BYTES = 100_000  # per picture: its base64 in the metadata stays under ~135 KB


def clip_panels(trajectories: pl.DataFrame, raw_clips: pl.DataFrame, max_clips: int = 4) -> list[dict]:
    """The clips to draw (those with the most kept tracks first, at most ``max_clips``, then in time order),
    each a raw_clips row with ``frame_idx``: its middle frame, the representative frame the paths go over."""
    kept = trajectories.filter(pl.col("kept"))
    if kept.is_empty():
        return []
    counts = dict(kept.group_by("clip_id").len().iter_rows())
    clips = [c for c in raw_clips.iter_rows(named=True) if c["clip_id"] in counts]
    clips.sort(key=lambda c: (-counts[c["clip_id"]], c["start_frame"]))
    chosen = sorted(clips[:max_clips], key=lambda c: c["start_frame"])
    return [{**c, "frame_idx": (int(c["start_frame"]) + int(c["end_frame"]) - 1) // 2} for c in chosen]


def drawn_tracks(trajectories: pl.DataFrame, max_tracks: int = 10) -> pl.DataFrame:
    """The kept tracks of ONE clip that get drawn: the ``max_tracks`` that travel furthest, in track-id order,
    with ``colour_idx`` (their index into PALETTE, shared by the overlay and the speed plot)."""
    kept = trajectories.filter(pl.col("kept") & (pl.col("path").list.len() > 0))
    top = kept.sort(["distance", "track_id"], descending=[True, False], nulls_last=True).head(max_tracks)
    return top.sort("track_id").with_row_index("colour_idx")


def _colour(i: int) -> tuple[int, int, int]:
    return PALETTE[int(i) % len(PALETTE)]


def _name(track: dict) -> str:
    return f"{track['label']} ({track['color']})" if track.get("color") else str(track["label"])


def _points(path: list[dict], width: int, height: int) -> np.ndarray:
    return np.array([[p["ncx"] * width, p["ncy"] * height] for p in path], float).reshape(-1, 2)


def _runs(t: np.ndarray, gap_factor: float = 3.0) -> list[slice]:
    """Index ranges without a time gap longer than ``gap_factor`` x the median step (a track lost a while)."""
    if len(t) < 2:
        return [slice(0, len(t))]
    dt = np.diff(t)
    limit = gap_factor * max(float(np.median(dt)), 1e-6)
    cuts = [0, *(np.flatnonzero(dt > limit) + 1).tolist(), len(t)]
    return [slice(a, b) for a, b in zip(cuts[:-1], cuts[1:])]


def _arrow(img: np.ndarray, pts: np.ndarray, colour, thick: int, head_px: float) -> None:
    """An arrow onto the last point of ``pts`` from the point ~3 heads back along the path."""
    end = pts[-1]
    back = np.cumsum(np.r_[0.0, np.hypot(*np.diff(pts[::-1], axis=0).T)])
    k = int(np.searchsorted(back, 3 * head_px))
    start = pts[::-1][min(k, len(pts) - 1)]
    length = float(np.hypot(*(end - start)))
    if length < 1.0:
        return
    p1, p2 = tuple(int(v) for v in start.round()), tuple(int(v) for v in end.round())
    cv2.arrowedLine(img, p1, p2, (0, 0, 0), thick + 2, cv2.LINE_AA, tipLength=min(0.9, head_px / length))
    cv2.arrowedLine(img, p1, p2, colour, thick, cv2.LINE_AA, tipLength=min(0.9, head_px / length))


def trajectory_panel(image: np.ndarray, trajectories: pl.DataFrame, title: str | None = None, width: int = 640,
                     max_tracks: int = 10, dim: float = 0.7) -> np.ndarray:
    """The kept tracks of ONE clip over ``image`` (RGB, any size; the paths are normalised): the background is
    dimmed by ``dim``, each path is drawn in its colour with a dark outline, a dot at its start, an arrow at its
    end, its id beside the arrow, and its box at the start (thin) and the end (thick). A legend strip (id,
    label, colour name, direction) goes under the picture, so it hides no path: the image is ``width`` wide and
    taller than the scaled frame by the strip."""
    h0, w0 = image.shape[:2]
    height = max(2, int(round(h0 * width / w0)))
    img = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA if w0 > width else cv2.INTER_LINEAR)
    img = (img.astype(np.float32) * dim + 16).clip(0, 255).astype(np.uint8)
    thick = max(2, round(width / 320))
    head = 5.0 * thick
    tracks = drawn_tracks(trajectories, max_tracks)
    legend: list[tuple[tuple[int, int, int] | None, str]] = []
    for r in tracks.iter_rows(named=True):
        colour = _colour(r["colour_idx"])
        pts = _points(r["path"], width, height)
        t = np.array([p["t"] for p in r["path"]], float)
        for run in _runs(t):
            seg = pts[run].round().astype(np.int32)
            if len(seg) > 1:
                cv2.polylines(img, [seg], False, (0, 0, 0), thick + 2, cv2.LINE_AA)
                cv2.polylines(img, [seg], False, colour, thick, cv2.LINE_AA)
        for point, line in ((r["path"][0], 1), (r["path"][-1], thick)):  # boxes at start and end: size changes
            x1, y1 = (point["ncx"] - point["nw"] / 2) * width, (point["ncy"] - point["nh"] / 2) * height
            x2, y2 = (point["ncx"] + point["nw"] / 2) * width, (point["ncy"] + point["nh"] / 2) * height
            cv2.rectangle(img, (int(round(x1)), int(round(y1))), (int(round(x2)), int(round(y2))), colour, line)
        start = tuple(int(v) for v in pts[0].round())
        cv2.circle(img, start, thick + 2, (0, 0, 0), -1, cv2.LINE_AA)
        cv2.circle(img, start, thick + 1, colour, -1, cv2.LINE_AA)
        _arrow(img, pts, colour, thick, head)
        end = pts[-1].round().astype(int)
        tx, ty = int(min(end[0] + 6, width - 18)), int(max(end[1] - 6, 12))
        cv2.putText(img, str(r["track_id"]), (tx, ty), FONT, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(img, str(r["track_id"]), (tx, ty), FONT, 0.5, colour, 1, cv2.LINE_AA)
        legend.append((colour, f"#{r['track_id']} {_name(r)}: {r['direction'] or '?'}"))
    hidden = trajectories.filter(pl.col("kept")).height - tracks.height
    if hidden > 0:
        legend.append((None, f"+{hidden} more kept track(s) not drawn"))
    if title:
        legend.insert(0, (None, title))
    strip = legend_strip(legend or [(None, "no kept tracks")], width, 8, bg=(24, 24, 24), ink=(235, 235, 235))
    return np.vstack([img, strip])


def tile(images: list[np.ndarray], cols: int = 2, gap: int = 4) -> np.ndarray:
    """Panels side by side in rows of ``cols`` (dark gaps; each cell as large as the largest panel)."""
    if len(images) == 1:
        return images[0]
    cols = min(cols, len(images))
    rows = (len(images) + cols - 1) // cols
    ch, cw = max(i.shape[0] for i in images), max(i.shape[1] for i in images)
    out = np.full((rows * ch + (rows - 1) * gap, cols * cw + (cols - 1) * gap, 3), 24, np.uint8)
    for k, im in enumerate(images):
        y, x = (k // cols) * (ch + gap), (k % cols) * (cw + gap)
        out[y:y + im.shape[0], x:x + im.shape[1]] = im
    return out


def trajectory_overlay(frames: Mapping[str, np.ndarray | None], trajectories: pl.DataFrame, clips: list[dict],
                       width: int = 640, max_tracks: int = 10) -> np.ndarray:
    """One ``trajectory_panel`` per clip of ``clips`` (from ``clip_panels``) over ``frames[clip_id]`` (a black
    frame of the clip's size where missing), tiled two per row (each panel half as wide then); panels are
    titled "clip k" (k from 1, in time order) like the speed plot's legend."""
    panel_w = width if len(clips) == 1 else width // 2
    panels = []
    for k, c in enumerate(clips):
        image = frames.get(c["clip_id"])
        if image is None:
            image = np.zeros((int(c["height"]), int(c["width"]), 3), np.uint8)
        traj = trajectories.filter(pl.col("clip_id") == c["clip_id"])
        title = f"clip {k + 1}: {c['start_s']:.1f}-{c['end_s']:.1f} s" if len(clips) > 1 else None
        panels.append(trajectory_panel(image, traj, title, panel_w, max_tracks))
    return tile(panels) if panels else np.zeros((2, 2, 3), np.uint8)


def speeds(path: list[dict], width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """(times, speeds) of a smoothed path: centre speed between consecutive points in frame diagonals per
    second (the unit of ``mean_speed``), at the midpoints of the steps."""
    if len(path) < 2:
        return np.zeros(0), np.zeros(0)
    t = np.array([p["t"] for p in path], float)
    xy = _points(path, width, height) / float(np.hypot(width, height))
    dt = np.diff(t)
    ok = dt > 1e-9
    v = np.hypot(*np.diff(xy, axis=0).T)[ok] / dt[ok]
    return ((t[:-1] + t[1:]) / 2)[ok], v


def _nice_step(span: float, n: int = 5) -> float:
    raw = max(span, 1e-9) / n
    mag = 10 ** np.floor(np.log10(raw))
    return float(next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw))


class Axes:
    """A plot area: data (t, v) in [t0, t1] x [0, v_max] mapped to pixels inside the margins."""

    def __init__(self, t0: float, t1: float, v_max: float, width: int, height: int,
                 margins: tuple[int, int, int, int] = (52, 14, 26, 24)):  # left, right, top, bottom
        self.t0, self.t1 = t0, max(t1, t0 + 1e-6)
        self.v_max = v_max
        self.left, self.right = margins[0], width - margins[1]
        self.top, self.bottom = margins[2], height - margins[3]

    def px(self, t, v) -> tuple[np.ndarray, np.ndarray]:
        x = self.left + (np.asarray(t, float) - self.t0) / (self.t1 - self.t0) * (self.right - self.left)
        y = self.bottom - np.asarray(v, float).clip(0, self.v_max) / self.v_max * (self.bottom - self.top)
        return x, y


def speed_axes(series: list[tuple[np.ndarray, np.ndarray]], width: int, height: int,
               t_range: tuple[float, float] | None = None) -> Axes:
    """The axes ``speed_plot`` draws ``series`` on: ``t_range`` (default: the series' times), speed from 0 to a
    round maximum."""
    ts = np.concatenate([t for t, _ in series]) if series else np.zeros(0)
    vs = np.concatenate([v for _, v in series]) if series else np.zeros(0)
    t0, t1 = (float(ts.min()), float(ts.max())) if len(ts) else (0.0, 1.0)
    if t_range is not None:
        t0, t1 = float(t_range[0]), float(t_range[1])
    top = float(vs.max()) if len(vs) else 0.0
    step = _nice_step(max(top, 0.05), 4)
    v_max = step * max(1, int(np.ceil(max(top, 0.05) / step - 1e-9)))
    return Axes(t0, t1, v_max, width, height)


def speed_series(trajectories: pl.DataFrame, clips: list[dict], max_tracks: int = 10):
    """[(times, speeds, colour, legend text)] of the tracks ``trajectory_overlay`` draws, in its colours."""
    out = []
    for k, c in enumerate(clips):
        for r in drawn_tracks(trajectories.filter(pl.col("clip_id") == c["clip_id"]), max_tracks).iter_rows(named=True):
            t, v = speeds(r["path"], int(r["width"] or c["width"]), int(r["height"] or c["height"]))
            prefix = f"clip {k + 1} " if len(clips) > 1 else ""
            out.append((t, v, _colour(r["colour_idx"]), f"{prefix}#{r['track_id']} {_name(r)}"))
    return out


def speed_plot(series: list[tuple[np.ndarray, np.ndarray, tuple[int, int, int], str]], width: int = 640,
               height: int = 240, t_range: tuple[float, float] | None = None,
               title: str = "speed of each track (frame diagonals / s) over time (s)") -> np.ndarray:
    """Speed over time (seconds of the source video; ``t_range`` e.g. the clips' span), one line per series
    (from ``speed_series``), on a white ``width`` x ``height`` plot with ticks and a grid, and a legend strip
    under it (``legend_strip``; the image is taller than ``height`` by the strip)."""
    img = np.full((height, width, 3), 255, np.uint8)
    ax = speed_axes([(t, v) for t, v, _, _ in series], width, height, t_range)
    grid, ink = (225, 225, 225), (60, 60, 60)
    tstep = _nice_step(ax.t1 - ax.t0, 6)
    for tv in np.arange(np.ceil(ax.t0 / tstep) * tstep, ax.t1 + 1e-9, tstep):
        x = int(round(float(ax.px(tv, 0)[0])))
        cv2.line(img, (x, ax.top), (x, ax.bottom), grid, 1)
        cv2.line(img, (x, ax.bottom), (x, ax.bottom + 4), ink, 1)
        text = f"{round(float(tv), 6):g}"
        tw = cv2.getTextSize(text, FONT, 0.38, 1)[0][0]
        cv2.putText(img, text, (x - tw // 2, ax.bottom + 16), FONT, 0.38, ink, 1, cv2.LINE_AA)
    vstep = _nice_step(ax.v_max, 4)
    for vv in np.arange(0, ax.v_max + 1e-9, vstep):
        y = int(round(float(ax.px(ax.t0, vv)[1])))
        cv2.line(img, (ax.left, y), (ax.right, y), grid, 1)
        cv2.line(img, (ax.left - 4, y), (ax.left, y), ink, 1)
        text = f"{round(float(vv), 6):g}"
        tw = cv2.getTextSize(text, FONT, 0.38, 1)[0][0]
        cv2.putText(img, text, (ax.left - 7 - tw, y + 4), FONT, 0.38, ink, 1, cv2.LINE_AA)
    cv2.rectangle(img, (ax.left, ax.top), (ax.right, ax.bottom), ink, 1)
    cv2.putText(img, title, (ax.left, ax.top - 9), FONT, 0.42, ink, 1, cv2.LINE_AA)
    for t, v, colour, _ in series:
        if len(t) == 0:
            continue
        xs, ys = ax.px(t, v)
        pts = np.stack([xs, ys], axis=1)
        for run in _runs(t):
            seg = pts[run].round().astype(np.int32)
            if len(seg) > 1:
                cv2.polylines(img, [seg], False, colour, 2, cv2.LINE_AA)
            elif len(seg) == 1:
                cv2.circle(img, tuple(int(c) for c in seg[0]), 2, colour, -1)
    legend: list[tuple[tuple[int, int, int] | None, str]] = [(colour, text) for _, _, colour, text in series[:12]]
    if len(series) > 12:
        legend.append((None, f"+{len(series) - 12} more"))
    return np.vstack([img, legend_strip(legend or [(None, "no kept tracks")], width, ax.left)])


def legend_strip(rows: Sequence[tuple[tuple[int, int, int] | None, str]], width: int, indent: int = 8,
                 bg: tuple[int, int, int] = (255, 255, 255), ink: tuple[int, int, int] = (60, 60, 60),
                 scale: float = 0.42) -> np.ndarray:
    """A strip with the (colour swatch, text) entries side by side, wrapping onto more lines as needed (it goes
    under a picture or plot, so the legend never hides a path or curve)."""
    line, sw, gap, space = 18, 12, 4, 16
    placed, x, y = [], indent, 0
    for colour, text in rows:
        w = sw + gap + cv2.getTextSize(text, FONT, scale, 1)[0][0]
        if x + w > width - 4 and x > indent:
            x, y = indent, y + line
        placed.append((x, y, colour, text))
        x += w + space
    strip = np.full((y + line + 4, width, 3), bg, np.uint8)
    for x, y, colour, text in placed:
        if colour is not None:
            cv2.rectangle(strip, (x, y + 4), (x + sw - 1, y + 15), colour, -1)
        cv2.putText(strip, text, (x + (sw + gap if colour is not None else 0), y + 14), FONT, scale, ink, 1,
                    cv2.LINE_AA)
    return strip


def shrink(img: np.ndarray, width: int, height: int) -> np.ndarray:
    """`img` (height x width x channels, uint8) resized to `width` x `height`, anti-aliased when it shrinks:
    OpenCV's area average by the largest whole factor that fits in both directions (its fast path), then linear
    interpolation for what remains (a factor under 2). A one-step area resize at a factor that is not whole is
    5-6x slower (2.0 against 0.3 ms for a 768x576 frame to 320x240; 4.6 against 0.9 ms for 1920x1080 to
    1280x720), within a grey level on average of this one. An image whose sides are not multiples of the
    factor is averaged without its last rows and columns, and the linear step then maps every output pixel to
    where it lies in the whole image (an affine warp, edges replicated): nothing shifts."""
    h0, w0 = img.shape[:2]
    if (w0, h0) == (width, height):
        return img
    k = min(w0 // width, h0 // height)
    if k < 2:
        return cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    w1, h1 = w0 // k, h0 // k
    small = cv2.resize(img[: h1 * k, : w1 * k], (w1, h1), interpolation=cv2.INTER_AREA)
    if (w1, h1) == (width, height):
        return small
    if (w1 * k, h1 * k) == (w0, h0):
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)
    ax, ay = w0 / (width * k), h0 / (height * k)  # output pixel centre -> position in `small`
    return cv2.warpAffine(small, np.array([[ax, 0, ax / 2 - 0.5], [0, ay, ay / 2 - 0.5]], np.float32), (width, height),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)


def jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """JPEG bytes of an RGB image."""
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def encode_png(img: np.ndarray, max_bytes: int = MAX_BYTES) -> bytes:
    """PNG bytes of an RGB image under ``max_bytes``: full colour if it fits, else a 256-colour palette
    (photos with lines on them stay readable), else smaller by steps of 0.8. No `optimize`: zlib's slowest
    search made a 640x480 frame 6x slower to encode (0.35 s against 0.06 s) for 2 % fewer bytes."""
    im = Image.fromarray(np.ascontiguousarray(img))
    while True:
        for candidate in (im, im.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)):
            buf = io.BytesIO()
            candidate.save(buf, format="PNG", optimize=False)
            if buf.tell() <= max_bytes or min(im.size) <= 32:
                return buf.getvalue()
        im = im.resize((max(16, int(im.width * 0.8)), max(16, int(im.height * 0.8))), Image.Resampling.LANCZOS)


def md_image(data: bytes, alt: str, mime: str = "image/png") -> str:
    """Markdown showing ``data`` inline (a data: URI), as Dagster's UI renders it in the metadata table."""
    return f"![{alt}](data:{mime};base64,{base64.b64encode(data).decode()})"


def trajectory_pictures(trajectories: pl.DataFrame, clips: list[dict], frames: dict[int, np.ndarray],
                        width: int = 640, max_bytes: int = MAX_BYTES) -> dict[str, bytes]:
    """The PNGs of a video's materialization: ``trajectories`` (the overlay) and ``speed`` (the plot), for the
    ``clips`` of ``clip_panels`` with ``frames`` by frame index (the clips' stills)."""
    by_clip = {c["clip_id"]: frames.get(c["frame_idx"]) for c in clips}
    span = (min(c["start_s"] for c in clips), max(c["end_s"] for c in clips)) if clips else None
    return {
        "trajectories": encode_png(trajectory_overlay(by_clip, trajectories, clips, width), max_bytes),
        "speed": encode_png(speed_plot(speed_series(trajectories, clips), width, t_range=span), max_bytes),
    }
