"""Which samplers can sample which dynamics: trial-library knowledge the spec's shape cannot carry.

A spec is well formed by the contract alone (study/contract/spec: pydantic only); whether its samplers and guidance
can run on its dynamics is derived here from the declarations (trainables/samplers: the interface a sampler needs and
whether it takes a classifier gradient; trainables/dynamics: the interfaces a family's sampling model provides), at
the time of the check, so a sampler registered at run time (``register_sampler``) is checked like a built-in one.
The driver runs the check when it reads a spec (``study.plan.Plan.load``: every command that builds trials from one).
"""

from __future__ import annotations

from typing import Any

from trainables.dynamics import DYNAMICS
from trainables.samplers import SAMPLERS


def samples(sampler_kind: str) -> list[str]:
    """The dynamics kinds a sampler can sample: those whose sampling model provides the interface it needs."""
    return [kind for kind, d in DYNAMICS.items() if SAMPLERS[sampler_kind].needs in d.provides]


def sampler_dynamics() -> dict[str, tuple[str, ...]]:
    """{sampler kind: the dynamics kinds whose sampling model provides the interface it needs}."""
    return {kind: tuple(samples(kind)) for kind in SAMPLERS}


def guided_samplers() -> tuple[str, ...]:
    return tuple(kind for kind, s in SAMPLERS.items() if s.guidable)


def compatibility_problems(spec: Any) -> list[str]:
    """Messages for every sampler (or guidance) that cannot run on the spec's dynamics (empty when all is well)."""
    problems = []
    provides = DYNAMICS[spec.dynamics.kind].provides if spec.dynamics.kind in DYNAMICS else frozenset()
    for i, sampler in enumerate(spec.evaluation.samplers):
        decl = SAMPLERS.get(sampler.kind)
        if decl is None:
            problems.append(f"evaluation.samplers[{i}] ({sampler.kind}) has no registered sampler function")
            continue
        missing = decl.requires(sampler) - provides
        if decl.needs in missing:
            problems.append(
                f"evaluation.samplers[{i}] ({sampler.kind}) cannot sample {spec.dynamics.kind!r} dynamics; "
                f"it samples {list(samples(sampler.kind))}"
            )
        elif missing:
            problems.append(
                f"evaluation.samplers[{i}] ({sampler.kind}) needs the model's own {', '.join(sorted(missing))}, which "
                f"{spec.dynamics.kind!r} dynamics do not define; name one (e.g. sde: vp)"
            )
    guided = [g.kind for g in spec.evaluation.guidance if g.guided]
    if guided:
        # ADM's guidance forms (Alg. 1 mean shift, Alg. 2 eps shift) exist for the discrete eps samplers only.
        for i, sampler in enumerate(spec.evaluation.samplers):
            if sampler.kind not in guided_samplers() or spec.dynamics.kind != "ddpm":
                problems.append(
                    f"evaluation.guidance ({', '.join(guided)}) needs the discrete DDPM samplers "
                    f"{list(guided_samplers())} on 'ddpm' dynamics; evaluation.samplers[{i}] is {sampler.kind} on "
                    f"{spec.dynamics.kind!r}"
                )
        if getattr(spec, "classifier", None) is None:
            problems.append("evaluation.guidance uses a classifier: add a top-level `classifier:` section")
    return problems
