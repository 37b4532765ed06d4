"""Parameters of the labeling stages: each stage has ONE frozen dataclass holding every knob, and that dataclass
is the only configuration its core functions see. `param` declares a field with its description and bounds;
the stage's Dagster `Config` is generated from these fields (fm_assets.defs.config), so nothing is copied by
hand, and `check_bounds` enforces the same bounds when the dataclass is built directly."""

from __future__ import annotations

import dataclasses
from typing import Any

_BOUNDS = ("gt", "ge", "lt", "le")


def param(default: Any, description: str = "", *, gt: float | None = None, ge: float | None = None,
          lt: float | None = None, le: float | None = None) -> Any:
    """A dataclass field with a description and optional numeric bounds (kept in the field's metadata)."""
    bounds = {k: v for k, v in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if v is not None}
    return dataclasses.field(default=default, metadata={"description": description, **bounds})


def bounds(f: dataclasses.Field) -> dict[str, float]:
    return {k: f.metadata[k] for k in _BOUNDS if k in f.metadata}


def check_bounds(params: Any) -> None:
    """ValueError naming the field when a value is outside the bounds its `param` declared."""
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        for op, limit in bounds(f).items():
            ok = {"gt": value > limit, "ge": value >= limit, "lt": value < limit, "le": value <= limit}[op]
            if not ok:
                sign = {"gt": ">", "ge": ">=", "lt": "<", "le": "<="}[op]
                raise ValueError(f"{type(params).__name__}.{f.name} must be {sign} {limit}, got {value!r}")
