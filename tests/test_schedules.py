"""Schedules against their closed forms and the tabulated values of REFERENCE B.1 / B.6 / B.7."""

from __future__ import annotations

import math

import pytest
import torch

from trainables.dynamics import build_dynamics
from trainables.samplers.karras import default_sigma_range, iddpm_sigmas, vp_betas_for_range
from trainables.schedules import (
    VESDE,
    VPSDE,
    DiscreteSchedule,
    beta_sigmoid_betas,
    cosine_betas,
    linear_betas,
    sigmoid_betas,
    vdm_linear_betas,
)


@pytest.mark.parametrize(
    ("scale", "alpha_bar_T", "log_snr_T"),
    [(0.25, 8.07e-2, -2.43), (0.5, 6.46e-3, -5.04), (0.75, 5.13e-4, -7.57), (1.0, 4.04e-5, -10.12)],
)
def test_linear_scales_match_table(scale, alpha_bar_T, log_snr_T):
    """B.1.1 table (3 significant figures): alpha_bar_T and logSNR_T of the paper's four scale factors."""
    betas = linear_betas(1000, scale=scale)
    assert betas.dtype == torch.float64
    assert float(betas[0]) == pytest.approx(scale * 1e-4) and float(betas[-1]) == pytest.approx(scale * 0.02)
    s = DiscreteSchedule(betas).summary()
    assert s["alpha_bar_T"] == pytest.approx(alpha_bar_T, rel=1e-2)
    assert s["log_snr_T"] == pytest.approx(log_snr_T, abs=0.01)
    assert s["alpha_bar_T"] == pytest.approx(math.prod(1 - b for b in betas.tolist()), rel=1e-12)


def test_cosine_closed_form_and_clipping():
    """B.1.2: alpha_bar = f(t)/f(0) exactly wherever beta is unclipped; beta_1 = 4.1e-5; only the last beta clipped."""
    T, s = 1000, 0.008
    betas = cosine_betas(T)
    assert float(betas[0]) == pytest.approx(4.1e-5, rel=0.01)
    assert float(betas[-1]) == 0.999 and bool((betas[:-1] < 0.999).all())
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    ab = DiscreteSchedule(betas).alphas_cumprod
    for k in (0, 1, 499, 998):
        assert float(ab[k]) == pytest.approx(f(k + 1) / f(0), rel=1e-10)
    summary = DiscreteSchedule(betas).summary()
    assert summary["log_snr_1"] == pytest.approx(10.1, abs=0.05) and summary["log_snr_T"] == pytest.approx(
        -19.8, abs=0.1
    )
    assert summary["alpha_bar_T"] == pytest.approx(2.4e-9, rel=0.05)


def test_alpha_bar_sigmoid_end_points():
    """B.1.3 item 1 defaults (-3, 3, 1): beta_1 = 3.0e-4, alpha_bar(1) = 0 so beta_T clips; logSNR about +-8.1."""
    betas = sigmoid_betas(1000)
    assert float(betas[0]) == pytest.approx(3.0e-4, rel=0.02)
    assert float(betas[-1]) == 0.999
    s = DiscreteSchedule(betas).summary()
    assert s["alpha_bar_T"] == pytest.approx(3e-7, rel=0.1)
    assert s["log_snr_1"] == pytest.approx(8.1, abs=0.1)
    # the interior is symmetric about t = 1/2: logSNR(k/T) = -logSNR(1 - k/T)
    ls = DiscreteSchedule(betas).log_snr
    assert float(ls[99]) == pytest.approx(-float(ls[899]), abs=1e-6)


def test_alpha_bar_sigmoid_is_renormalised_vdm_sigmoid():
    """The module docstring's claim: 1 - alpha_bar(t) = (sig(g(t)) - sig(g(0))) / (sig(g(1)) - sig(g(0))), g linear."""
    start, end, tau, T = -3.0, 3.0, 0.7, 1000
    ab = DiscreteSchedule(sigmoid_betas(T, start, end, tau)).alphas_cumprod
    sig = lambda u: 1 / (1 + math.exp(-u))  # noqa: E731
    for k in (0, 250, 700):
        t = (k + 1) / T
        expected = (sig((start + t * (end - start)) / tau) - sig(start / tau)) / (sig(end / tau) - sig(start / tau))
        assert 1 - float(ab[k]) == pytest.approx(expected, rel=1e-9)


def test_beta_sigmoid_closed_form():
    """B.1.3 item 3: beta = logistic(linspace(-6, 6, T)) (end - start) + start, symmetric, unrelated to the above."""
    betas = beta_sigmoid_betas(1000, 1e-4, 0.02)
    lo = 1 / (1 + math.exp(6)) * (0.02 - 1e-4) + 1e-4
    assert float(betas[0]) == pytest.approx(lo, rel=1e-12)
    assert float(betas[-1]) == pytest.approx(0.02 - (lo - 1e-4), rel=1e-12)
    assert float(betas[0] + betas[-1]) == pytest.approx(0.02 + 1e-4, rel=1e-12)


def test_vdm_linear_gamma():
    """B.1.4: alpha_bar = sigmoid(-gamma(t)), gamma from -13.3 to 5 (relative to alpha_bar(0) = 1 - 1.7e-6)."""
    ab = DiscreteSchedule(vdm_linear_betas(1000)).alphas_cumprod
    a0 = 1 / (1 + math.exp(-13.3))
    for k in (0, 500, 999):
        gamma = -13.3 + 18.3 * (k + 1) / 1000
        assert float(ab[k]) == pytest.approx(1 / (1 + math.exp(gamma)) / a0, rel=1e-9)


def test_vp_sde_tabulated_sigmas():
    """B.1.4 / B.7.1: sigma_VE(1) = 152.2, sigma(1e-3) = 0.0105, sigma(1e-5) = 0.0010; inverse and scale consistent."""
    sde = VPSDE()
    t = torch.tensor([1.0, 1e-3, 1e-5], dtype=torch.float64)
    sigma = sde.sigma(t)
    assert sigma.tolist() == pytest.approx([152.2, 0.0105, 0.0010], rel=0.01)
    torch.testing.assert_close(sde.sigma_inv(sigma), t)
    torch.testing.assert_close(sde.scale(t), 1 / (1 + sigma**2).sqrt())
    # marginal std s * sigma = sqrt(1 - exp(-1/2 t^2 beta_d - t beta_min)) (score-SDE kernel)
    torch.testing.assert_close(sde.scale(t) * sigma, (1 - torch.exp(-0.5 * t**2 * 19.9 - 0.1 * t)).sqrt())
    torch.testing.assert_close(sde.discrete_betas(1000), linear_betas(1000))


def test_ve_sde_geometric():
    sde = VESDE(0.01, 50.0)
    t = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    torch.testing.assert_close(sde.sigma(t), torch.tensor([0.01, math.sqrt(0.01 * 50), 50.0], dtype=torch.float64))
    torch.testing.assert_close(sde.sigma_inv(sde.sigma(t)), t)
    assert float(sde.diffusion(torch.tensor(1.0))) == pytest.approx(50 * math.sqrt(2 * math.log(5000)))


def test_karras_tables():
    """B.7.1-B.7.2: iDDPM u table (u_0 ~ 20291, u_8 = 80.2, u_999 = 0.0064), default VP range, re-derived betas."""
    u = iddpm_sigmas()
    assert float(u[0]) == pytest.approx(20291, rel=1e-3)
    assert float(u[8]) == pytest.approx(80.2, rel=1e-3)
    assert float(u[999]) == pytest.approx(0.0064, rel=0.01) and float(u[1000]) == 0.0
    lo, hi = default_sigma_range("vp")
    assert (lo, hi) == (pytest.approx(0.0105, rel=0.01), pytest.approx(152.2, rel=1e-3))
    assert vp_betas_for_range(lo, hi) == (pytest.approx(19.9), pytest.approx(0.1))
    beta_d, beta_min = vp_betas_for_range(0.02, 100.0)  # a VE net's range (the paper's E3 setting)
    assert beta_d == pytest.approx(17.64, abs=0.01) and beta_min == pytest.approx(0.391, abs=0.001)


@pytest.mark.parametrize(
    "spec",
    [
        {"kind": "ddpm", "schedule": {"kind": "linear", "scale": 0.5}},
        {"kind": "ncsnv2"},
        {"kind": "vp_sde"},
        {"kind": "ve_sde"},
    ],
)
def test_every_dynamics_summarises_its_prior_mismatch(spec):
    from pydantic import TypeAdapter

    from study.contract.spec.dynamics import DynamicsSpec

    summary = build_dynamics(TypeAdapter(DynamicsSpec).validate_python(spec)).summary()
    assert {"alpha_bar_T", "log_snr_T", "log_snr_1"} <= set(summary)
    assert 0 < summary["alpha_bar_T"] < 1 and summary["log_snr_T"] < summary["log_snr_1"]


def test_vp_default_sigma_range_is_float64_exact() -> None:
    """EDM's VP sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1) at t = 1 and t = epsilon_s, in float64."""
    import math

    from trainables.samplers.karras import default_sigma_range

    lo, hi = default_sigma_range("vp", 1e-3)
    assert hi == pytest.approx(math.sqrt(math.expm1(0.5 * 19.9 + 0.1)), rel=1e-15)  # was 4e-8 off in float32
    assert lo == pytest.approx(math.sqrt(math.expm1(0.5 * 19.9 * 1e-6 + 0.1 * 1e-3)), rel=1e-15)
