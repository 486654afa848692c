"""Sampler registry, specs, NFE formulas and seed reproducibility (tiny models; the maths is in test_samplers_gmm)."""

from __future__ import annotations

import pytest
import torch
from gmm_exact import ExactEpsNet, three_blobs
from pydantic import TypeAdapter, ValidationError

from study.contract.spec.dynamics import DynamicsSpec
from study.contract.spec.samplers import SamplerSpec
from trainables.compat import sampler_dynamics
from trainables.dynamics import build_dynamics
from trainables.samplers import SAMPLERS, EpsModel, expected_nfe, sampler_from_spec
from trainables.schedules import VPSDE, DiscreteSchedule, linear_betas

SAMPLER = TypeAdapter(SamplerSpec)
DYN = TypeAdapter(DynamicsSpec)
GMM = three_blobs()


pytestmark = pytest.mark.usefixtures("one_thread")


def gmm_net(x: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """A stand-in network that is exact for VE's conditioning: F = (D - x)/sigma with sigma = 2 e^c_noise.

    Under another family's preconditioning it is merely some deterministic function, which is all these tests need.
    """
    sigma = 2 * torch.exp(c_noise.to(torch.float64))
    return ((GMM.denoise(x, sigma) - x.to(torch.float64)) / sigma[:, None]).to(x.dtype)


def vp_gmm_net(x_in: torch.Tensor, c_noise: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    """Exact eps-net for the VP preconditioning (c_noise = 999 t)."""
    sigma = VPSDE().sigma(c_noise.to(torch.float64) / 999)
    x = x_in.to(torch.float64) * (sigma**2 + 1).sqrt()[:, None]
    return ((x - GMM.denoise(x, sigma)) / sigma[:, None]).to(x_in.dtype)


# (sampler spec, dynamics spec, expected NFE by formula)
CASES = [
    ({"kind": "ancestral", "clip_x0": False}, {"kind": "ddpm", "timesteps": 40}, 40),
    ({"kind": "ancestral", "steps": 10}, {"kind": "ddpm", "timesteps": 40}, 10),
    ({"kind": "ddim", "steps": 7, "eta": 1.0, "spacing": "trailing"}, {"kind": "ddpm", "timesteps": 40}, 7),
    ({"kind": "annealed_langevin", "steps_each": 3}, {"kind": "ncsnv2", "num_levels": 6}, 6 * 3 + 1),
    ({"kind": "annealed_langevin", "steps_each": 2, "denoise": False}, {"kind": "ncsnv2", "num_levels": 5}, 10),
    ({"kind": "euler_maruyama", "steps": 12}, {"kind": "vp_sde"}, 12),
    ({"kind": "probability_flow_euler", "steps": 12, "sde": "vp"}, {"kind": "ve_sde"}, 12),
    ({"kind": "predictor_corrector", "steps": 8, "corrector_steps": 2}, {"kind": "ve_sde"}, 8 * 3),
    ({"kind": "predictor_corrector", "steps": 8, "sde": "ve"}, {"kind": "ncsnv2", "num_levels": 10}, 16),
    ({"kind": "karras", "steps": 9}, {"kind": "ve_sde"}, 2 * 9 - 1),  # Heun: N steps -> 2N - 1
    ({"kind": "karras", "steps": 9, "solver": "euler"}, {"kind": "vp_sde"}, 9),
    ({"kind": "karras", "steps": 6, "preset": "cifar10_vp"}, {"kind": "vp_sde"}, 11),
    ({"kind": "karras", "steps": 6, "preset": "ddim_params"}, {"kind": "ncsnv2", "num_levels": 10}, 11),
    ({"kind": "karras", "steps": 6, "preset": "vp_params", "solver": "euler"}, {"kind": "ve_sde"}, 6),
]


def run_case(sampler: dict, dynamics: dict, seed: int = 0, n: int = 16):
    sampler_spec, dyn_spec = SAMPLER.validate_python(sampler), DYN.validate_python(dynamics)
    dyn = build_dynamics(dyn_spec)
    fn, params = sampler_from_spec(sampler_spec)
    if dyn_spec.kind == "ddpm":
        ab = dyn.schedule.alphas_cumprod
        model = EpsModel(ExactEpsNet(GMM, ab), ab)
    else:
        model = dyn.sampling_model(vp_gmm_net if dyn_spec.kind == "vp_sde" else gmm_net)
    gen = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, 2, generator=gen)
    return fn(model, noise, generator=gen, **params), expected_nfe(sampler_spec, dyn_spec)


@pytest.mark.parametrize(("sampler", "dynamics", "nfe"), CASES)
def test_nfe_matches_formula_and_prediction(sampler, dynamics, nfe):
    result, predicted = run_case(sampler, dynamics)
    assert result.nfe == nfe == predicted
    assert torch.isfinite(result.x).all()
    assert dynamics["kind"] in sampler_dynamics()[sampler["kind"]]


@pytest.mark.parametrize(("sampler", "dynamics", "nfe"), CASES)
def test_same_seed_bit_identical(sampler, dynamics, nfe):
    a, _ = run_case(sampler, dynamics, seed=3)
    b, _ = run_case(sampler, dynamics, seed=3)
    c, _ = run_case(sampler, dynamics, seed=4)
    assert torch.equal(a.x, b.x)
    assert not torch.equal(a.x, c.x)


def test_karras_state_is_float64_and_others_keep_dtype():
    a, _ = run_case({"kind": "karras", "steps": 4}, {"kind": "ve_sde"})
    b, _ = run_case({"kind": "euler_maruyama", "steps": 4}, {"kind": "ve_sde"})
    assert a.x.dtype == torch.float64 and b.x.dtype == torch.float32


def test_every_registered_sampler_has_a_spec_and_compat_rule():
    assert set(SAMPLERS) == set(sampler_dynamics())
    for kind in SAMPLERS:
        assert SAMPLER.validate_python({"kind": kind}).kind == kind


def test_presets_fill_unset_fields_only():
    s = SAMPLER.validate_python({"kind": "karras", "preset": "imagenet", "steps": 256})
    assert (s.S_churn, s.S_tmin, s.S_tmax, s.S_noise) == (40.0, 0.05, 50.0, 1.003)
    assert s.id == "karras-imagenet-256"
    s = SAMPLER.validate_python({"kind": "karras", "preset": "cifar10_ve", "S_churn": 10})
    assert (s.S_churn, s.S_tmin, s.S_noise) == (10, 0.05, 1.007)
    s = SAMPLER.validate_python({"kind": "karras", "preset": "ddim_params"})
    assert (s.solver, s.discretization, s.S_churn) == ("heun", "iddpm", 0.0)
    with pytest.raises(ValidationError):
        SAMPLER.validate_python({"kind": "karras", "preset": "nope"})
    with pytest.raises(ValidationError):
        SAMPLER.validate_python({"kind": "karras", "discretization": "cosine"})


def test_ids_are_distinct_per_setting():
    specs = [
        {"kind": "euler_maruyama"},
        {"kind": "euler_maruyama", "sde": "vp"},
        {"kind": "probability_flow_euler"},
        {"kind": "predictor_corrector"},
        {"kind": "annealed_langevin"},
        {"kind": "karras"},
        {"kind": "karras", "solver": "euler", "discretization": "vp"},
        {"kind": "karras", "preset": "cifar10_vp"},
    ]
    ids = [SAMPLER.validate_python(s).id for s in specs]
    assert len(set(ids)) == len(ids), ids


def test_dynamics_spec_union_and_validation():
    assert DYN.validate_python({"kind": "ncsnv2"}).num_levels == 232
    assert DYN.validate_python({"kind": "ve_sde"}).sigma_max == 100.0
    assert DYN.validate_python({"kind": "ddpm", "schedule": {"kind": "beta_sigmoid"}}).schedule.kind == "beta_sigmoid"
    with pytest.raises(ValidationError):
        DYN.validate_python({"kind": "ncsnv2", "sigma_begin": 0.001})
    with pytest.raises(ValidationError):
        DYN.validate_python({"kind": "vp_sde", "sigma_max": 3})


def test_ancestral_respaced_model_sees_original_timesteps():
    seen: list[float] = []
    ab = DiscreteSchedule(linear_betas(100)).alphas_cumprod

    def net(x, t, labels):
        seen.append(float(t[0]))
        return torch.zeros_like(x)

    from trainables.samplers import ancestral

    ancestral(EpsModel(net, ab), torch.zeros(2, 2), generator=torch.Generator().manual_seed(0), steps=5)
    assert seen == [99.0, 74.0, 50.0, 25.0, 0.0]  # guided-diffusion: round(linspace(0, T-1, S)), descending


def test_class_labels_reach_the_network():
    got = []

    def net(x, c_noise, labels):
        got.append(labels)
        return torch.zeros_like(x)

    labels = torch.tensor([3, 1])
    dyn = build_dynamics(DYN.validate_python({"kind": "vp_sde"}))
    SAMPLERS["karras"](dyn.sampling_model(net, labels), torch.randn(2, 2), generator=None, steps=2)
    assert all(lab is labels for lab in got) and len(got) == 3


def test_declarations_derive_compatibility_and_match_spec_fields():
    """Which dynamics a sampler samples comes from its declared interface; every spec field is a keyword argument
    of the declared function (a field that is not would only fail when a trial samples)."""
    assert sampler_dynamics()["ddim"] == ("ddpm",) and sampler_dynamics()["annealed_langevin"] == ("ncsnv2",)
    assert set(sampler_dynamics()["karras"]) == {"ddpm", "ncsnv2", "vp_sde", "ve_sde"}  # ddpm: sigma-space view
    for kind, decl in SAMPLERS.items():
        fields = set(SAMPLER.validate_python({"kind": kind}).model_dump()) - {"kind", "name", "preset"}
        assert fields <= decl.params, (kind, fields - decl.params)
