"""Continuous score-SDE dynamics, VP and VE (Song et al. 2021; REFERENCE B.6), trained through EDM's
preconditioned denoisers (B.7.1) so that every sigma-space sampler can sample them.

Both losses are score-SDE's ``get_sde_loss_fn`` with the default weighting lambda(t) = std^2:
t ~ U(eps, 1), x_t = s(t) (x_0 + sigma(t) z), loss ||std * s_theta + z||^2, which is ||eps_hat - z||^2 for VP
(the net predicts eps) and ||F + z||^2 for VE (F = sigma * score). Data stay in [-1, 1] (VE sigmas in [-1, 1] units).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainables.dynamics.precond import Precond, VEPrecond, VPPrecond
from trainables.schedules import VESDE, VPSDE, sigma_summary

Tensor = torch.Tensor


class _SDEDynamics:
    eps: float
    reduce_mean: bool
    sde: VPSDE | VESDE

    def sampling_model(self, net: nn.Module, class_labels: Tensor | None = None) -> Precond:
        raise NotImplementedError

    def loss(
        self, net: nn.Module, x0: Tensor, generator: torch.Generator, class_labels: Tensor | None = None
    ) -> Tensor:
        u = torch.rand(x0.shape[0], device=x0.device, generator=generator, dtype=torch.float64)
        t = self.eps + (1 - self.eps) * u
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        per_elem = self.sampling_model(net, class_labels).loss(x0, self.sde.sigma(t), noise)
        if self.reduce_mean:
            return per_elem.mean()
        return 0.5 * per_elem.reshape(x0.shape[0], -1).sum(dim=1).mean()

    def to_data(self, x: Tensor) -> Tensor:
        return x

    def summary(self) -> dict[str, float]:
        model = self.sampling_model(lambda *a: None)
        return sigma_summary(model.sigma_min, model.sigma_max)


class VPSDEDynamics(_SDEDynamics):
    """VP SDE, beta in [beta_min, beta_max]; the net predicts eps and sees the label (M - 1) t."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, eps: float = 1e-5, M: int = 1000,
                 reduce_mean: bool = True):  # fmt: skip
        self.sde, self.eps, self.M, self.reduce_mean = VPSDE(beta_min, beta_max), eps, M, reduce_mean

    @classmethod
    def from_spec(cls, spec: Any) -> VPSDEDynamics:
        return cls(spec.beta_min, spec.beta_max, spec.eps, spec.M, spec.reduce_mean)

    def sampling_model(self, net: nn.Module, class_labels: Tensor | None = None) -> VPPrecond:
        return VPPrecond(net=net, class_labels=class_labels, sde=self.sde, M=self.M, eps_t=self.eps)


class VESDEDynamics(_SDEDynamics):
    """VE SDE, sigma in [sigma_min, sigma_max] ([-1, 1] units); the net sees ln(sigma / 2)."""

    def __init__(self, sigma_min: float = 0.02, sigma_max: float = 100.0, eps: float = 1e-5,
                 reduce_mean: bool = False):  # fmt: skip
        self.sde, self.eps, self.reduce_mean = VESDE(sigma_min, sigma_max), eps, reduce_mean

    @classmethod
    def from_spec(cls, spec: Any) -> VESDEDynamics:
        return cls(spec.sigma_min, spec.sigma_max, spec.eps, spec.reduce_mean)

    def sampling_model(self, net: nn.Module, class_labels: Tensor | None = None) -> VEPrecond:
        return VEPrecond(net=net, class_labels=class_labels, sde=self.sde)
