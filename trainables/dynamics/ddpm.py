"""Discrete DDPM (Ho et al. 2020): forward process q(x_t | x_0) and the simple epsilon loss (Eq. 14)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from trainables.schedules import DiscreteSchedule

Tensor = torch.Tensor


def q_sample(alphas_cumprod: Tensor, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Eq. 4)."""
    ab = alphas_cumprod[t].to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    return ab.sqrt() * x0 + (1 - ab).sqrt() * noise


def ddpm_loss(
    net: Callable[..., Tensor],
    schedule: DiscreteSchedule,
    x0: Tensor,
    generator: torch.Generator | None = None,
    class_labels: Tensor | None = None,
) -> Tensor:
    """L_simple = E_{t, eps} ||eps - eps_theta(x_t, t)||^2, t ~ U{0..T-1} (Ho et al. Alg. 1), mean over pixels."""
    t = torch.randint(0, schedule.T, (x0.shape[0],), device=x0.device, generator=generator)
    noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
    ab = schedule.alphas_cumprod.to(x0.device)
    x_t = q_sample(ab, x0, t, noise)
    eps = net(x_t, t.to(x0.dtype), class_labels)
    return torch.mean((eps - noise) ** 2)
