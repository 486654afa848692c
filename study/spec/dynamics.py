"""Diffusion dynamics specs (the noise process and training objective), discriminated by ``kind``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from study.spec.base import Strict


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
    tau: float = Field(1.0, gt=0.0)
    max_beta: float = Field(0.999, gt=0.0, le=1.0)


ScheduleSpec = Annotated[LinearSchedule | CosineSchedule | SigmoidSchedule, Field(discriminator="kind")]


class DDPMDynamics(Strict):
    """Discrete DDPM (Ho et al. 2020): epsilon prediction, simple (unweighted) MSE loss, T steps."""

    kind: Literal["ddpm"] = "ddpm"
    timesteps: int = Field(1000, ge=2)
    schedule: ScheduleSpec = Field(default_factory=LinearSchedule)


DynamicsSpec = DDPMDynamics
