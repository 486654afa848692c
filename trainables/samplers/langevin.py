"""Annealed Langevin dynamics (Song & Ermon 2019 Alg. 1; NCSNv2 ``anneal_Langevin_dynamics``, REFERENCE B.5)."""

from __future__ import annotations

from typing import Any

import torch

from trainables.samplers.base import SampleResult, rand_like, randn_like, sigma_batch

Tensor = torch.Tensor


def annealed_langevin(
    model: Any,
    noise: Tensor,
    *,
    generator: torch.Generator | None = None,
    step_lr: float = 6.2e-6,
    steps_each: int = 5,
    denoise: bool = True,
    init: str = "uniform",
) -> SampleResult:
    """For each level sigma_i of ``model.sigmas`` (descending): alpha_i = eps sigma_i^2 / sigma_L^2 and ``steps_each``
    steps of x <- x + alpha_i s(x, sigma_i) + sqrt(2 alpha_i) z, with s = (D(x, sigma) - x) / sigma^2; then, with
    ``denoise``, one Tweedie step x <- x + sigma_L^2 s(x, sigma_L) = D(x, sigma_L) (NCSNv2 Technique/Eq. on denoising).

    ``init``: ``uniform`` draws x ~ U[0, 1] from ``generator`` and ignores ``noise`` (the original, for [0, 1] data);
    ``gaussian`` starts from noise * sigma_1. NFE = L * steps_each (+ 1 with ``denoise``). Caller's dtype.
    """
    sigmas = model.sigmas
    if init == "uniform":
        x = rand_like(noise, generator)
    elif init == "gaussian":
        x = noise * float(sigmas[0])
    else:
        raise ValueError(f"unknown init {init!r}; allowed: uniform, gaussian")
    sigma_L = float(sigmas[-1])
    for sigma in sigmas.tolist():
        alpha = step_lr * (sigma / sigma_L) ** 2
        for _ in range(steps_each):
            grad = (model(x, sigma_batch(x, sigma)) - x) / sigma**2
            x = x + alpha * grad + (2 * alpha) ** 0.5 * randn_like(x, generator)
    if denoise:
        x = model(x, sigma_batch(x, sigma_L))
    return SampleResult(x=x, nfe=len(sigmas) * steps_each + int(denoise))
