"""Shared base for every spec model: strict (unknown keys are errors) and immutable."""

from __future__ import annotations

import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

# Upper bounds where a typo could exhaust memory or time, generous for the paper's experiments (CIFAR10 at 32x32, a
# 35.7M-parameter U-Net, batch 128, 1000 steps, 50k samples). One place, so every field says the same.
MAX_WIDTH = 4096  # network channels
MAX_BATCH = 65_536
MAX_EPOCHS = 100_000
MAX_STEPS = 100_000  # sampler steps, diffusion timesteps, noise levels
MAX_SAMPLES = 200_000  # images per evaluation / reference set
MAX_LIST = 64  # samplers, guidance settings, channel multipliers, claims
SEED_MAX = 2**32 - 1  # numpy's and scikit-learn's seed range (torch takes more)


def _admits_bool(annotation: Any) -> bool:
    if annotation is bool or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _admits_bool(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_admits_bool(a) for a in typing.get_args(annotation))
    return origin is typing.Literal and any(isinstance(a, bool) for a in typing.get_args(annotation))


class Strict(BaseModel):
    """A spec node: unknown keys are errors, values are immutable once validated, numbers are finite (a field that
    allows infinity says so) and a boolean is never taken for a number (``epochs: true`` is an error, not 1)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_booleans_for_numbers(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for name, value in data.items():
            field = cls.model_fields.get(name) if isinstance(name, str) else None
            if field is None or _admits_bool(field.annotation):
                continue
            items = value if isinstance(value, list | tuple) else [value]
            if any(isinstance(v, bool) for v in items):
                raise ValueError(f"{name}: a boolean (true/false) where a number or a name is expected")
        return data
