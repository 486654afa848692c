"""Cross-section rules a single model cannot express: which samplers can sample which dynamics."""

from __future__ import annotations

from typing import Any

# sampler kind -> dynamics kinds it can sample
# Discrete DDPM samplers need an eps model on the training schedule; annealed Langevin needs discrete sigma levels;
# the sigma-space samplers take any denoiser D(x, sigma), NCSNv2's included (its levels span [sigma_L, sigma_1]).
SIGMA_SPACE = ("vp_sde", "ve_sde", "ncsnv2")
SAMPLER_DYNAMICS: dict[str, tuple[str, ...]] = {
    "ancestral": ("ddpm",),
    "ddim": ("ddpm",),
    "annealed_langevin": ("ncsnv2",),
    "euler_maruyama": SIGMA_SPACE,
    "probability_flow_euler": SIGMA_SPACE,
    "predictor_corrector": SIGMA_SPACE,
    "karras": SIGMA_SPACE,
}

# samplers that take a classifier gradient (``cond_fn``): ADM Alg. 1 (ancestral) and Alg. 2 (DDIM)
GUIDED_SAMPLERS = ("ancestral", "ddim")


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
