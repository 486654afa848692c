"""Discrete noise schedules: betas and alpha-bar in float64 (REFERENCE B.1).

Notation: alpha_bar_t = prod_{s<=t} (1 - beta_s); SNR = alpha_bar / (1 - alpha_bar); the VE-equivalent
noise level sigma = sqrt((1 - alpha_bar) / alpha_bar), so logSNR = -2 ln sigma.

Kinds (the spec's ``schedule.kind``):

* ``linear``       Ho et al.: beta = linspace(c*1e-4, c*0.02, T), the paper's scale factor c (B.1.1).
* ``cosine``       Nichol & Dhariwal: alpha_bar = cos^2(((t/T)+s)/(1+s) pi/2), betas clipped at 0.999 (B.1.2).
* ``sigmoid``      the alpha-bar sigmoid of RIN / Chen 2023 Alg. 1 (lucidrains' default) (B.1.3 item 1).
* ``beta_sigmoid`` the GeoDiff / ermongroup-ddim / diffusers "sigmoid": a sigmoid in *beta*,
                   beta = logistic(linspace(-6, 6, T)) (beta_end - beta_start) + beta_start (B.1.3 item 3).
* ``vdm_linear``   VDM's fixed-linear gamma: alpha_bar(t) = sigmoid(-gamma(t)), gamma linear in t (B.1.4).

How they relate to the paper's sigmoid, written in VDM notation sigma_t^2 = sigmoid(gamma(t)) with
gamma = -logSNR (B.1.4). That identity alone holds for *every* variance-preserving schedule (it just
defines gamma = log((1 - alpha_bar)/alpha_bar)); what makes a schedule "sigmoid" is the shape of gamma:

* ``vdm_linear`` is that formula literally with gamma(t) = gamma_min + (gamma_max - gamma_min) t
  (VDM CIFAR10: -13.3, 5.0), evaluated on the grid t = k/T.
* ``sigmoid`` is the same formula with gamma(t) = (start + t (end - start)) / tau, *affinely renormalised*
  so that sigma_0^2 = 0 and sigma_1^2 = 1: since 1 - logistic(u) = logistic(-u),
  1 - alpha_bar(t) = (logistic(gamma(t)) - logistic(start/tau)) / (logistic(end/tau) - logistic(start/tau)).
  With (start, end, tau) = (-3, 3, 1) its logSNR runs from about +8.1 to -8.1 and the last beta is clipped.
* ``beta_sigmoid`` is unrelated: its gamma is not linear and it is the sigmoid some codebases mean by the
  name. Pitfall: "gamma" is alpha_bar itself in Chen 2023 but -logSNR in VDM (B.1.4).
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
    # float64 end points too (a float32 torch.tensor(start / tau) here costs 8 digits)
    v_start = torch.sigmoid(torch.tensor(start / tau, dtype=torch.float64))
    v_end = torch.sigmoid(torch.tensor(end / tau, dtype=torch.float64))
    alpha_bar = (v_end - torch.sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
    return _betas_from_alpha_bar(alpha_bar / alpha_bar[0], max_beta)


def beta_sigmoid_betas(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """GeoDiff sigmoid *in beta* (ermongroup/ddim ``get_beta_schedule('sigmoid')``) (B.1.3 item 3).

    beta = logistic(linspace(-6, 6, T)) (beta_end - beta_start) + beta_start.
    """
    return torch.sigmoid(torch.linspace(-6.0, 6.0, T, dtype=torch.float64)) * (beta_end - beta_start) + beta_start


def vdm_linear_betas(T: int, gamma_min: float = -13.3, gamma_max: float = 5.0, max_beta: float = 0.999) -> Tensor:
    """VDM fixed-linear schedule: alpha_bar(t) = sigmoid(-gamma(t)), gamma(t) = gamma_min + (gamma_max - gamma_min) t.

    On the grid t = k/T, k = 0..T; betas are the ratios, so alpha_bar_t is relative to alpha_bar(0) = 1 - 1.7e-6.
    """
    t = torch.arange(T + 1, dtype=torch.float64) / T
    alpha_bar = torch.sigmoid(-(gamma_min + (gamma_max - gamma_min) * t))
    return _betas_from_alpha_bar(alpha_bar, max_beta)


SCHEDULES: dict[str, Callable[..., Tensor]] = {
    "linear": linear_betas,
    "cosine": cosine_betas,
    "sigmoid": sigmoid_betas,
    "beta_sigmoid": beta_sigmoid_betas,
    "vdm_linear": vdm_linear_betas,
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


# ---------------------------------------------------------------------------------------------------------------
# Continuous SDEs (score-SDE, REFERENCE B.6), written in EDM's sigma / scale form (B.7.1):
# x_t = s(t) (x_0 + sigma(t) n), so the VP kernel has mean coefficient s(t) and std s(t) sigma(t).


@dataclass(frozen=True)
class VPSDE:
    """Variance preserving: beta(t) = beta_min + t (beta_max - beta_min), dx = -1/2 beta x dt + sqrt(beta) dw.

    sigma(t) = sqrt(exp(1/2 beta_d t^2 + beta_min t) - 1), s(t) = 1 / sqrt(1 + sigma(t)^2) (EDM Table 1).
    Discretisation (score-SDE ``VPSDE.discretize``): beta_i = linspace(beta_min/N, beta_max/N, N)[i].
    """

    beta_min: float = 0.1
    beta_max: float = 20.0
    kind: str = "vp"

    @property
    def beta_d(self) -> float:
        return self.beta_max - self.beta_min

    def beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * self.beta_d

    def sigma(self, t: Tensor) -> Tensor:
        return torch.expm1(0.5 * self.beta_d * t**2 + self.beta_min * t).sqrt()

    def sigma_inv(self, sigma: Tensor) -> Tensor:
        return ((self.beta_min**2 + 2 * self.beta_d * torch.log1p(sigma**2)).sqrt() - self.beta_min) / self.beta_d

    def sigma_deriv(self, t: Tensor) -> Tensor:
        """d sigma / dt = 1/2 beta(t) (sigma + 1/sigma) (EDM's ``vp_sigma_deriv``)."""
        sigma = self.sigma(t)
        return 0.5 * self.beta(t) * (sigma + 1 / sigma)

    def scale(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * (0.5 * self.beta_d * t**2 + self.beta_min * t))

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return -0.5 * self.beta(t) * x

    def diffusion(self, t: Tensor) -> Tensor:
        return self.beta(t).sqrt()

    def discrete_betas(self, N: int) -> Tensor:
        return torch.linspace(self.beta_min / N, self.beta_max / N, N, dtype=torch.float64)

    def prior_std(self) -> float:
        return 1.0


@dataclass(frozen=True)
class VESDE:
    """Variance exploding: sigma(t) = sigma_min (sigma_max / sigma_min)^t, dx = sigma(t) sqrt(2 ln(max/min)) dw.

    As score-SDE, the perturbation std is sigma(t) itself (not sqrt(sigma^2 - sigma_min^2)); prior N(0, sigma_max^2).
    Discretisation (``VESDE.discretize``): sigma_i = exp(linspace(ln sigma_min, ln sigma_max, N))[i].
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0
    kind: str = "ve"

    def sigma(self, t: Tensor) -> Tensor:
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** t

    def sigma_inv(self, sigma: Tensor) -> Tensor:
        return torch.log(sigma / self.sigma_min) / math.log(self.sigma_max / self.sigma_min)

    def scale(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def drift(self, x: Tensor, t: Tensor) -> Tensor:
        return torch.zeros_like(x)

    def diffusion(self, t: Tensor) -> Tensor:
        return self.sigma(t) * math.sqrt(2 * math.log(self.sigma_max / self.sigma_min))

    def discrete_sigmas(self, N: int) -> Tensor:
        return torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), N, dtype=torch.float64))

    def prior_std(self) -> float:
        return self.sigma_max


def sigma_summary(sigma_min: float, sigma_max: float) -> dict[str, float]:
    """VE-equivalent numbers of a sigma range, keyed like ``DiscreteSchedule.summary`` (alpha_bar = 1/(1+sigma^2))."""
    return {
        "alpha_bar_T": 1.0 / (1.0 + sigma_max**2),
        "log_snr_T": -2 * math.log(sigma_max),
        "log_snr_1": -2 * math.log(sigma_min),
        "sigma_min": sigma_min,
        "sigma_max": sigma_max,
    }
