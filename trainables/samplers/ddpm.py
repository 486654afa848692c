"""Discrete DDPM-family samplers on an epsilon model: ancestral (Markovian) and DDIM.

Coefficients are computed in float64 from alpha-bar (as guided-diffusion's numpy buffers) and the
state x stays in the model's dtype.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainables.samplers.base import EpsModel, SampleResult, randn_like, timestep_sequence

Tensor = torch.Tensor
# cond_fn(x_t, t) -> scale * grad_x log p(y | x_t, t), t the ORIGINAL timestep index (trainables/guidance.py)
CondFn = Callable[[Tensor, int], Tensor]


def _x0_from_eps(x: Tensor, eps: Tensor, ab: float) -> Tensor:
    """x0_hat = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) (Ho et al. Eq. 15 rearranged)."""
    return (x - (1 - ab) ** 0.5 * eps) / ab**0.5


def ancestral(
    model: EpsModel,
    noise: Tensor,
    *,
    generator: torch.Generator | None = None,
    steps: int | None = None,
    spacing: str = "linspace",
    variance: str = "fixed_large",
    clip_x0: bool = True,
    cond_fn: CondFn | None = None,
) -> SampleResult:
    """Ho et al. 2020 Alg. 2 via the posterior q(x_{t-1} | x_t, x0_hat) (REFERENCE B.2).

    Respacing (``steps`` < T): betas are rebuilt over the kept subsequence,
    beta'_k = 1 - alpha_bar_{t_k} / alpha_bar_{t_{k-1}}, and the model still sees t_k.
    Variance: ``fixed_large`` = beta_t, ``fixed_small`` = posterior beta-tilde_t; at the last step (index 0)
    both use beta-tilde_1 (guided-diffusion), which only matters for guidance since no noise is added there.
    ``cond_fn``: classifier guidance, ADM (Dhariwal & Nichol 2021) Alg. 1: the mean moves by Sigma * cond_fn(x_t, t)
    with Sigma the variance used here (REFERENCE B.4), the gradient taken at x_t.
    """
    ts = list(range(model.T)) if steps is None else timestep_sequence(model.T, steps, spacing)
    ab_all = model.alphas_cumprod.to(torch.float64)
    ab = ab_all[ts]
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float64), ab[:-1]])
    betas = 1 - ab / ab_prev
    post_var = betas * (1 - ab_prev) / (1 - ab)
    if variance == "fixed_large":
        var = torch.cat([post_var[1:2], betas[1:]]) if len(ts) > 1 else betas
    elif variance == "fixed_small":
        var = torch.cat([post_var[1:2], post_var[1:]]) if len(ts) > 1 else post_var
    else:
        raise ValueError(f"unknown variance {variance!r}; allowed: fixed_large, fixed_small")
    c1 = betas * ab_prev.sqrt() / (1 - ab)
    c2 = (1 - ab_prev) * (1 - betas).sqrt() / (1 - ab)
    x = noise
    for k in reversed(range(len(ts))):
        eps = model(x, ts[k])
        x0 = _x0_from_eps(x, eps, float(ab[k]))
        if clip_x0:
            x0 = x0.clamp(-1, 1)
        mean = float(c1[k]) * x0 + float(c2[k]) * x
        if cond_fn is not None:
            mean = mean + float(var[k]) * cond_fn(x, ts[k])
        x = mean + float(var[k]) ** 0.5 * randn_like(x, generator) if k > 0 else mean
    return SampleResult(x=x, nfe=len(ts))


def ddim(
    model: EpsModel,
    noise: Tensor,
    *,
    generator: torch.Generator | None = None,
    steps: int = 50,
    eta: float = 0.0,
    spacing: str = "leading",
    clip_x0: bool = False,
    cond_fn: CondFn | None = None,
) -> SampleResult:
    """DDIM, Song et al. 2021 Eq. 12 (REFERENCE B.3).

    x_{t'} = sqrt(ab_{t'}) x0_hat + sqrt(1 - ab_{t'} - s^2) eps + s z,
    s = eta sqrt((1 - ab_{t'}) / (1 - ab_t)) sqrt(1 - ab_t / ab_{t'}); the final step targets ab = 1.
    With ``clip_x0`` x0_hat is clipped and eps re-derived from it (guided-diffusion ``ddim_sample``).
    ``cond_fn``: classifier guidance, ADM Alg. 2: eps <- eps - sqrt(1 - ab_t) cond_fn(x_t, t), then x0_hat is
    recomputed from the guided eps and NOT re-clipped (guided-diffusion ``condition_score``; REFERENCE B.3/B.4).
    """
    ts = timestep_sequence(model.T, steps, spacing)
    ab_all = model.alphas_cumprod.to(torch.float64)
    x = noise
    for k in reversed(range(len(ts))):
        ab = float(ab_all[ts[k]])
        ab_prev = float(ab_all[ts[k - 1]]) if k > 0 else 1.0
        eps = model(x, ts[k])
        x0 = _x0_from_eps(x, eps, ab)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = (x - ab**0.5 * x0) / (1 - ab) ** 0.5
        if cond_fn is not None:
            eps = eps - (1 - ab) ** 0.5 * cond_fn(x, ts[k])
            x0 = _x0_from_eps(x, eps, ab)
        sigma = eta * ((1 - ab_prev) / (1 - ab)) ** 0.5 * (1 - ab / ab_prev) ** 0.5
        x = ab_prev**0.5 * x0 + max(1 - ab_prev - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * randn_like(x, generator)
    return SampleResult(x=x, nfe=len(ts))
