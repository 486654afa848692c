"""Samplers: plain functions ``sampler(model, noise, *, generator, **params) -> SampleResult``.

Registered by the ``kind`` a spec names; a spec's remaining fields (minus ``kind`` and ``name``) are the
function's keyword parameters.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from study.contract.spec.base import Strict
from study.contract.spec.study import add_sampler_spec, remove_sampler_spec
from trainables.samplers.base import Denoiser, DiscreteEpsDenoiser, EpsModel, SampleResult, timestep_sequence
from trainables.samplers.ddpm import ancestral, ddim
from trainables.samplers.karras import karras
from trainables.samplers.langevin import annealed_langevin
from trainables.samplers.sde import euler_maruyama, predictor_corrector, probability_flow_euler


@dataclass(frozen=True)
class SamplerDecl:
    """One sampler, declared once: its function, the model interface it needs (``eps``, ``denoiser`` or
    ``levels``, see ``trainables.dynamics.DynamicsDecl.provides``), whether it takes a classifier gradient
    (``cond_fn``, ADM Alg. 1/2), and its NFE per sample from its spec and the dynamics spec. Which dynamics it can
    sample and what it costs are derived from this (trainables/compat.py, ``expected_nfe``). Calling a declaration
    calls the function."""

    fn: Callable[..., SampleResult]
    needs: str
    guidable: bool
    nfe: Callable[[Any, Any], int]
    # what a particular spec needs beyond ``needs`` (e.g. ``sde`` when it integrates the model's native SDE)
    also_needs: Callable[[Any], frozenset[str]] = lambda spec: frozenset()

    def requires(self, spec: Any) -> frozenset[str]:
        """Every model interface sampler ``spec`` needs."""
        return frozenset({self.needs}) | self.also_needs(spec)

    def __call__(self, *args: Any, **kwargs: Any) -> SampleResult:
        return self.fn(*args, **kwargs)

    @property
    def params(self) -> frozenset[str]:
        """The keyword arguments a spec may set (its fields, minus ``kind``/``name``/``preset``)."""
        return frozenset(
            p.name for p in inspect.signature(self.fn).parameters.values()
            if p.kind is p.KEYWORD_ONLY and p.name not in ("generator", "cond_fn")
        )  # fmt: skip


def _native_sde(spec: Any) -> frozenset[str]:
    return frozenset({"sde"}) if spec.sde == "native" else frozenset()


def _respaced(spec: Any, dynamics: Any) -> int:
    return len(timestep_sequence(dynamics.timesteps, spec.steps, spec.spacing))


SAMPLERS: dict[str, SamplerDecl] = {
    "ancestral": SamplerDecl(ancestral, "eps", True,
                             lambda s, d: d.timesteps if s.steps is None else _respaced(s, d)),
    "ddim": SamplerDecl(ddim, "eps", True, _respaced),
    "annealed_langevin": SamplerDecl(annealed_langevin, "levels", False,
                                     lambda s, d: d.num_levels * s.steps_each + int(s.denoise)),
    "euler_maruyama": SamplerDecl(euler_maruyama, "denoiser", False, lambda s, d: s.steps, _native_sde),
    "probability_flow_euler": SamplerDecl(probability_flow_euler, "denoiser", False, lambda s, d: s.steps,
                                          _native_sde),
    "predictor_corrector": SamplerDecl(predictor_corrector, "denoiser", False,
                                       lambda s, d: s.steps * (s.corrector_steps + 1), _native_sde),
    "karras": SamplerDecl(karras, "denoiser", False,
                          lambda s, d: s.steps if s.solver == "euler" else 2 * s.steps - 1),
}  # fmt: skip


def expected_nfe(spec: Any, dynamics: Any) -> int:
    """Network evaluations per sample that sampler ``spec`` costs on a model of ``dynamics`` (a dynamics spec),
    known before sampling (its declaration's ``nfe``). Matches ``SampleResult.nfe``."""
    return SAMPLERS[spec.kind].nfe(spec, dynamics)


def register_sampler(model: type[Strict], decl: SamplerDecl) -> SamplerDecl:
    """Add a sampler at run time (a plugin, a test): its declaration joins ``SAMPLERS`` and its spec model (a
    ``Strict`` model with a ``kind`` literal and an ``id``) ``evaluation.samplers``' union.

    What a built-in sampler does with two edits (the model in ``SamplerSpec``'s union, the declaration in
    ``SAMPLERS``), this does for a plugin; compatibility and NFE follow from the declaration. Call it in every
    process that validates or samples (a trial on a Ray worker imports its own modules); :func:`unregister_sampler`
    undoes it.
    """
    kind = model.model_fields["kind"].default
    if kind in SAMPLERS:
        raise ValueError(f"sampler kind {kind!r} is already registered")
    fields = set(model.model_fields) - {"kind", "name", "preset"}
    if not fields <= decl.params:
        raise ValueError(f"sampler {kind!r}: spec fields {sorted(fields - decl.params)} are not keyword arguments "
                         "of its function")  # fmt: skip
    add_sampler_spec(model)
    SAMPLERS[kind] = decl
    return decl


def unregister_sampler(kind: str) -> None:
    """Take a sampler added with :func:`register_sampler` out of ``SAMPLERS`` and of the spec again."""
    remove_sampler_spec(kind)
    del SAMPLERS[kind]


def view(model: Any, needs: str) -> Any:
    """The model as the interface a sampler needs: a discrete epsilon model is seen in sigma space
    (``DiscreteEpsDenoiser``) by the denoiser samplers; every other model is already what it provides."""
    if needs == "denoiser" and isinstance(model, EpsModel):
        return DiscreteEpsDenoiser(model)
    return model


def sampler_from_spec(spec: Any) -> tuple[Callable[..., SampleResult], dict[str, Any]]:
    """The registered function for ``spec.kind`` and its keyword parameters."""
    return SAMPLERS[spec.kind].fn, spec.model_dump(exclude={"kind", "name", "preset"})


__all__ = [
    "SAMPLERS",
    "SamplerDecl",
    "Denoiser",
    "DiscreteEpsDenoiser",
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
    "register_sampler",
    "sampler_from_spec",
    "timestep_sequence",
    "unregister_sampler",
    "view",
]
