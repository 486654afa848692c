"""Karras et al. 2022 ("EDM") generalised sampler on a denoiser D(x, sigma) (REFERENCE B.7.2).

One function covers Alg. 1 (deterministic, S_churn = 0) and Alg. 2 (stochastic churn) with every design choice of
the paper's Table 1 as an option: ``solver`` {euler, heun}, ``discretization`` {vp, ve, iddpm, edm} (the sigma grid),
``schedule`` {vp, ve, linear} (sigma(t)) and ``scaling`` {vp, none} (s(t)). The ODE (EDM Eq. 4) is
dx/dt = (sigma'/sigma + s'/s) x - (sigma' s / sigma) D(x/s; sigma). Re-derived from the paper; state in float64.
Pitfalls kept on purpose (B.7.2): the sigma range is clamped to the model's; VP betas are re-derived from the clamped
range; the last step is always Euler; NFE = N (euler) or 2N - 1 (heun).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from trainables.samplers.base import SampleResult, randn_like, sigma_batch
from trainables.schedules import VPSDE

Tensor = torch.Tensor
Fn = Callable[[Tensor], Tensor]

# Default sigma range per discretization (before clamping to the model's range), EDM Table 1.
_VP_REF = (19.9, 0.1)  # (beta_d, beta_min) of the reference VP process


def _vp(beta_d: float, beta_min: float) -> VPSDE:
    # EDM parameterises the VP process by (beta_d, beta_min); one sigma(t) for every VP formula: VPSDE's
    return VPSDE(beta_min=beta_min, beta_max=beta_min + beta_d)


def vp_sigma(beta_d: float, beta_min: float) -> Fn:
    return _vp(beta_d, beta_min).sigma


def vp_sigma_deriv(beta_d: float, beta_min: float) -> Fn:
    return _vp(beta_d, beta_min).sigma_deriv


def vp_sigma_inv(beta_d: float, beta_min: float) -> Fn:
    return _vp(beta_d, beta_min).sigma_inv


def iddpm_sigmas(M: int = 1000, C_1: float = 0.001, C_2: float = 0.008) -> Tensor:
    """The iDDPM table u_0 > ... > u_M = 0: u_{j-1} = sqrt((u_j^2 + 1) / max(abar_{j-1} / abar_j, C_1) - 1),
    abar_j = sin^2(pi/2 j / (M (C_2 + 1))) (EDM Table 1, 'iDDPM' column). u_0 ~ 20291, u_999 ~ 0.0064."""

    def alpha_bar(j: int) -> float:
        return math.sin(0.5 * math.pi * j / M / (C_2 + 1)) ** 2

    u = [0.0] * (M + 1)
    for j in range(M, 0, -1):
        u[j - 1] = math.sqrt((u[j] ** 2 + 1) / max(alpha_bar(j - 1) / alpha_bar(j), C_1) - 1)
    return torch.tensor(u, dtype=torch.float64)


def karras_sigmas(
    steps: int,
    discretization: str,
    sigma_min: float,
    sigma_max: float,
    rho: float = 7.0,
    epsilon_s: float = 1e-3,
    C_1: float = 0.001,
    C_2: float = 0.008,
    M: int = 1000,
    vp_betas: tuple[float, float] = _VP_REF,
) -> Tensor:
    """sigma_0 > ... > sigma_{N-1} for a discretization over [sigma_min, sigma_max] (EDM Table 1 'time steps')."""
    i = torch.arange(steps, dtype=torch.float64)
    frac = i / max(steps - 1, 1)
    if discretization == "vp":
        return vp_sigma(*vp_betas)(1 + frac * (epsilon_s - 1))
    if discretization == "ve":
        return (sigma_max**2 * (sigma_min**2 / sigma_max**2) ** frac).sqrt()
    if discretization == "iddpm":
        u = iddpm_sigmas(M, C_1, C_2)
        u = u[(u >= sigma_min) & (u <= sigma_max)]
        return u[((len(u) - 1) * frac).round().to(torch.int64)]
    if discretization == "edm":
        return (sigma_max ** (1 / rho) + frac * (sigma_min ** (1 / rho) - sigma_max ** (1 / rho))) ** rho
    raise ValueError(f"unknown discretization {discretization!r}; allowed: vp, ve, iddpm, edm")


def default_sigma_range(discretization: str, epsilon_s: float = 1e-3) -> tuple[float, float]:
    if discretization == "vp":
        sig = vp_sigma(*_VP_REF)
        one = torch.tensor(1.0, dtype=torch.float64)  # float64 like every other grid (a float32 1.0 shifts it 4e-8)
        return float(sig(torch.tensor(epsilon_s, dtype=torch.float64))), float(sig(one))
    return {"ve": (0.02, 100.0), "iddpm": (0.002, 81.0), "edm": (0.002, 80.0)}[discretization]


def vp_betas_for_range(sigma_min: float, sigma_max: float, epsilon_s: float = 1e-3) -> tuple[float, float]:
    """(beta_d, beta_min) of the VP process with sigma_vp(1) = sigma_max and sigma_vp(epsilon_s) = sigma_min.

    Solves 1/2 beta_d t^2 + beta_min t = ln(sigma^2 + 1) at t = 1 and t = epsilon_s (EDM App. D.1 / ablation_sampler).
    """
    beta_d = 2 * (math.log(sigma_min**2 + 1) / epsilon_s - math.log(sigma_max**2 + 1)) / (epsilon_s - 1)
    return beta_d, math.log(sigma_max**2 + 1) - 0.5 * beta_d


def karras(
    model: Any,
    noise: Tensor,
    *,
    generator: torch.Generator | None = None,
    steps: int = 18,
    solver: str = "heun",
    discretization: str = "edm",
    schedule: str = "linear",
    scaling: str = "none",
    sigma_min: float | None = None,
    sigma_max: float | None = None,
    rho: float = 7.0,
    epsilon_s: float = 1e-3,
    C_1: float = 0.001,
    C_2: float = 0.008,
    M: int = 1000,
    alpha: float = 1.0,
    S_churn: float = 0.0,
    S_tmin: float = 0.0,
    S_tmax: float = float("inf"),
    S_noise: float = 1.0,
) -> SampleResult:
    """EDM Alg. 2 generalised to any (sigma(t), s(t)) (EDM Eq. 4 and App. D; ``ablation_sampler``).

    Per step i: gamma = min(S_churn/N, sqrt(2)-1) if S_tmin <= sigma(t_i) <= S_tmax else 0;
    t_hat = sigma^-1(sigma(t_i)(1 + gamma)); x_hat = s(t_hat)/s(t_i) x + sqrt(sigma(t_hat)^2 - sigma(t_i)^2) s(t_hat)
    S_noise z; Euler x' = x_hat + h d(x_hat, t_hat), h = t_{i+1} - t_hat; Heun (alpha = 1; 1/2 = midpoint) corrects
    with d at t_hat + alpha h, except on the last step (t_N = 0).
    """
    d_min, d_max = default_sigma_range(discretization, epsilon_s)
    sigma_min = max(sigma_min if sigma_min is not None else d_min, float(getattr(model, "sigma_min", 0.0)))
    sigma_max = min(sigma_max if sigma_max is not None else d_max, float(getattr(model, "sigma_max", math.inf)))
    round_sigma: Fn = getattr(model, "round_sigma", lambda s: s)

    # VP process that hits exactly the clamped range: sigma_vp(1) = sigma_max, sigma_vp(epsilon_s) = sigma_min.
    vp_betas = vp_betas_for_range(sigma_min, sigma_max, epsilon_s)

    sigma_steps = karras_sigmas(steps, discretization, sigma_min, sigma_max, rho, epsilon_s, C_1, C_2, M, vp_betas)

    sigma: Fn
    sigma_deriv: Fn
    sigma_inv: Fn
    if schedule == "vp":
        sigma, sigma_deriv, sigma_inv = vp_sigma(*vp_betas), vp_sigma_deriv(*vp_betas), vp_sigma_inv(*vp_betas)
    elif schedule == "ve":
        sigma, sigma_deriv, sigma_inv = (lambda t: t.sqrt()), (lambda t: 0.5 / t.sqrt()), (lambda s: s**2)
    elif schedule == "linear":
        sigma, sigma_deriv, sigma_inv = (lambda t: t), (lambda t: torch.ones_like(t)), (lambda s: s)
    else:
        raise ValueError(f"unknown schedule {schedule!r}; allowed: vp, ve, linear")

    s: Fn
    s_deriv: Fn
    if scaling == "vp":
        s = lambda t: 1 / (1 + sigma(t) ** 2).sqrt()  # noqa: E731
        s_deriv = lambda t: -sigma(t) * sigma_deriv(t) * s(t) ** 3  # noqa: E731
    elif scaling == "none":
        s, s_deriv = (lambda t: torch.ones_like(t)), (lambda t: torch.zeros_like(t))
    else:
        raise ValueError(f"unknown scaling {scaling!r}; allowed: vp, none")
    if solver not in ("euler", "heun"):
        raise ValueError(f"unknown solver {solver!r}; allowed: euler, heun")

    def derivative(x: Tensor, t: Tensor) -> Tensor:
        """dx/dt = (sigma'/sigma + s'/s) x - sigma' s / sigma D(x/s; sigma) (EDM Eq. 4)."""
        denoised = model(x / s(t), sigma_batch(x, sigma(t))).to(torch.float64)
        return (sigma_deriv(t) / sigma(t) + s_deriv(t) / s(t)) * x - sigma_deriv(t) * s(t) / sigma(t) * denoised

    t_steps = sigma_inv(round_sigma(sigma_steps))
    t_steps = torch.cat([t_steps, torch.zeros(1, dtype=torch.float64)])  # t_N = 0

    x_next = noise.to(torch.float64) * sigma(t_steps[0]) * s(t_steps[0])
    nfe = 0
    for i, (t_cur, t_next) in enumerate(zip(t_steps[:-1], t_steps[1:], strict=True)):
        x_cur = x_next
        gamma = min(S_churn / steps, math.sqrt(2) - 1) if S_tmin <= float(sigma(t_cur)) <= S_tmax else 0.0
        t_hat = sigma_inv(round_sigma(sigma(t_cur) + gamma * sigma(t_cur)))
        x_hat = s(t_hat) / s(t_cur) * x_cur
        if gamma > 0:  # no draw when there is no churn, so deterministic settings consume no randomness
            churn = (sigma(t_hat) ** 2 - sigma(t_cur) ** 2).clamp(min=0).sqrt() * s(t_hat) * S_noise
            x_hat = x_hat + churn * randn_like(x_cur, generator)
        h = t_next - t_hat

        d_cur = derivative(x_hat, t_hat)
        nfe += 1
        if solver == "euler" or i == steps - 1:
            x_next = x_hat + h * d_cur
        else:
            t_prime = t_hat + alpha * h
            d_prime = derivative(x_hat + alpha * h * d_cur, t_prime)
            nfe += 1
            x_next = x_hat + h * ((1 - 1 / (2 * alpha)) * d_cur + 1 / (2 * alpha) * d_prime)
    return SampleResult(x=x_next, nfe=nfe)
