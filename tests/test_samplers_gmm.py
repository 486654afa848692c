"""The headline check: every sampler, driven by the EXACT denoiser (or eps, or score) of a known Gaussian mixture,
reproduces that mixture's component weights, means and covariances.

Tolerances. ``match_report`` allows ``N_SE`` = 5 Monte-Carlo standard errors of the statistic for the sample size
used (n = 10 000; component k holds n w_k samples): SE(w) = sqrt(w(1-w)/n), SE(mean_i) = sqrt(C_ii/n_k),
SE(C_ij) = sqrt((C_ii C_jj + C_ij^2)/n_k). With ~400 such comparisons in this file a correct sampler passes with
probability > 0.999 (two-sided 5-sigma tail 5.7e-7 each); the seeds are fixed, so the outcome is deterministic.
Converged samplers (full 1000-step chains, 500-step SDE solvers, 100-step Heun) must meet that with no allowance: a
wrong coefficient of a few percent fails it. Few-step samplers have a genuine discretisation bias on this sharp
mixture (component stds 0.15-0.3), so their checks add a stated allowance ``bias`` in units of the component's
standard deviation (means) or variance (covariances), measured once and rounded up; the same settings at many steps
pass with no allowance, which is what shows the bias is discretisation and not a bug.
"""

from __future__ import annotations

import math

import pytest
import torch
from gmm_exact import ExactDenoiser, ExactEpsNet, GaussianMixture, match_report, three_blobs

from trainables.dynamics.precond import NCSNv2Precond, VEPrecond, VPPrecond, geometric_sigmas
from trainables.samplers import (
    EpsModel,
    ancestral,
    annealed_langevin,
    ddim,
    euler_maruyama,
    karras,
    predictor_corrector,
    probability_flow_euler,
)
from trainables.schedules import VESDE, VPSDE, DiscreteSchedule, cosine_betas, linear_betas

N = 10_000
N_SE = 5.0
GMM = three_blobs()


pytestmark = pytest.mark.usefixtures("one_thread")


def draw(fn, model, seed: int = 1, dtype: torch.dtype = torch.float32, **params) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(N, GMM.dim, generator=gen, dtype=dtype)
    return fn(model, noise, generator=gen, **params).x


def check(x: torch.Tensor, gmm: GaussianMixture = GMM, bias: float = 0.0) -> None:
    problems = match_report(x, gmm, N_SE, bias)
    assert not problems, "\n".join(problems)


# ---- exact networks behind the real preconditioners (so the wrappers are tested too) -----------------------------


def vp_model(sde: VPSDE | None = None) -> VPPrecond:
    """VPPrecond around the exact eps-net: from (c_in x, (M-1) t) recover sigma and x, return eps = (x - D)/sigma."""

    sde = sde or VPSDE()

    def net(x_in: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        sigma = sde.sigma(c_noise.to(torch.float64) / 999)
        x = x_in.to(torch.float64) * (sigma**2 + 1).sqrt()[:, None]
        return ((x - GMM.denoise(x, sigma)) / sigma[:, None]).to(x_in.dtype)

    return VPPrecond(net=net, sde=sde)


def ve_model(sigma_min: float = 0.02, sigma_max: float = 100.0) -> VEPrecond:
    def net(x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        sigma = 2 * torch.exp(c_noise.to(torch.float64))
        return ((GMM.denoise(x, sigma) - x.to(torch.float64)) / sigma[:, None]).to(x.dtype)

    return VEPrecond(net=net, sde=VESDE(sigma_min, sigma_max))


def test_preconditioned_exact_nets_reproduce_the_denoiser():
    x = torch.randn(64, 2, dtype=torch.float64)
    for sigma in (0.003, 0.3, 7.0):
        s = torch.full((64,), sigma, dtype=torch.float64)
        for model in (vp_model(), ve_model()):
            torch.testing.assert_close(model(x, s), GMM.denoise(x, s), rtol=1e-9, atol=1e-9)


# ---- discrete DDPM samplers on an exact eps model ------------------------------------------------------------------


def eps_model(betas: torch.Tensor) -> EpsModel:
    ab = DiscreteSchedule(betas).alphas_cumprod
    return EpsModel(net=ExactEpsNet(GMM, ab), alphas_cumprod=ab)


@pytest.mark.parametrize("variance", ["fixed_large", "fixed_small"])
def test_ancestral_full_chain(variance):
    """1000 steps, no clipping (the mixture's support is unbounded): exact up to Monte-Carlo error."""
    check(draw(ancestral, eps_model(linear_betas(1000)), variance=variance, clip_x0=False))


def test_ancestral_cosine_respaced():
    """Respaced to 250 steps (model still sees the original t): measured bias <= 0.06 var, allowance 0.1."""
    check(draw(ancestral, eps_model(cosine_betas(1000)), steps=250, variance="fixed_small", clip_x0=False), bias=0.1)


@pytest.mark.parametrize(
    ("steps", "eta", "spacing", "bias"),
    [
        (999, 0.0, "trailing", 0.0),  # the paper's 999 steps: converged
        (50, 0.0, "trailing", 0.35),  # measured: variance of the narrowest component 27% low, means 0.09 sd
        (100, 1.0, "trailing", 0.3),  # eta = 1 (posterior variance): measured variances up to 20% high
    ],
)
def test_ddim(steps, eta, spacing, bias):
    check(draw(ddim, eps_model(linear_betas(1000)), steps=steps, eta=eta, spacing=spacing), bias=bias)


# ---- score-SDE samplers ---------------------------------------------------------------------------------------------


def test_euler_maruyama_vp():
    check(draw(euler_maruyama, vp_model(), steps=500))


def test_probability_flow_euler_ve():
    check(draw(probability_flow_euler, ve_model(), steps=500))


def test_predictor_corrector_ve():
    """Reverse diffusion + Langevin corrector (snr 0.16), as the VE NCSN++ configs."""
    check(draw(predictor_corrector, ve_model(), steps=400))


def test_euler_maruyama_vp_sde_on_ve_model():
    """A VE model integrated along the VP SDE (sde='vp'): the score of any denoiser is valid for any process."""
    check(draw(euler_maruyama, ve_model(), steps=400, sde="vp"))


# ---- Karras samplers (float64 state) --------------------------------------------------------------------------------


@pytest.mark.parametrize("discretization", ["vp", "ve", "iddpm", "edm"])
def test_karras_heun_converges_on_each_discretization(discretization):
    check(draw(karras, ve_model(), steps=100, discretization=discretization))


def test_karras_vp_params_on_ve_model():
    """The paper's E3 setting: VE model, VP discretization + schedule + scaling (betas re-derived from its range)."""
    check(draw(karras, ve_model(), steps=100, discretization="vp", schedule="vp", scaling="vp"))


def test_karras_euler_vp_params_on_vp_model():
    """Euler, 100 steps, measured bias <= 0.07 var; allowance 0.12."""
    check(
        draw(karras, vp_model(), steps=100, solver="euler", discretization="vp", schedule="vp", scaling="vp"), bias=0.12
    )


def test_karras_stochastic_converges():
    check(draw(karras, vp_model(), steps=100, S_churn=30.0, S_tmin=0.01, S_tmax=1.0, S_noise=1.0))


@pytest.mark.parametrize(
    ("params", "bias"),
    [
        ({}, 0.25),  # EDM default: Heun, edm, 18 steps (35 NFE); measured mean 0.08 sd, variance 0.2 off
        ({"discretization": "iddpm"}, 0.25),  # "DDIM params"
        ({"S_churn": 30.0, "S_tmin": 0.01, "S_tmax": 1.0, "S_noise": 1.007}, 0.35),  # cifar10_vp, 18 steps
        ({"solver": "euler", "discretization": "ve", "steps": 50}, 0.2),
    ],
)
def test_karras_few_step_settings(params, bias):
    check(draw(karras, vp_model(), **params), bias=bias)


# ---- annealed Langevin -------------------------------------------------------------------------------------------


def test_annealed_langevin_through_ncsnv2_precond():
    """NCSNv2 on [0, 1] data (the mixture scaled by 1/4 around 0.5), exact score behind ``NCSNv2Precond``.

    ALD is not an exact sampler: 5 Langevin steps per level do not mix at each level and the step size biases the
    stationary law (NCSNv2 Technique 4 only matches the final variance approximately). With L = 100 levels from 1 to
    0.01 and eps = 5e-5 the measured errors stay within 3.5 SE; the allowance 0.1 (sd / variance / weight) covers it.
    """
    gmm01 = GMM.affine(0.25, 0.5)

    def net(x_in: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        sigma = torch.exp(c_noise.to(torch.float64))
        x = (x_in.to(torch.float64) + 1) / 2
        return ((gmm01.denoise(x, sigma) - x) / sigma[:, None]).to(x_in.dtype)

    model = NCSNv2Precond(net=net, sigmas=geometric_sigmas(1.0, 0.01, 100))
    x = draw(annealed_langevin, model, step_lr=5e-5, steps_each=5)
    check(x, gmm01, bias=0.1)


def test_exact_denoiser_object_is_a_valid_model():
    """A plain callable D(x, sigma) with a declared range works directly (README's API)."""
    model = ExactDenoiser(GMM, sigma_min=0.002, sigma_max=80.0)
    x = draw(karras, model, steps=100, dtype=torch.float64)
    assert model.calls == 199
    check(x)
    assert math.isfinite(float(x.sum()))
