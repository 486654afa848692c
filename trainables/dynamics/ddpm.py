"""Discrete DDPM (Ho et al. 2020): forward process q(x_t | x_0) and the simple epsilon loss (Eq. 14)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from trainables.samplers.base import EpsModel
from trainables.schedules import DiscreteSchedule, make_schedule

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


class DDPM:
    """Discrete DDPM dynamics: epsilon loss for training, an ``EpsModel`` for the discrete samplers."""

    def __init__(self, schedule: DiscreteSchedule):
        self.schedule = schedule

    @classmethod
    def from_spec(cls, spec: Any) -> DDPM:
        return cls(make_schedule(spec.schedule, spec.timesteps))

    def loss(
        self, net: nn.Module, x0: Tensor, generator: torch.Generator, class_labels: Tensor | None = None
    ) -> Tensor:
        return ddpm_loss(net, self.schedule, x0, generator, class_labels)

    def sampling_model(self, net: nn.Module, class_labels: Tensor | None = None) -> EpsModel:
        return EpsModel(net=net, alphas_cumprod=self.schedule.alphas_cumprod, class_labels=class_labels)

    def to_data(self, x: Tensor) -> Tensor:
        return x

    def summary(self) -> dict[str, float]:
        return self.schedule.summary()
