"""Diffusion dynamics specs (the noise process and training objective), discriminated by ``kind``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from study.contract.spec.base import MAX_STEPS, Strict


class LinearSchedule(Strict):
    """Ho et al. linear betas, ``linspace(scale*beta_start, scale*beta_end, T)`` (REFERENCE B.1.1).

    The paper's four schedules are ``scale`` in {0.25, 0.5, 0.75, 1.0} at T=1000. No 1000/T rescaling
    (as diffusers and ermongroup/ddim; guided-diffusion rescales).
    """

    kind: Literal["linear"] = "linear"
    scale: float = Field(1.0, gt=0.0, le=1.0 / 0.02)
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)


class CosineSchedule(Strict):
    """Nichol & Dhariwal cosine alpha-bar, ``s=0.008``, betas clipped at ``max_beta`` (REFERENCE B.1.2)."""

    kind: Literal["cosine"] = "cosine"
    s: float = Field(0.008, ge=0.0)
    max_beta: float = Field(0.999, gt=0.0, le=1.0)


class SigmoidSchedule(Strict):
    """Alpha-bar sigmoid of Jabri et al. (RIN) / Chen 2023 Alg. 1 on a discrete grid (REFERENCE B.1.3 item 1).

    ``alpha_bar(t) = (sig(end/tau) - sig((t(end-start)+start)/tau)) / (sig(end/tau) - sig(start/tau))``,
    normalised by alpha_bar(0); betas clipped at ``max_beta``.
    """

    kind: Literal["sigmoid"] = "sigmoid"
    start: float = -3.0
    end: float = 3.0
    tau: float = Field(1.0, gt=0.0, le=1e3)
    max_beta: float = Field(0.999, gt=0.0, le=1.0)


class BetaSigmoidSchedule(Strict):
    """GeoDiff / ermongroup-ddim "sigmoid" in beta: ``logistic(linspace(-6, 6, T))`` scaled to
    [beta_start, beta_end] (REFERENCE B.1.3 item 3); unrelated to the alpha-bar ``sigmoid``."""

    kind: Literal["beta_sigmoid"] = "beta_sigmoid"
    beta_start: float = Field(1e-4, gt=0.0, lt=1.0)
    beta_end: float = Field(0.02, gt=0.0, lt=1.0)


class VDMLinearSchedule(Strict):
    """VDM's sigma_t^2 = sigmoid(gamma(t)) with gamma linear from ``gamma_min`` to ``gamma_max`` (REFERENCE B.1.4)."""

    kind: Literal["vdm_linear"] = "vdm_linear"
    gamma_min: float = -13.3
    gamma_max: float = 5.0
    max_beta: float = Field(0.999, gt=0.0, le=1.0)


ScheduleSpec = Annotated[
    LinearSchedule | CosineSchedule | SigmoidSchedule | BetaSigmoidSchedule | VDMLinearSchedule,
    Field(discriminator="kind"),
]


class DDPMDynamics(Strict):
    """Discrete DDPM (Ho et al. 2020): epsilon prediction, simple (unweighted) MSE loss, T steps."""

    kind: Literal["ddpm"] = "ddpm"
    timesteps: int = Field(1000, ge=2, le=MAX_STEPS)
    schedule: ScheduleSpec = Field(default_factory=LinearSchedule)


class NCSNv2Dynamics(Strict):
    """NCSNv2 (Song & Ermon 2020; ermongroup/ncsnv2): geometric sigma levels, sigma^2-weighted denoising score
    matching, data in [0, 1] as the original (REFERENCE B.5). Defaults are the CIFAR10 config.

    ``sigma_begin_from_data``: replace ``sigma_begin`` by the largest pairwise Euclidean distance between
    training images (NCSNv2 Technique 1), computed once from the training set.
    """

    kind: Literal["ncsnv2"] = "ncsnv2"
    sigma_begin: float = Field(50.0, gt=0.0, le=1e6)
    sigma_end: float = Field(0.01, gt=0.0)
    num_levels: int = Field(232, ge=2, le=MAX_STEPS)
    sigma_begin_from_data: bool = False

    @model_validator(mode="after")
    def _descending(self) -> NCSNv2Dynamics:
        if self.sigma_end >= self.sigma_begin:
            raise ValueError(f"sigma_end ({self.sigma_end}) must be below sigma_begin ({self.sigma_begin})")
        return self


class VPSDEDynamics(Strict):
    """Score-SDE variance-preserving SDE, beta(t) = beta_min + t (beta_max - beta_min) on t in [eps, 1]
    (REFERENCE B.6). The net predicts eps (EDM's VPPrecond, B.7.1); loss ||eps_hat - z||^2 (= lambda = std^2).
    ``reduce_mean`` True averages over pixels (DDPM++ VP configs), False takes half the pixel sum."""

    kind: Literal["vp_sde"] = "vp_sde"
    beta_min: float = Field(0.1, gt=0.0)
    beta_max: float = Field(20.0, gt=0.0, le=1e4)
    eps: float = Field(1e-5, gt=0.0, lt=1.0, description="smallest training time t")
    M: int = Field(1000, ge=2, le=MAX_STEPS, description="the net sees the noise label (M - 1) t")
    reduce_mean: bool = True


class VESDEDynamics(Strict):
    """Score-SDE variance-exploding SDE, sigma(t) = sigma_min (sigma_max / sigma_min)^t (REFERENCE B.6).

    Sigmas are in units of [-1, 1] data (EDM's VEPrecond): (0.02, 100) here is exactly score-SDE's (0.01, 50)
    on [0, 1] data, the same process seen through x -> 2x - 1 (the original NCSN++ shifts its input the same
    way inside the net). ``reduce_mean`` False (the VE configs) takes half the pixel sum of ||sigma s + z||^2.
    """

    kind: Literal["ve_sde"] = "ve_sde"
    sigma_min: float = Field(0.02, gt=0.0)
    sigma_max: float = Field(100.0, gt=0.0, le=1e6)
    eps: float = Field(1e-5, gt=0.0, lt=1.0, description="smallest training time t")
    reduce_mean: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> VESDEDynamics:
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min ({self.sigma_min}) must be below sigma_max ({self.sigma_max})")
        return self


DynamicsSpec = Annotated[
    DDPMDynamics | NCSNv2Dynamics | VPSDEDynamics | VESDEDynamics,
    Field(discriminator="kind"),
]
