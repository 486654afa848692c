"""A Gaussian mixture whose denoiser, score and eps are exact under VP and VE perturbation (test helper).

x = x_0 + sigma n with x_0 ~ sum_k w_k N(m_k, C_k) is again a mixture, sum_k w_k N(m_k, C_k + sigma^2 I), so
E[x_0 | x] = sum_k r_k(x) (m_k + C_k (C_k + sigma^2 I)^-1 (x - m_k)) with r_k the posterior responsibilities.
The VP view x_t = sqrt(abar) x_0 + sqrt(1 - abar) eps is the same with sigma^2 = (1 - abar)/abar, x = x_t / sqrt(abar).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

Tensor = torch.Tensor


@dataclass
class GaussianMixture:
    means: Tensor  # (K, d)
    covs: Tensor  # (K, d, d)
    weights: Tensor  # (K,)
    lam: Tensor = field(init=False)
    U: Tensor = field(init=False)

    def __post_init__(self) -> None:
        self.means, self.covs, self.weights = (t.to(torch.float64) for t in (self.means, self.covs, self.weights))
        self.lam, self.U = torch.linalg.eigh(self.covs)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def affine(self, a: float, b: float) -> GaussianMixture:
        """The mixture of a x + b."""
        return GaussianMixture(a * self.means + b, a**2 * self.covs, self.weights)

    def sample(self, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, dtype=torch.float64, generator=generator)
        L = torch.linalg.cholesky(self.covs)
        return self.means[k] + torch.einsum("nij,nj->ni", L[k], z), k

    def _project(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """y_k = U_k^T (x - m_k), shrink_k = lam_k / (lam_k + sigma^2), log-likelihoods under C_k + sigma^2 I."""
        x = x.to(torch.float64).reshape(x.shape[0], -1)
        var = self.lam[None] + sigma.to(torch.float64).reshape(-1, 1, 1) ** 2  # (B, K, d)
        y = torch.einsum("kji,bkj->bki", self.U, x[:, None, :] - self.means[None])
        loglik = torch.log(self.weights)[None] - 0.5 * ((y**2 / var) + torch.log(var)).sum(-1)
        return y, self.lam[None] / var, loglik

    def responsibilities(self, x: Tensor, sigma: Tensor | float = 0.0) -> Tensor:
        sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
        return torch.softmax(self._project(x, sigma)[2], dim=-1)

    def denoise(self, x: Tensor, sigma: Tensor | float) -> Tensor:
        """E[x_0 | x_0 + sigma n = x], float64, shape of x."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64).expand(x.shape[0])
        y, shrink, loglik = self._project(x, sigma)
        r = torch.softmax(loglik, dim=-1)
        post = self.means[None] + torch.einsum("kij,bkj->bki", self.U, shrink * y)
        return (r[..., None] * post).sum(1).reshape(x.shape)

    def posterior_var_trace(self, sigma: float) -> float:
        """tr Var(x_0 | x) for a single-component mixture: sum lam sigma^2 / (lam + sigma^2)."""
        assert self.means.shape[0] == 1
        return float((self.lam * sigma**2 / (self.lam + sigma**2)).sum())


def three_blobs() -> GaussianMixture:
    """2-D, 3 anisotropic correlated components about 7 stds apart (posterior assignment is practically exact)."""
    return GaussianMixture(
        means=torch.tensor([[-1.2, 0.6], [1.2, 1.0], [0.2, -1.2]]),
        covs=torch.tensor([[[0.09, 0.03], [0.03, 0.04]], [[0.04, -0.02], [-0.02, 0.06]], [[0.0225, 0.0], [0.0, 0.09]]]),
        weights=torch.tensor([0.5, 0.3, 0.2]),
    )


@dataclass
class ExactDenoiser:
    """D(x, sigma) of a mixture, with the attributes a dynamics' denoiser carries (range, native SDE, levels)."""

    gmm: GaussianMixture
    sigma_min: float
    sigma_max: float
    sde: Any = None
    sigmas: Tensor | None = None
    calls: int = 0

    def __call__(self, x: Tensor, sigma: Tensor) -> Tensor:
        self.calls += 1
        assert sigma.shape == (x.shape[0],) and sigma.dtype == torch.float64
        return self.gmm.denoise(x, sigma).to(x.dtype)


@dataclass
class ExactEpsNet:
    """eps(x_t, t) = (x_t - sqrt(abar) D(x_t / sqrt(abar), sigma_t)) / sqrt(1 - abar): the net an EpsModel wraps."""

    gmm: GaussianMixture
    alphas_cumprod: Tensor

    def __call__(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        ab = self.alphas_cumprod[t.long()].to(torch.float64).reshape(-1, *([1] * (x.ndim - 1)))
        sigma = ((1 - ab) / ab).sqrt().reshape(-1)
        x64 = x.to(torch.float64)
        d = self.gmm.denoise(x64 / ab.sqrt(), sigma)
        return ((x64 - ab.sqrt() * d) / (1 - ab).sqrt()).to(x.dtype)


def match_report(x: Tensor, gmm: GaussianMixture, n_se: float = 5.0, bias: float = 0.0) -> list[str]:
    """Problems found comparing samples x with the mixture; empty when it matches.

    Samples go to the component of highest posterior (at sigma = 0). Tolerances are ``n_se`` Monte-Carlo standard
    errors plus an optional allowance ``bias`` (in units of the component's standard deviations / of the weight):
      weight w_k:  SE = sqrt(w (1 - w) / n)
      mean_i:      SE = sqrt(C_ii / n_k)
      cov_ij:      SE = sqrt((C_ii C_jj + C_ij^2) / n_k)   (Gaussian fourth moments)
    """
    x = x.to(torch.float64).reshape(x.shape[0], -1)
    problems = []
    if not torch.isfinite(x).all():
        return ["non-finite samples"]
    k_hat = gmm.responsibilities(x).argmax(-1)
    n = x.shape[0]
    for k in range(gmm.means.shape[0]):
        xs = x[k_hat == k]
        nk, w = xs.shape[0], float(gmm.weights[k])
        tol_w = n_se * math.sqrt(w * (1 - w) / n) + bias * w
        if abs(nk / n - w) > tol_w:
            problems.append(f"weight[{k}] {nk / n:.4f} vs {w:.4f} (tol {tol_w:.4f})")
        if nk < 10:
            continue
        C = gmm.covs[k]
        sd = C.diagonal().sqrt()
        mean_err = (xs.mean(0) - gmm.means[k]).abs()
        tol_m = n_se * sd / math.sqrt(nk) + bias * sd
        if (mean_err > tol_m).any():
            problems.append(f"mean[{k}] off by {mean_err.tolist()} (tol {tol_m.tolist()})")
        cov_err = (torch.cov(xs.T) - C).abs()
        tol_c = n_se * ((torch.outer(C.diagonal(), C.diagonal()) + C**2) / nk).sqrt() + bias * torch.outer(sd, sd)
        if (cov_err > tol_c).any():
            problems.append(f"cov[{k}] off by {cov_err.flatten().tolist()} (tol {tol_c.flatten().tolist()})")
    return problems
