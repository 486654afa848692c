"""NCSNv2 (Song & Ermon 2020; ermongroup/ncsnv2): geometric noise levels and sigma^2-weighted DSM (REFERENCE B.5).

Works on [0, 1] data as the original: ``loss`` maps the trainable's [-1, 1] batches to [0, 1] and ``to_data``
maps samples back. Sigmas are relative to [0, 1] data (CIFAR10: 50 ... 0.01, L = 232).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from trainables.dynamics.precond import NCSNv2Precond, geometric_sigmas
from trainables.schedules import sigma_summary

Tensor = torch.Tensor


def max_pairwise_distance(x: Tensor, chunk: int = 1024) -> float:
    """Largest Euclidean distance between two rows of x (B, ...): NCSNv2 Technique 1 for sigma_1."""
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    best = 0.0
    for lo in range(0, flat.shape[0], chunk):
        best = max(best, float(torch.cdist(flat[lo : lo + chunk], flat).max()))
    return best


class NCSNv2:
    """NCSNv2 dynamics: DSM loss 1/2 ||sigma s(x~, sigma) + z||^2 summed over pixels, mean over the batch."""

    def __init__(self, sigma_begin: float = 50.0, sigma_end: float = 0.01, num_levels: int = 232,
                 sigma_begin_from_data: bool = False):  # fmt: skip
        self.sigma_end, self.num_levels = sigma_end, num_levels
        self.sigma_begin_from_data = sigma_begin_from_data
        self.sigmas = geometric_sigmas(sigma_begin, sigma_end, num_levels)

    @classmethod
    def from_spec(cls, spec: Any) -> NCSNv2:
        return cls(spec.sigma_begin, spec.sigma_end, spec.num_levels, spec.sigma_begin_from_data)

    def fit_data(self, train_x: Tensor) -> None:
        """Optional hook, called once with the training images in [-1, 1]: sigma_1 from the data when asked."""
        if self.sigma_begin_from_data:
            sigma_begin = max_pairwise_distance((train_x + 1) / 2)
            self.sigmas = geometric_sigmas(sigma_begin, self.sigma_end, self.num_levels)

    def loss(
        self, net: nn.Module, x0: Tensor, generator: torch.Generator, class_labels: Tensor | None = None
    ) -> Tensor:
        """ncsnv2 ``anneal_dsm_score_estimation`` with anneal_power 2: level index uniform, x~ = x + sigma z."""
        x0 = (x0 + 1) / 2
        idx = torch.randint(0, self.num_levels, (x0.shape[0],), device=x0.device, generator=generator)
        sigma = self.sigmas.to(x0.device)[idx]
        noise = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)
        per_elem = self.sampling_model(net, class_labels).loss(x0, sigma, noise)
        return 0.5 * per_elem.reshape(x0.shape[0], -1).sum(dim=1).mean()

    def sampling_model(self, net: nn.Module, class_labels: Tensor | None = None) -> NCSNv2Precond:
        return NCSNv2Precond(net=net, class_labels=class_labels, sigmas=self.sigmas)

    def to_data(self, x: Tensor) -> Tensor:
        return 2 * x - 1

    def summary(self) -> dict[str, float]:
        return {**sigma_summary(float(self.sigmas[-1]), float(self.sigmas[0])), "num_levels": self.num_levels}
