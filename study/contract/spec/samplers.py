"""Sampler specs (a sampling axis: evaluated inside each trial on the same checkpoint).

Each sampler has an ``id`` used in metric keys (``is/<extractor>/n<N>/<id>/mean``): ``name`` when
given, else derived from the kind and its main parameters.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from study.contract.spec.base import MAX_STEPS, Strict

SamplerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=60)]
Spacing = Literal["leading", "linspace", "trailing", "quadratic"]


class AncestralSampler(Strict):
    """DDPM ancestral (Markovian) sampling, Ho et al. Alg. 2 with guided-diffusion's semantics (REFERENCE B.2).

    ``steps`` None walks all T steps; fewer steps respace the betas over a subsequence while the model
    still sees the original timestep index.
    """

    kind: Literal["ancestral"] = "ancestral"
    name: SamplerName | None = None
    steps: int | None = Field(None, ge=1, le=MAX_STEPS)
    spacing: Spacing = "linspace"
    variance: Literal["fixed_large", "fixed_small"] = "fixed_large"
    clip_x0: bool = True

    @property
    def id(self) -> str:
        return self.name or ("ancestral" if self.steps is None else f"ancestral-{self.steps}")


class DDIMSampler(Strict):
    """DDIM (Song et al. 2021, Eq. 12) with ``eta`` and a timestep spacing (REFERENCE B.3).

    ``clip_x0`` follows guided-diffusion: clip x0-hat to [-1, 1] and re-derive eps from it.
    """

    kind: Literal["ddim"] = "ddim"
    name: SamplerName | None = None
    steps: int = Field(50, ge=1, le=MAX_STEPS)
    eta: float = Field(0.0, ge=0.0, le=10.0)
    spacing: Spacing = "leading"
    clip_x0: bool = False

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        return f"ddim-{self.steps}" + (f"-eta{self.eta:g}" if self.eta else "")


class AnnealedLangevinSampler(Strict):
    """Annealed Langevin dynamics over the model's sigma levels (NCSNv2, REFERENCE B.5); CIFAR10 defaults.

    ``init`` uniform draws x ~ U[0, 1] (the original) and ignores the caller's noise. NFE = L steps_each (+1).
    """

    kind: Literal["annealed_langevin"] = "annealed_langevin"
    name: SamplerName | None = None
    step_lr: float = Field(6.2e-6, gt=0.0, description="eps: alpha_i = eps sigma_i^2 / sigma_L^2")
    steps_each: int = Field(5, ge=1, le=1000)
    denoise: bool = Field(True, description="final Tweedie step x + sigma_L^2 s(x, sigma_L)")
    init: Literal["uniform", "gaussian"] = "uniform"

    @property
    def id(self) -> str:
        return self.name or f"ald-{self.steps_each}"


SDEName = Literal["native", "vp", "ve"]


class _ScoreSDESampler(Strict):
    """Shared fields of the original score-SDE samplers (REFERENCE B.6): N steps on t = linspace(1, eps, N).

    ``sde`` native = the model's own process; vp/ve sample it through another one (vp uses beta_min/beta_max,
    ve the model's sigma range). ``eps`` None = 1e-3 (VP) / 1e-5 (VE) as score-SDE's run_lib.
    """

    name: SamplerName | None = None
    steps: int = Field(1000, ge=1, le=MAX_STEPS)
    sde: SDEName = "native"
    eps: float | None = Field(None, gt=0.0, lt=1.0)
    beta_min: float = Field(0.1, gt=0.0)
    beta_max: float = Field(20.0, gt=0.0, le=1e4)

    def _suffix(self) -> str:
        return f"-{self.steps}" + ("" if self.sde == "native" else f"-{self.sde}")


class EulerMaruyamaSampler(_ScoreSDESampler):
    """Euler–Maruyama on the reverse SDE (score-SDE ``EulerMaruyamaPredictor``, dt = -1/N). NFE = N."""

    kind: Literal["euler_maruyama"] = "euler_maruyama"

    @property
    def id(self) -> str:
        return self.name or "em" + self._suffix()


class ProbabilityFlowEulerSampler(_ScoreSDESampler):
    """Euler on the probability-flow ODE (the original Euler ODE solver). NFE = N."""

    kind: Literal["probability_flow_euler"] = "probability_flow_euler"

    @property
    def id(self) -> str:
        return self.name or "pf-euler" + self._suffix()


class PredictorCorrectorSampler(_ScoreSDESampler):
    """Predictor–corrector (score-SDE ``get_pc_sampler``; corrector runs before the predictor at each t).

    NFE = N (corrector_steps + 1).
    """

    kind: Literal["predictor_corrector"] = "predictor_corrector"
    predictor: Literal["reverse_diffusion", "euler_maruyama"] = "reverse_diffusion"
    corrector_steps: int = Field(1, ge=0, le=100, description="Langevin corrector steps per predictor step (0 = none)")
    snr: float = Field(0.16, gt=0.0)

    @property
    def id(self) -> str:
        return self.name or "pc" + self._suffix()


# Named settings of the paper (Part A / EDM Table 5); any field given explicitly overrides the preset.
KARRAS_PRESETS: dict[str, dict[str, Any]] = {
    "cifar10_vp": {"solver": "heun", "discretization": "edm", "schedule": "linear", "scaling": "none",
                   "S_churn": 30.0, "S_tmin": 0.01, "S_tmax": 1.0, "S_noise": 1.007},
    "cifar10_ve": {"solver": "heun", "discretization": "edm", "schedule": "linear", "scaling": "none",
                   "S_churn": 80.0, "S_tmin": 0.05, "S_tmax": 1.0, "S_noise": 1.007},
    # EDM-retrained ImageNet-64 row (the README's 256-step command); the pre-trained ADM row has S_churn = 80.
    "imagenet": {"solver": "heun", "discretization": "edm", "schedule": "linear", "scaling": "none",
                 "S_churn": 40.0, "S_tmin": 0.05, "S_tmax": 50.0, "S_noise": 1.003},
    # "DDIM params": deterministic Heun on the iDDPM discretization.
    "ddim_params": {"solver": "heun", "discretization": "iddpm", "schedule": "linear", "scaling": "none"},
    # The paper's VP parameters (also for VE models, E3): EDM's --disc=vp --schedule=vp --scaling=vp.
    "vp_params": {"discretization": "vp", "schedule": "vp", "scaling": "vp"},
    "ve_params": {"discretization": "ve", "schedule": "ve", "scaling": "none"},
}  # fmt: skip


class KarrasSampler(Strict):
    """Karras et al. 2022 sampler (EDM ``ablation_sampler``; Alg. 1 and 2) on a denoiser D(x, sigma) (REFERENCE B.7.2).

    Defaults are EDM's: heun / edm / linear / none, 18 steps, no churn. ``preset`` fills the fields not given.
    The sigma range defaults per discretization and is clamped to the model's; VP betas are re-derived from it.
    NFE = N (euler) or 2N - 1 (heun).
    """

    kind: Literal["karras"] = "karras"
    name: SamplerName | None = None
    preset: Literal["cifar10_vp", "cifar10_ve", "imagenet", "ddim_params", "vp_params", "ve_params"] | None = None
    steps: int = Field(18, ge=1, le=MAX_STEPS)
    solver: Literal["euler", "heun"] = "heun"
    discretization: Literal["vp", "ve", "iddpm", "edm"] = "edm"
    schedule: Literal["vp", "ve", "linear"] = "linear"
    scaling: Literal["vp", "none"] = "none"
    sigma_min: float | None = Field(None, gt=0.0)
    sigma_max: float | None = Field(None, gt=0.0)
    rho: float = Field(7.0, gt=0.0)
    epsilon_s: float = Field(1e-3, gt=0.0, lt=1.0)
    C_1: float = Field(0.001, gt=0.0)
    C_2: float = Field(0.008, ge=0.0)
    M: int = Field(1000, ge=2, le=MAX_STEPS)
    alpha: float = Field(1.0, gt=0.0, le=1.0, description="second-order point t_hat + alpha h (1 Heun, 1/2 midpoint)")
    S_churn: float = Field(0.0, ge=0.0, le=1e4)
    S_tmin: float = Field(0.0, ge=0.0)
    S_tmax: float = Field(math.inf, ge=0.0, allow_inf_nan=True, description="churn only below this sigma")
    S_noise: float = Field(1.0, gt=0.0)

    @model_validator(mode="before")
    @classmethod
    def _apply_preset(cls, data: Any) -> Any:
        # Only a string can name a preset; anything else (a mapping is unhashable) is left for the ``preset``
        # literal to refuse with the allowed names.
        preset = data.get("preset") if isinstance(data, dict) else None
        if isinstance(preset, str) and preset in KARRAS_PRESETS:
            return {**KARRAS_PRESETS[preset], **data}
        return data

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        return f"karras-{self.preset or self.solver + '-' + self.discretization}-{self.steps}"


SamplerSpec = Annotated[
    AncestralSampler
    | DDIMSampler
    | AnnealedLangevinSampler
    | EulerMaruyamaSampler
    | ProbabilityFlowEulerSampler
    | PredictorCorrectorSampler
    | KarrasSampler,
    Field(discriminator="kind"),
]
