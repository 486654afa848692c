"""Denoisers D(x, sigma) = c_skip x + c_out F(c_in x, c_noise) around a network F (EDM Table 1, REFERENCE B.7.1).

One wrapper per sigma-space family, so every sigma-space sampler can sample every model:

| family | c_skip | c_out  | c_in               | c_noise           | F predicts            |
|--------|--------|--------|--------------------|-------------------|-----------------------|
| VP     | 1      | -sigma | 1/sqrt(sigma^2+1)  | (M-1) sigma^-1(s) | eps (score-SDE VP)    |
| VE     | 1      | sigma  | 1                  | ln(sigma/2)       | sigma * score         |
| NCSNv2 | 1      | sigma  | (net sees 2x - 1)  | ln sigma          | sigma * score         |

Every family trains with lambda(sigma) = 1/sigma^2 on (D - x_0)^2, i.e. an unweighted MSE on F against its
target (x_0 - c_skip x) / c_out: ||F - n|| (VP) and ||F + n|| = ||sigma s + n|| (VE, NCSNv2).
The sigma range (``sigma_min``, ``sigma_max``) is what the family was trained on; Karras samplers clamp to it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from trainables.samplers.base import bcast, net_dtype, sigma_batch
from trainables.schedules import VESDE, VPSDE

Tensor = torch.Tensor



@dataclass(frozen=True)
class Precond:
    """Base: ``coefficients(sigma) -> (c_skip, c_out, c_in, c_noise)``, all float64 (B,)."""

    net: Callable[..., Tensor]
    class_labels: Tensor | None = None

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def net_input(self, x: Tensor, c_in: Tensor) -> Tensor:
        return bcast(c_in, x) * x

    def raw(self, x: Tensor, sigma: Tensor) -> Tensor:
        """F(c_in x, c_noise) in x's dtype (the net runs in its own dtype, e.g. float32 under a float64 sampler)."""
        _, _, c_in, c_noise = self.coefficients(sigma)
        dtype = net_dtype(self.net, x.dtype)
        return self.net(self.net_input(x, c_in).to(dtype), c_noise.to(dtype), self.class_labels).to(x.dtype)

    def __call__(self, x: Tensor, sigma: float | Tensor) -> Tensor:
        sigma = sigma_batch(x, sigma)
        c_skip, c_out, _, _ = self.coefficients(sigma)
        return bcast(c_skip, x) * x + bcast(c_out, x) * self.raw(x, sigma)

    def loss(self, x0: Tensor, sigma: Tensor, noise: Tensor) -> Tensor:
        """Per-element lambda(sigma) (D(x_0 + sigma n) - x_0)^2 with lambda = 1/sigma^2, computed on F's target."""
        x = x0 + bcast(sigma, x0) * noise
        c_skip, c_out, _, _ = self.coefficients(sigma)
        target = (x0 - bcast(c_skip, x0) * x) / bcast(c_out, x0)
        return bcast((c_out / sigma) ** 2, x0) * (self.raw(x, sigma) - target) ** 2


@dataclass(frozen=True)
class VPPrecond(Precond):
    """EDM's VPPrecond: the net predicts eps from the VP-scaled input, conditioned on (M-1) t."""

    sde: VPSDE = VPSDE()
    M: int = 1000
    eps_t: float = 1e-5

    @property
    def sigma_min(self) -> float:
        return float(self.sde.sigma(torch.tensor(self.eps_t, dtype=torch.float64)))

    @property
    def sigma_max(self) -> float:
        return float(self.sde.sigma(torch.tensor(1.0, dtype=torch.float64)))

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        c_in = 1 / (sigma**2 + 1).sqrt()
        return torch.ones_like(sigma), -sigma, c_in, (self.M - 1) * self.sde.sigma_inv(sigma)


@dataclass(frozen=True)
class VEPrecond(Precond):
    """EDM's VEPrecond: D = x + sigma F(x, ln(sigma/2)); sigmas in [-1, 1] data units."""

    sde: VESDE = VESDE(0.02, 100.0)

    @property
    def sigma_min(self) -> float:
        return self.sde.sigma_min

    @property
    def sigma_max(self) -> float:
        return self.sde.sigma_max

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        one = torch.ones_like(sigma)
        return one, sigma, one, torch.log(sigma / 2)


@dataclass(frozen=True)
class NCSNv2Precond(Precond):
    """NCSNv2: s(x, sigma) = F(x) / sigma on [0, 1] data; the net sees 2x - 1 (the original maps inside the
    RefineNet) and the noise label ln sigma (the unconditional NCSNv2 net ignores it)."""

    sigmas: Tensor = torch.tensor([1.0, 0.01], dtype=torch.float64)  # descending

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[-1])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[0])

    @property
    def sde(self) -> VESDE:
        return VESDE(self.sigma_min, self.sigma_max)

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        one = torch.ones_like(sigma)
        return one, sigma, one, torch.log(sigma)

    def net_input(self, x: Tensor, c_in: Tensor) -> Tensor:
        return 2 * x - 1


def geometric_sigmas(sigma_begin: float, sigma_end: float, num_levels: int) -> Tensor:
    """exp(linspace(ln sigma_1, ln sigma_L, L)), descending (ncsnv2 ``get_sigmas``, geometric)."""
    return torch.exp(torch.linspace(math.log(sigma_begin), math.log(sigma_end), num_levels, dtype=torch.float64))
