"""A stage's Dagster `Config`, generated from its parameters dataclass (fm_assets.labels.params): every field,
with its default, description and bounds, so the launchpad, run configs and the core see the same knobs and
none is copied by hand. `config.to_params()` gives the dataclass the core functions take."""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from dagster import Config
from pydantic import Field, create_model, model_validator

from fm_assets.labels.params import bounds


def _pairs(hint: Any) -> bool:
    """tuple[tuple[str, float], ...]: Dagster config has no tuples; it is shown and set as a {str: float} map."""
    args = typing.get_args(hint)
    return typing.get_origin(hint) is tuple and len(args) == 2 and args[1] is Ellipsis and \
        typing.get_origin(args[0]) is tuple


def config_class(params_cls: type, name: str) -> type[Config]:
    """A `Config` subclass named `name` with one field per field of the dataclass `params_cls`."""
    hints = typing.get_type_hints(params_cls)
    fields: dict[str, Any] = {}
    maps: set[str] = set()
    for f in dataclasses.fields(params_cls):
        hint, default = hints[f.name], f.default
        if _pairs(hint):
            key, value = typing.get_args(typing.get_args(hint)[0])
            hint, default = dict[key, value], dict(default)  # type: ignore[valid-type]
            maps.add(f.name)
        fields[f.name] = (hint, Field(default, description=f.metadata.get("description") or None, **bounds(f)))

    def to_params(self: Config):
        values = {n: getattr(self, n) for n in fields}
        for n in maps:
            values[n] = tuple(values[n].items())
        return params_cls(**values)

    def _valid(self: Config):  # the dataclass's own checks (e.g. max_clip_s >= min_clip_s) at config time
        self.to_params()
        return self

    model = create_model(name, __base__=Config, __module__=__name__, __doc__=params_cls.__doc__,
                         __validators__={"_valid": model_validator(mode="after")(_valid)}, **fields)
    model.to_params = to_params  # type: ignore[attr-defined]
    return model
