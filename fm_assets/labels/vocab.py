"""The motion vocabulary shared by the labels, the synthetic generator and the checks of LLM answers:
the 8 compass directions (plus toward / away / stationary), the 3x3 grid of regions, the object colours, and the
thresholds that define the facts. The synthetic generator renders with these definitions, so its facts are the
ground truth of the same words the labels use."""

from __future__ import annotations

import math

# Saturated object colours (RGB); backgrounds are kept low-saturation so these stand out.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 35, 35),
    "green": (40, 175, 60),
    "blue": (35, 75, 220),
    "yellow": (235, 205, 30),
    "orange": (240, 130, 25),
    "purple": (135, 55, 195),
    "cyan": (25, 190, 205),
    "magenta": (215, 45, 170),
    "brown": (140, 80, 35),
    "pink": (245, 105, 170),
    "white": (245, 245, 245),
    "black": (15, 15, 15),
}

REGIONS = (("top-left", "top", "top-right"), ("left", "center", "right"), ("bottom-left", "bottom", "bottom-right"))
SECTORS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")

STATIONARY_FRAC = 0.02  # of the diagonal: net displacement below this is "stationary"
TOWARD_CENTRE_FRAC = 0.05  # of the diagonal: centre may move at most this much for toward / away
SCALE_RATIO = 1.25  # scale change needed for toward / away
MIN_STOP_S = 0.5
REPETITION_MIN_FRAC = 0.01  # of the diagonal: smaller legs are ignored when counting repetitions


def classify_direction(dx: float, dy: float, ratio: float, diag: float, stationary_frac: float = STATIONARY_FRAC,
                       toward_centre_frac: float = TOWARD_CENTRE_FRAC, scale_ratio: float = SCALE_RATIO) -> str:
    """Direction word for a centre displacement (px, y down) and a scale ratio end/start (defined in
    fm_assets.synthetic.generator's docstring; fm_assets.labels.motion_facts uses the same function on measured tracks)."""
    disp = math.hypot(dx, dy)
    if (ratio > scale_ratio or ratio < 1 / scale_ratio) and disp < toward_centre_frac * diag:
        return "toward" if ratio > 1 else "away"
    if disp == 0 or disp < stationary_frac * diag:
        return "stationary"
    angle = math.degrees(math.atan2(-dy, dx)) % 360.0
    return SECTORS[int(((angle + 22.5) % 360.0) // 45.0)]


def region(cx: float, cy: float, width: int, height: int) -> str:
    """Cell of a point on the 3x3 grid of the frame."""
    col = min(2, max(0, int(3 * cx / width)))
    row = min(2, max(0, int(3 * cy / height)))
    return REGIONS[row][col]
