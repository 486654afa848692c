"""Discrete noise schedules: betas and alpha-bar in float64 (REFERENCE B.1).

Notation: alpha_bar_t = prod_{s<=t} (1 - beta_s); SNR = alpha_bar / (1 - alpha_bar); the VE-equivalent
noise level sigma = sqrt((1 - alpha_bar) / alpha_bar), so logSNR = -2 ln sigma.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Tensor = torch.Tensor


def linear_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02, scale: float = 1.0) -> Tensor:
    """Ho et al. 2020: beta_t = linspace(scale*beta_1, scale*beta_T, T); no 1000/T rescaling (B.1.1)."""
    return torch.linspace(scale * beta_start, scale * beta_end, T, dtype=torch.float64)


def _betas_from_alpha_bar(alpha_bar: Tensor, max_beta: float) -> Tensor:
    """beta_k = 1 - alpha_bar(t_{k+1}) / alpha_bar(t_k) on a grid of T+1 points, clipped to [0, max_beta]."""
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(0.0, max_beta)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> Tensor:
    """Nichol & Dhariwal 2021 Eq. 17: alpha_bar(t) = cos^2(((t/T)+s)/(1+s) * pi/2), betas clipped (B.1.2)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    return _betas_from_alpha_bar(f / f[0], max_beta)


def sigmoid_betas(T: int, start: float = -3.0, end: float = 3.0, tau: float = 1.0, max_beta: float = 0.999) -> Tensor:
    """Alpha-bar sigmoid of RIN (arXiv 2212.11972) / Chen 2023 Alg. 1, on the grid k/T (B.1.3 item 1).

    alpha_bar(t) = (sig(end/tau) - sig((t(end-start)+start)/tau)) / (sig(end/tau) - sig(start/tau)).
    """
    t = torch.arange(T + 1, dtype=torch.float64) / T
    v_start, v_end = torch.sigmoid(torch.tensor(start / tau)), torch.sigmoid(torch.tensor(end / tau))
    alpha_bar = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
    return _betas_from_alpha_bar(alpha_bar / alpha_bar[0], max_beta)


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
}


@dataclass(frozen=True)
class DiscreteSchedule:
    """A T-step schedule; index t = 0 .. T-1 (0-based, as guided-diffusion)."""

    betas: Tensor  # float64, shape (T,)

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @property
    def alphas_cumprod(self) -> Tensor:
        return torch.cumprod(1 - self.betas, dim=0)

    @property
    def log_snr(self) -> Tensor:
        ab = self.alphas_cumprod
        return torch.log(ab) - torch.log1p(-ab)

    def summary(self) -> dict[str, float]:
        """Terminal alpha-bar and log-SNR: how far x_T is from N(0, I) (the prior mismatch, B.1.1)."""
        ab = self.alphas_cumprod
        return {
            "alpha_bar_T": float(ab[-1]),
            "log_snr_T": float(self.log_snr[-1]),
            "log_snr_1": float(self.log_snr[0]),
        }


def make_schedule(spec: Any, T: int) -> DiscreteSchedule:
    """Build the schedule named by a spec's ``kind`` (fields other than ``kind`` are the function's kwargs)."""
    params = spec.model_dump(exclude={"kind"})
    return DiscreteSchedule(SCHEDULES[spec.kind](T, **params))
