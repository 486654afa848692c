"""Samplers: plain functions ``sampler(model, noise, *, generator, **params) -> SampleResult``.

Registered by the ``kind`` a spec names; a spec's remaining fields (minus ``kind`` and ``name``) are the
function's keyword parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from trainables.samplers.base import Denoiser, EpsModel, SampleResult, timestep_sequence
from trainables.samplers.ddpm import ancestral, ddim
from trainables.samplers.karras import karras
from trainables.samplers.langevin import annealed_langevin
from trainables.samplers.sde import euler_maruyama, predictor_corrector, probability_flow_euler

SAMPLERS: dict[str, Callable[..., SampleResult]] = {
    "ancestral": ancestral,
    "ddim": ddim,
    "annealed_langevin": annealed_langevin,
    "euler_maruyama": euler_maruyama,
    "probability_flow_euler": probability_flow_euler,
    "predictor_corrector": predictor_corrector,
    "karras": karras,
}


def expected_nfe(spec: Any, dynamics: Any) -> int:
    """Network evaluations per sample that sampler ``spec`` costs on a model of ``dynamics`` (a dynamics spec),
    known before sampling. Matches ``SampleResult.nfe``."""
    kind = spec.kind
    if kind == "ancestral":
        T = dynamics.timesteps
        return T if spec.steps is None else len(timestep_sequence(T, spec.steps, spec.spacing))
    if kind == "ddim":
        return len(timestep_sequence(dynamics.timesteps, spec.steps, spec.spacing))
    if kind == "annealed_langevin":
        return dynamics.num_levels * spec.steps_each + int(spec.denoise)
    if kind in ("euler_maruyama", "probability_flow_euler"):
        return spec.steps
    if kind == "predictor_corrector":
        return spec.steps * (spec.corrector_steps + 1)
    if kind == "karras":
        return spec.steps if spec.solver == "euler" else 2 * spec.steps - 1
    raise KeyError(kind)


def sampler_from_spec(spec: Any) -> tuple[Callable[..., SampleResult], dict[str, Any]]:
    """The registered function for ``spec.kind`` and its keyword parameters."""
    return SAMPLERS[spec.kind], spec.model_dump(exclude={"kind", "name", "preset"})


__all__ = [
    "SAMPLERS",
    "Denoiser",
    "EpsModel",
    "SampleResult",
    "ancestral",
    "annealed_langevin",
    "ddim",
    "euler_maruyama",
    "expected_nfe",
    "karras",
    "predictor_corrector",
    "probability_flow_euler",
    "sampler_from_spec",
    "timestep_sequence",
]
