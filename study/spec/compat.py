"""Cross-section rules a single model cannot express: which samplers can sample which dynamics."""

from __future__ import annotations

from typing import Any

# sampler kind -> dynamics kinds it can sample
SAMPLER_DYNAMICS: dict[str, tuple[str, ...]] = {
    "ancestral": ("ddpm",),
    "ddim": ("ddpm",),
}


def compatibility_problems(spec: Any) -> list[str]:
    """Messages for every sampler that cannot run on the spec's dynamics (empty when all is well)."""
    problems = []
    for i, sampler in enumerate(spec.evaluation.samplers):
        allowed = SAMPLER_DYNAMICS.get(sampler.kind, ())
        if spec.dynamics.kind not in allowed:
            problems.append(
                f"evaluation.samplers[{i}] ({sampler.kind}) cannot sample {spec.dynamics.kind!r} dynamics; "
                f"it samples {list(allowed)}"
            )
    return problems
