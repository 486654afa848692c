"""Training losses of every dynamics: the exact model attains the closed-form irreducible loss, and a tiny MLP's
loss goes down in a few dozen Adam steps. Data: a 2-D Gaussian in [-1, 1] units (x_0 ~ N(m, C))."""

from __future__ import annotations

import math

import pytest
import torch
from gmm_exact import ExactEpsNet, GaussianMixture
from pydantic import TypeAdapter
from torch import nn

from study.contract.spec.dynamics import DynamicsSpec
from trainables.dynamics import build_dynamics
from trainables.dynamics.ncsn import max_pairwise_distance

DYN = TypeAdapter(DynamicsSpec)


pytestmark = pytest.mark.usefixtures("one_thread")


GAUSS = GaussianMixture(torch.tensor([[0.3, -0.2]]), torch.tensor([[[0.09, 0.04], [0.04, 0.16]]]), torch.ones(1))


def irreducible(lam: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """E||(D*(x) - x_0)/sigma||^2 = tr Var(x_0|x)/sigma^2 = sum_i lam_i / (lam_i + sigma^2) = E||eps - eps*||^2
    for a Gaussian x_0 with covariance eigenvalues lam (the same number for the eps, F and sigma-score targets)."""
    return (lam[None] / (lam[None] + sigma[:, None] ** 2)).sum(-1)


def exact_net(kind: str, gmm: GaussianMixture, dyn) -> nn.Module | object:
    """The network that makes the family's preconditioned denoiser exact (inverting c_in and c_noise)."""
    if kind == "ddpm":
        return ExactEpsNet(gmm, dyn.schedule.alphas_cumprod)

    def net(x_in: torch.Tensor, c_noise: torch.Tensor, labels) -> torch.Tensor:
        c = c_noise.to(torch.float64)
        if kind == "vp_sde":
            sigma = dyn.sde.sigma(c / (dyn.M - 1))
            x = x_in.to(torch.float64) * (sigma**2 + 1).sqrt()[:, None]
            return (x - gmm.denoise(x, sigma)) / sigma[:, None]
        sigma, x = (2 * torch.exp(c), x_in) if kind == "ve_sde" else (torch.exp(c), (x_in + 1) / 2)
        return (gmm.denoise(x, sigma) - x) / sigma[:, None]

    return net


@pytest.mark.parametrize("kind", ["ddpm", "ncsnv2", "vp_sde", "ve_sde"])
def test_exact_model_attains_irreducible_loss(kind):
    """Monte-Carlo loss of the exact model vs the closed form, within 5 standard errors over 20 batches of 20k."""
    spec = {"kind": kind} if kind != "ncsnv2" else {"kind": kind, "sigma_begin": 5.0, "num_levels": 50}
    if kind == "ddpm":
        spec["schedule"] = {"kind": "cosine"}
    dyn = build_dynamics(DYN.validate_python(spec))
    lam, d = GAUSS.lam[0], 2
    if kind == "ddpm":
        ab = dyn.schedule.alphas_cumprod
        expected = float(irreducible(lam, ((1 - ab) / ab).sqrt()).mean()) / d  # mean over pixels, t uniform
        gmm_model = GAUSS
    elif kind == "ncsnv2":
        gmm_model = GAUSS.affine(0.5, 0.5)  # the family works on [0, 1] data
        expected = 0.5 * float(irreducible(gmm_model.lam[0], dyn.sigmas).mean())  # 1/2 pixel sum, levels uniform
    else:
        gmm_model = GAUSS
        t = torch.linspace(dyn.eps, 1, 200_001, dtype=torch.float64)
        per_t = irreducible(lam, dyn.sde.sigma(t))
        mean_over_t = float(torch.trapezoid(per_t, t)) / (1 - dyn.eps)
        expected = mean_over_t / d if dyn.reduce_mean else 0.5 * mean_over_t
    net = exact_net(kind, gmm_model, dyn)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(20):
        x0, _ = GAUSS.sample(20_000, gen)
        losses.append(float(dyn.loss(net, x0, gen)))
    mean, se = sum(losses) / len(losses), float(torch.tensor(losses).std()) / math.sqrt(len(losses))
    assert abs(mean - expected) < 5 * se + 1e-9, (mean, expected, se)


class TinyMLP(nn.Module):
    """x (B, 2) and a scalar noise label -> (B, 2): enough to see a loss fall."""

    def __init__(self, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(2 + 8, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(), nn.Linear(width, 2)
        )
        self.register_buffer("freqs", torch.exp(torch.linspace(0, -6, 4)))

    def forward(self, x: torch.Tensor, noise_label: torch.Tensor, class_labels=None) -> torch.Tensor:
        a = noise_label[:, None].float() * self.freqs[None]
        return self.net(torch.cat([x.float(), a.sin(), a.cos()], dim=1))


@pytest.mark.parametrize("kind", ["ddpm", "ncsnv2", "vp_sde", "ve_sde"])
def test_loss_decreases_when_training_a_tiny_mlp(kind):
    spec = {"kind": kind} if kind != "ncsnv2" else {"kind": kind, "sigma_begin": 3.0, "num_levels": 20}
    dyn = build_dynamics(DYN.validate_python(spec))
    torch.manual_seed(0)
    net = TinyMLP()
    data, _ = GAUSS.sample(4096, torch.Generator().manual_seed(1))
    data = data.float()

    def eval_loss() -> float:
        with torch.no_grad():
            return float(dyn.loss(net, data, torch.Generator().manual_seed(2)))

    before = eval_loss()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(3)
    for step in range(60):
        batch = data[(step * 256) % 4096 :][:256]
        loss = dyn.loss(net, batch, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
    after = eval_loss()
    assert after < 0.8 * before, (before, after)


def test_ncsnv2_sigma_begin_from_data():
    """Technique 1: sigma_1 = largest pairwise distance of the [0, 1]-mapped training data; levels stay geometric."""
    dyn = build_dynamics(DYN.validate_python({"kind": "ncsnv2", "sigma_begin_from_data": True, "num_levels": 10}))
    x = torch.rand(300, 1, 4, 4) * 2 - 1
    dyn.fit_data(x)
    flat = ((x + 1) / 2).reshape(300, -1).double()
    brute = max(float((flat[i] - flat[j]).norm()) for i in range(300) for j in range(i))
    assert float(dyn.sigmas[0]) == pytest.approx(brute, rel=1e-12)
    assert max_pairwise_distance((x + 1) / 2, chunk=7) == pytest.approx(brute, rel=1e-12)
    assert float(dyn.sigmas[-1]) == pytest.approx(0.01)
    ratios = dyn.sigmas[1:] / dyn.sigmas[:-1]
    torch.testing.assert_close(ratios, ratios[:1].expand_as(ratios))


def test_ncsnv2_maps_data_to_unit_interval_and_back():
    dyn = build_dynamics(DYN.validate_python({"kind": "ncsnv2"}))
    x = torch.tensor([0.0, 0.5, 1.0])
    torch.testing.assert_close(dyn.to_data(x), torch.tensor([-1.0, 0.0, 1.0]))
    assert dyn.summary()["sigma_max"] == pytest.approx(50.0) and dyn.summary()["num_levels"] == 232
