"""Cross-section rules a single model cannot express: which samplers can sample which dynamics."""

from __future__ import annotations

from typing import Any

from trainables.samplers import SAMPLERS, samples

# Derived from the declarations (trainables/samplers: the interface a sampler needs and whether it takes a classifier
# gradient; trainables/dynamics: the interfaces a family's sampling model provides), never kept by hand.
SAMPLER_DYNAMICS: dict[str, tuple[str, ...]] = {kind: tuple(samples(kind)) for kind in SAMPLERS}
GUIDED_SAMPLERS: tuple[str, ...] = tuple(kind for kind, s in SAMPLERS.items() if s.guidable)


def compatibility_problems(spec: Any) -> list[str]:
    """Messages for every sampler (or guidance) that cannot run on the spec's dynamics (empty when all is well)."""
    problems = []
    for i, sampler in enumerate(spec.evaluation.samplers):
        allowed = SAMPLER_DYNAMICS.get(sampler.kind, ())
        if spec.dynamics.kind not in allowed:
            problems.append(
                f"evaluation.samplers[{i}] ({sampler.kind}) cannot sample {spec.dynamics.kind!r} dynamics; "
                f"it samples {list(allowed)}"
            )
    guided = [g.kind for g in spec.evaluation.guidance if g.guided]
    if guided:
        # ADM's guidance forms (Alg. 1 mean shift, Alg. 2 eps shift) exist for the discrete eps samplers only.
        for i, sampler in enumerate(spec.evaluation.samplers):
            if sampler.kind not in GUIDED_SAMPLERS or spec.dynamics.kind != "ddpm":
                problems.append(
                    f"evaluation.guidance ({', '.join(guided)}) needs the discrete DDPM samplers "
                    f"{list(GUIDED_SAMPLERS)} on 'ddpm' dynamics; evaluation.samplers[{i}] is {sampler.kind} on "
                    f"{spec.dynamics.kind!r}"
                )
        if getattr(spec, "classifier", None) is None:
            problems.append("evaluation.guidance uses a classifier: add a top-level `classifier:` section")
    return problems
