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


def expected_nfe(spec: Any, timesteps: int) -> int:
    """Network evaluations per sample that ``spec`` will cost on a T-step model, known before sampling."""
    if spec.kind == "ancestral":
        return timesteps if spec.steps is None else len(timestep_sequence(timesteps, spec.steps, spec.spacing))
    if spec.kind == "ddim":
        return len(timestep_sequence(timesteps, spec.steps, spec.spacing))
    raise KeyError(spec.kind)


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
