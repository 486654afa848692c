"""The sigma-space view of a DDPM epsilon model (``DiscreteEpsDenoiser``) against closed forms.

A DDPM eps-model built from a Gaussian mixture's exact denoiser must give back that denoiser at the trained noise
levels; the Karras sampler (Heun, EDM grid) and the probability-flow sampler, run on the view with no per-sampler
code, must draw the mixture; and a validated DDPM spec may now name a Karras sampler.
"""

from __future__ import annotations

import pytest
import torch
from conftest import micro_spec
from gmm_exact import ExactEpsNet, match_report, three_blobs

from study.contract.spec.load import expand
from study.plan import checked
from trainables.samplers import SAMPLERS, DiscreteEpsDenoiser, EpsModel, karras, probability_flow_euler, view
from trainables.schedules import DiscreteSchedule, cosine_betas, linear_betas

GMM = three_blobs()


def _eps_model(betas: torch.Tensor) -> EpsModel:
    abar = DiscreteSchedule(betas).alphas_cumprod
    return EpsModel(net=ExactEpsNet(GMM, abar), alphas_cumprod=abar)


@pytest.mark.parametrize("betas", [linear_betas(1000), cosine_betas(1000)], ids=["linear", "cosine"])
def test_the_view_is_the_exact_denoiser_at_the_trained_levels(betas: torch.Tensor) -> None:
    model = _eps_model(betas)
    D = DiscreteEpsDenoiser(model)
    abar = model.alphas_cumprod
    assert torch.allclose(D.sigmas, ((1 - abar) / abar).sqrt()) and D.sigma_min < D.sigma_max
    x = torch.randn(64, GMM.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
    for i in (0, 10, 500, 999):
        sigma = D.sigmas[i].expand(64).clone()
        assert torch.allclose(D.sigma_to_t(sigma), torch.full((64,), float(i), dtype=torch.float64))
        torch.testing.assert_close(D(x, sigma), GMM.denoise(x, sigma), rtol=1e-9, atol=1e-9)


def test_sigma_to_t_quantizes_or_interpolates_in_log_sigma() -> None:
    model = _eps_model(linear_betas(1000))
    q, c = DiscreteEpsDenoiser(model), DiscreteEpsDenoiser(model, quantize=False)
    s = q.sigmas
    mid = ((s[100].log() + s[101].log()) / 2).exp().reshape(1)
    assert float(c.sigma_to_t(mid)) == pytest.approx(100.5, abs=1e-9)
    assert float(q.sigma_to_t(mid)) in (100.0, 101.0)
    assert q.round_sigma(float(s[100]) * 1.0001) == pytest.approx(float(s[100]))
    assert c.round_sigma(0.5) == 0.5


def _draw(fn, model, **params) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    noise = torch.randn(10_000, GMM.dim, generator=gen)
    return fn(model, noise, generator=gen, **params).x


def test_karras_heun_samples_a_ddpm_model_through_the_view() -> None:
    """EDM's grid clamped to the trained range (sigma_max 157 for the linear schedule), quantized levels."""
    D = view(_eps_model(linear_betas(1000)), SAMPLERS["karras"].needs)
    assert isinstance(D, DiscreteEpsDenoiser)
    problems = match_report(_draw(karras, D, steps=64, discretization="edm"), GMM, 5.0, bias=0.05)
    assert not problems, problems


def test_probability_flow_samples_a_ddpm_model_through_the_view() -> None:
    D = view(_eps_model(linear_betas(1000)), SAMPLERS["probability_flow_euler"].needs)
    problems = match_report(_draw(probability_flow_euler, D, steps=500, sde="vp"), GMM, 5.0, bias=0.1)
    assert not problems, problems


def test_a_ddpm_spec_may_name_karras_and_names_the_missing_native_sde() -> None:
    _, trials = expand(micro_spec(**{"evaluation.samplers": [{"kind": "karras", "steps": 5}]}))
    assert trials and trials[0].spec.evaluation.samplers[0].kind == "karras"
    from study.contract.spec import SpecError

    with pytest.raises(SpecError, match="own sde"):  # the driver's plan step checks it (validate, run)
        checked(expand(micro_spec(**{"evaluation.samplers": [{"kind": "euler_maruyama", "steps": 5}]})))


def test_karras_runs_on_a_real_float32_ddpm_network_through_the_view() -> None:
    """The Karras state is float64; the U-Net runs in float32 (the view casts its input, as the preconditioners do)."""
    from study.contract.spec.load import expand as _expand
    from trainables.dynamics import build_dynamics
    from trainables.networks import build_network

    _, trials = _expand(micro_spec(**{"evaluation.samplers": [{"kind": "karras", "steps": 3}]}))
    spec = trials[0].spec
    net = build_network(spec.network, 1, 8, 0).eval()
    model = view(build_dynamics(spec.dynamics).sampling_model(net), "denoiser")
    with torch.no_grad():
        out = karras(model, torch.randn(4, 1, 8, 8), generator=torch.Generator().manual_seed(0), steps=3)
    assert out.x.shape == (4, 1, 8, 8) and torch.isfinite(out.x).all() and out.nfe == 5
