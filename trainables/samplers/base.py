"""What every sampler shares: the result type, the two model interfaces, timestep spacings.

Two kinds of model reach a sampler (``dynamics.sampling_model(net, labels)`` builds them; any callable with the
same shape works too, which is how the tests drive samplers with exact denoisers):

* an ``EpsModel`` ``eps(x_t, t_index)`` for the discrete DDPM samplers (ancestral, DDIM);
* a ``Denoiser`` ``D(x, sigma) ~= E[x_0 | x_0 + sigma n = x]`` for the sigma-space samplers (EDM's interface):
  ``x`` is (B, ...) and ``sigma`` a float64 tensor of shape (B,). Optional attributes refine its use:
  ``sigma_min``/``sigma_max`` (the trained range: Karras samplers clamp to it), ``sde`` (a ``VPSDE``/``VESDE``,
  the native process of the score-SDE samplers), ``sigmas`` (discrete levels, descending: annealed Langevin) and
  ``round_sigma``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

Tensor = torch.Tensor


@dataclass(frozen=True)
class SampleResult:
    """Final samples and the number of network evaluations per sample (NFE)."""

    x: Tensor
    nfe: int


@dataclass(frozen=True)
class EpsModel:
    """A discrete epsilon-prediction model: ``net(x_t, t, class_labels)`` with t the ORIGINAL index 0..T-1.

    ``alphas_cumprod`` (float64) is the schedule the model was trained with; respaced samplers pick a
    subsequence of it but always hand the model the original timestep (guided-diffusion's _WrappedModel).
    """

    net: Callable[..., Tensor]
    alphas_cumprod: Tensor
    class_labels: Tensor | None = None

    @property
    def T(self) -> int:
        return self.alphas_cumprod.shape[0]

    def __call__(self, x: Tensor, t: int) -> Tensor:
        t_batch = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
        return self.net(x, t_batch, self.class_labels)


@dataclass(frozen=True)
class DiscreteEpsDenoiser:
    """The sigma-space view of a discrete epsilon model: D(x, sigma) for the Karras and score-SDE samplers.

    k-diffusion's ``DiscreteEpsDDPMDenoiser`` / EDM's ``iDDPMPrecond``: with sigma_t = sqrt((1 - abar_t) / abar_t),
    x = x_t / sqrt(abar_t) = x_0 + sigma_t n, so D(x, sigma) = x - sigma eps(x / sqrt(1 + sigma^2), t(sigma)).
    t(sigma) is the nearest trained level in log sigma (``quantize``, EDM's choice: the network only ever saw
    integer timesteps) or the log-sigma interpolation between the two nearest levels (k-diffusion's default).
    ``sigma_min``/``sigma_max`` are the trained range, so a Karras grid is clamped to it; ``round_sigma`` snaps a
    level onto the trained ones when quantized (EDM Alg. 2 calls it on every t_hat).
    """

    model: EpsModel
    quantize: bool = True

    @functools.cached_property
    def sigmas(self) -> Tensor:
        """The trained levels, ascending (t = 0 .. T-1), float64 (computed once: every network call reads them)."""
        ab = self.model.alphas_cumprod.to(torch.float64)
        return ((1 - ab) / ab).sqrt()

    @functools.cached_property
    def log_sigmas(self) -> Tensor:
        return self.sigmas.log()

    @functools.cached_property
    def _log_sigmas_on(self) -> dict[torch.device, Tensor]:
        """``log_sigmas`` per device, copied once (every network call reads them on the sampler's device)."""
        return {self.log_sigmas.device: self.log_sigmas}

    @property
    def sigma_min(self) -> float:
        return float(self.sigmas[0])

    @property
    def sigma_max(self) -> float:
        return float(self.sigmas[-1])

    def sigma_to_t(self, sigma: Tensor) -> Tensor:
        """Fractional (or, quantized, integer) timestep of each sigma, float64."""
        log_sigmas = self._log_sigmas_on.get(sigma.device)
        if log_sigmas is None:
            log_sigmas = self._log_sigmas_on[sigma.device] = self.log_sigmas.to(sigma.device)
        log_sigma = sigma.to(torch.float64).clamp(self.sigma_min, self.sigma_max).log()
        if self.quantize:
            return (log_sigma[:, None] - log_sigmas[None, :]).abs().argmin(dim=1).to(torch.float64)
        hi = torch.searchsorted(log_sigmas, log_sigma).clamp(1, log_sigmas.shape[0] - 1)
        lo = hi - 1
        w = (log_sigma - log_sigmas[lo]) / (log_sigmas[hi] - log_sigmas[lo])
        return lo.to(torch.float64) + w

    def round_sigma(self, sigma: float | Tensor) -> float | Tensor:
        if not self.quantize:
            return sigma
        s = torch.as_tensor(sigma, dtype=torch.float64).reshape(-1)
        rounded = self.sigmas[self.sigma_to_t(s).long()]
        return float(rounded[0]) if not isinstance(sigma, Tensor) else rounded.reshape(torch.as_tensor(sigma).shape)

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        """In x's dtype; the network runs in its own (float32 under the float64 Karras sampler)."""
        dtype = net_dtype(self.model.net, x.dtype)
        c_in = bcast(1 / (sigma.to(torch.float64) ** 2 + 1).sqrt(), x)
        eps = self.model.net((x * c_in).to(dtype), self.sigma_to_t(sigma).to(dtype), self.model.class_labels)
        return x - bcast(sigma, x) * eps.to(x.dtype)


def net_dtype(net: Callable[..., Tensor], fallback: torch.dtype) -> torch.dtype:
    """The dtype of a module's first parameter (a plain callable: ``fallback``)."""
    params = getattr(net, "parameters", None)
    if params is None:
        return fallback
    first = next(iter(params()), None)
    return first.dtype if first is not None else fallback


def timestep_sequence(T: int, steps: int, spacing: str) -> list[int]:
    """Ascending timestep indices visited by a sampler with ``steps`` steps (REFERENCE B.3).

    leading:   k*(T//S) (ermongroup/ddim 'uniform', diffusers default; never visits T-1 unless S = T)
    linspace:  round(linspace(0, T-1, S)) (both ends)
    trailing:  round(arange(T, 0, -T/S)) - 1 (always starts at T-1)
    quadratic: int(linspace(0, sqrt(0.8 T), S)^2) (DDIM paper's CIFAR10 choice; tops out at 0.8 T)
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}], got {steps}")
    if spacing == "leading":
        seq = [k * (T // steps) for k in range(steps)]
    elif spacing == "linspace":
        seq = [round(x) for x in torch.linspace(0, T - 1, steps, dtype=torch.float64).tolist()]
    elif spacing == "trailing":
        seq = [round(T - k * T / steps) - 1 for k in range(steps)]
    elif spacing == "quadratic":
        seq = [int(x) for x in (torch.linspace(0, math.sqrt(0.8 * T), steps, dtype=torch.float64) ** 2).tolist()]
    else:
        raise ValueError(f"unknown spacing {spacing!r}; allowed: leading, linspace, trailing, quadratic")
    return sorted(set(seq))


def randn_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.randn(x.shape, dtype=x.dtype, device=x.device, generator=generator)


def rand_like(x: Tensor, generator: torch.Generator | None) -> Tensor:
    return torch.rand(x.shape, dtype=x.dtype, device=x.device, generator=generator)


class Denoiser(Protocol):
    """D(x, sigma): the posterior mean of clean data given x = x_0 + sigma n (sigma: float64 tensor (B,))."""

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor: ...


def sigma_batch(x: Tensor, sigma: float | Tensor) -> Tensor:
    """A float64 (B,) tensor of noise levels for a batch ``x`` (the shape a ``Denoiser`` receives)."""
    return torch.as_tensor(sigma, dtype=torch.float64, device=x.device).expand(x.shape[0]).clone()


def bcast(v: Tensor, x: Tensor) -> Tensor:
    """A (B,) tensor viewed to broadcast against x (B, ...), in x's dtype."""
    return v.to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
