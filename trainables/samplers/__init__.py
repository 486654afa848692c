"""Samplers: plain functions ``sampler(model, noise, *, generator, **params) -> SampleResult``.

Registered by the ``kind`` a spec names; a spec's remaining fields (minus ``kind`` and ``name``) are the
function's keyword parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainables.samplers.base import EpsModel, SampleResult, timestep_sequence
from trainables.samplers.ddpm import ancestral, ddim

SAMPLERS: dict[str, Callable[..., SampleResult]] = {
    "ancestral": ancestral,
    "ddim": ddim,
}


def sampler_from_spec(spec: Any) -> tuple[Callable[..., SampleResult], dict[str, Any]]:
    """The registered function for ``spec.kind`` and its keyword parameters."""
    return SAMPLERS[spec.kind], spec.model_dump(exclude={"kind", "name"})


__all__ = [
    "SAMPLERS",
    "EpsModel",
    "SampleResult",
    "ancestral",
    "ddim",
    "sampler_from_spec",
    "timestep_sequence",
]
