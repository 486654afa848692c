"""Tests of the paper's networks (issue 4): shapes, determinism, gradients, overfitting, parameter-count parity.

Reference parameter counts of the CIFAR10 configurations (32x32x3, unconditional; classifier with 10 classes):

| kind             | ours       | reference  | source                                                               |
|------------------|------------|------------|----------------------------------------------------------------------|
| ddpm_unet        | 35,746,307 | 35.7M      | Ho et al. 2020 (paper Sec. 4 and diffusion README: 35.7M)            |
| ncsnv2           | 29,694,083 | 29,694,083 | ermongroup/ncsnv2 models/ncsnv2.py NCSNv2 + configs/cifar10.yml      |
| ddpmpp           | 61,804,419 | 61,804,419 | score_sde models/ncsnpp.py + configs/vp/cifar10_ddpmpp_continuous.py |
| ncsnpp           | 62,758,787 | 62,758,915 | score_sde models/ncsnpp.py + configs/ve/cifar10_ncsnpp_continuous.py |
| noisy_classifier |  7,553,802 |  7,553,802 | guided-diffusion unet.py EncoderUNetModel, Table A.4 settings        |

The exact reference numbers were obtained by instantiating the reference modules on CPU and summing
``parameters()`` (score_sde's CUDA op stubbed out; it has no parameters). NCSN++'s 128 extra reference parameters
are its frozen Gaussian-Fourier frequencies, a buffer here. The tests require agreement within 1%.

Overfitting criteria (tiny 16x16x1 nets, 4 images, fixed noise, Adam lr 2e-3, dropout 0): denoisers cut their
denoising loss by >= 5x within 150 steps; the classifier reaches cross-entropy < 0.1 within 150 steps.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from pydantic import TypeAdapter, ValidationError

from study.contract.spec.networks import NetworkSpec
from trainables.networks import NETWORKS, build_network, count_parameters
from trainables.networks.layers import FIRResample

ADAPTER: TypeAdapter[Any] = TypeAdapter(NetworkSpec)
DENOISERS = ["ddpm_unet", "ncsnv2", "ddpmpp", "ncsnpp"]
ALL = [*DENOISERS, "noisy_classifier"]

REFERENCE_PARAMS = {
    "ddpm_unet": 35_700_000,
    "ncsnv2": 29_694_083,
    "ddpmpp": 61_804_419,
    "ncsnpp": 62_758_915,
    "noisy_classifier": 7_553_802,
}

# The tiny setting of the embedded 16x16x1 digits: same structure, smaller values (what a YAML would hold).
TINY: dict[str, dict[str, Any]] = {
    "ddpm_unet": dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), norm_groups=8),
    "ncsnv2": dict(channels=16),
    "ddpmpp": dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,)),
    "ncsnpp": dict(channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,)),
    "noisy_classifier": dict(
        channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(8,), head_channels=16, norm_groups=8
    ),
}
# CIFAR structure (levels, blocks, attention at 16) at a reduced width, for cheap 32x32 forward/backward passes.
NARROW: dict[str, dict[str, Any]] = {
    "ddpm_unet": dict(channels=32),
    "ncsnv2": dict(channels=16),
    "ddpmpp": dict(channels=32, num_res_blocks=2),
    "ncsnpp": dict(channels=32, num_res_blocks=2),
    "noisy_classifier": dict(channels=32, head_channels=32),
}
NUM_CLASSES = 10


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Any:
    """Tiny tensors gain nothing from intra-op threads, and on a shared 2-core box spinning OpenMP workers slow these
    tests down 10-50x whenever another process is busy; one thread keeps the module well under a minute."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def spec(kind: str, **fields: Any) -> Any:
    return ADAPTER.validate_python({"kind": kind, **fields})


def build(kind: str, in_channels: int, resolution: int, seed: int = 0, **fields: Any) -> torch.nn.Module:
    torch.manual_seed(seed)
    classes = NUM_CLASSES if kind == "noisy_classifier" else 0
    return build_network(spec(kind, **fields), in_channels, resolution, classes)


def noise_input(kind: str, batch: int) -> torch.Tensor:
    """What each network is conditioned on: sigma for NCSNv2, ln(sigma) for NCSN++, a timestep index otherwise."""
    if kind == "ncsnv2":
        return torch.full((batch,), 0.5)
    if kind == "ncsnpp":
        return torch.full((batch,), float(torch.log(torch.tensor(0.5))))
    return torch.full((batch,), 300.0)


def call(net: torch.nn.Module, kind: str, x: torch.Tensor) -> torch.Tensor:
    return net(x, noise_input(kind, x.shape[0]))


def expected_shape(kind: str, x: torch.Tensor) -> tuple[int, ...]:
    return (x.shape[0], NUM_CLASSES) if kind == "noisy_classifier" else tuple(x.shape)


@pytest.mark.parametrize("kind", ALL)
def test_registry_and_spec_defaults(kind: str) -> None:
    assert kind in NETWORKS
    assert spec(kind).kind == kind


@pytest.mark.parametrize("kind", ALL)
def test_cifar10_parameter_count_matches_reference(kind: str) -> None:
    ours = count_parameters(build(kind, 3, 32))
    ref = REFERENCE_PARAMS[kind]
    assert abs(ours - ref) / ref < 0.01, f"{kind}: {ours:,} vs reference {ref:,}"


@pytest.mark.parametrize("kind", ALL)
@pytest.mark.parametrize("size", ["cifar_narrow", "tiny"])
def test_shape_dtype_and_backward(kind: str, size: str) -> None:
    in_channels, resolution, fields = (3, 32, NARROW[kind]) if size == "cifar_narrow" else (1, 16, TINY[kind])
    net = build(kind, in_channels, resolution, **fields)
    x = torch.rand(2, in_channels, resolution, resolution, requires_grad=True)
    out = call(net, kind, x)
    assert out.shape == expected_shape(kind, x)
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    # A linear loss with random weights: its gradient w.r.t. the output is non-zero even where the output is 0.
    (out * torch.randn_like(out)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    grads = [p.grad for p in net.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # Zero-initialised output layers block the gradient to everything below them at step 0, but not their own.
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("kind", ["ddpmpp", "ncsnpp"])
def test_full_cifar_config_forward(kind: str) -> None:
    """The 62M-parameter CIFAR10 configurations themselves run at 32x32x3 (batch 1, no grad)."""
    net = build(kind, 3, 32).eval()
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        out = call(net, kind, x)
    assert out.shape == x.shape and out.dtype == torch.float32


@pytest.mark.parametrize("kind", ALL)
def test_deterministic_for_fixed_seed(kind: str) -> None:
    x = torch.rand(2, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    outs = []
    for _ in range(2):
        net = build(kind, 1, 16, seed=7, **TINY[kind]).eval()
        with torch.no_grad():
            outs.append(call(net, kind, x))
    assert torch.equal(outs[0], outs[1])
    other = build(kind, 1, 16, seed=8, **TINY[kind]).eval()
    first = dict(build(kind, 1, 16, seed=7, **TINY[kind]).named_parameters())
    assert any(not torch.equal(p, first[n]) for n, p in other.named_parameters())


@pytest.mark.parametrize("kind", ["ddpm_unet", "ddpmpp", "ncsnpp"])
def test_class_label_embedding(kind: str) -> None:
    torch.manual_seed(0)
    net = build_network(spec(kind, **TINY[kind]), 1, 16, num_classes=NUM_CLASSES).eval()
    # Give the zero-initialised output layers weights so a label change can show at the output.
    for p in net.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.02)
    x = torch.rand(2, 1, 16, 16)
    t = noise_input(kind, 2)
    with torch.no_grad():
        a = net(x, t, torch.tensor([0, 1]))
        b = net(x, t, torch.tensor([2, 3]))
    assert a.shape == x.shape and not torch.allclose(a, b)


def _overfit(kind: str, steps: int = 150) -> tuple[float, float]:
    """Fit 4 fixed noisy 16x16 images with fixed noise; returns (first loss, best loss over the last 10 steps)."""
    gen = torch.Generator().manual_seed(0)
    x0 = torch.rand(4, 1, 16, 16, generator=gen) * 2 - 1
    z = torch.randn(4, 1, 16, 16, generator=gen)
    fields = {**TINY[kind], "dropout": 0.0} if kind != "ncsnv2" else {**TINY[kind], "preconditioning": "internal"}
    net = build(kind, 1, 16, **fields)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    t = noise_input(kind, 4)
    if kind == "noisy_classifier":
        labels = torch.tensor([0, 3, 5, 9])
        x_in = 0.8 * x0 + 0.6 * z
    elif kind == "ncsnv2":
        sigma = t[:, None, None, None]
        x_in = (x0 + 1) / 2 + sigma * z  # NCSN data live in [0, 1]
    else:
        x_in = 0.8 * x0 + 0.6 * z  # a fixed x_t = sqrt(abar) x0 + sqrt(1 - abar) eps
    losses = []
    for _ in range(steps):
        out = net(x_in, t)
        if kind == "noisy_classifier":
            loss = torch.nn.functional.cross_entropy(out, labels)
        elif kind == "ncsnv2":
            loss = 0.5 * (sigma * out + z).square().sum(dim=(1, 2, 3)).mean() / z[0].numel()  # DSM, per pixel
        else:
            loss = (out - z).square().mean()  # epsilon prediction
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses[0], min(losses[-10:])


@pytest.mark.parametrize("kind", DENOISERS)
def test_denoiser_overfits_few_images(kind: str) -> None:
    first, last = _overfit(kind)
    assert last <= first / 5, f"{kind}: loss {first:.4f} -> {last:.4f}, less than a 5x drop"


def test_classifier_overfits_few_images() -> None:
    first, last = _overfit("noisy_classifier")
    assert last < 0.1, f"cross-entropy {first:.3f} -> {last:.3f}"


def test_spec_without_kind_is_ddpm_unet() -> None:
    assert ADAPTER.validate_python({}).kind == "ddpm_unet"
    assert ADAPTER.validate_python({"channels": 32}).channels == 32


def test_unknown_kind_and_fields_are_errors() -> None:
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "transformer"})
    with pytest.raises(ValidationError):
        ADAPTER.validate_python({"kind": "ncsnv2", "channel_mult": [1, 2]})


@pytest.mark.parametrize(
    ("kind", "fields", "field_name"),
    [
        ("ddpm_unet", dict(channels=24, norm_groups=32), "norm_groups"),
        ("ddpmpp", dict(channels=18), "norm_groups"),
        ("ncsnpp", dict(channels=200, norm_groups=48), "norm_groups"),
        ("noisy_classifier", dict(channels=24, norm_groups=16), "norm_groups"),
        ("noisy_classifier", dict(channels=16, channel_mult=(1, 2), norm_groups=8), "head_channels"),
    ],
)
def test_bad_group_or_head_width_names_the_field(kind: str, fields: dict[str, Any], field_name: str) -> None:
    with pytest.raises(ValidationError, match=field_name):
        spec(kind, **fields)


@pytest.mark.parametrize("kind", ["ddpm_unet", "ddpmpp", "ncsnpp", "noisy_classifier"])
def test_unreachable_attention_resolution_is_rejected(kind: str) -> None:
    with pytest.raises(ValueError, match="attention_resolutions"):
        build(kind, 1, 16, **{**TINY[kind], "attention_resolutions": (4,)})


def test_tiny_settings_without_attention_build() -> None:
    for kind in ["ddpm_unet", "ddpmpp", "ncsnpp", "noisy_classifier"]:
        net = build(kind, 1, 16, **{**TINY[kind], "attention_resolutions": ()})
        assert call(net, kind, torch.rand(1, 1, 16, 16)).shape == expected_shape(kind, torch.rand(1, 1, 16, 16))


def test_ddpm_unet_box_resampling_keeps_parameter_count() -> None:
    conv = build("ddpm_unet", 1, 16, **TINY["ddpm_unet"])
    box = build("ddpm_unet", 1, 16, **TINY["ddpm_unet"], resample="box")
    assert count_parameters(conv) == count_parameters(box)
    assert call(box, "ddpm_unet", torch.rand(2, 1, 16, 16)).shape == (2, 1, 16, 16)


def test_fir_resampling() -> None:
    x = torch.randn(2, 3, 8, 8)
    # Box filter [1, 1]: down = 2x2 average pooling, up = nearest neighbour.
    torch.testing.assert_close(FIRResample((1, 1), "down")(x), torch.nn.functional.avg_pool2d(x, 2))
    torch.testing.assert_close(FIRResample((1, 1), "up")(x), torch.nn.functional.interpolate(x, scale_factor=2))
    # [1, 3, 3, 1] has unit DC gain both ways and keeps the 2x geometry.
    ones = torch.ones(1, 1, 8, 8)
    assert FIRResample((1, 3, 3, 1), "down")(x).shape == (2, 3, 4, 4)
    assert FIRResample((1, 3, 3, 1), "up")(x).shape == (2, 3, 16, 16)
    torch.testing.assert_close(FIRResample((1, 3, 3, 1), "up")(ones)[..., 2:-2, 2:-2], torch.ones(1, 1, 12, 12))
    torch.testing.assert_close(FIRResample((1, 3, 3, 1), "down")(ones)[..., 1:-1, 1:-1], torch.ones(1, 1, 2, 2))


def test_ncsnv2_internal_preconditioning_divides_by_sigma() -> None:
    net = build("ncsnv2", 1, 16, **TINY["ncsnv2"], preconditioning="internal").eval()
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        a = net(x, torch.tensor([1.0, 1.0]))
        b = net(x, torch.tensor([0.1, 2.0]))
    torch.testing.assert_close(b, a / torch.tensor([0.1, 2.0])[:, None, None, None])


def test_ncsnv2_external_preconditioning_matches_internal() -> None:
    """Under the dynamics' NCSNv2Precond (input 2x - 1, output times sigma) the default net is the original model."""
    external = build("ncsnv2", 1, 16, **TINY["ncsnv2"]).eval()
    internal = build("ncsnv2", 1, 16, **TINY["ncsnv2"], preconditioning="internal").eval()
    x, sigma = torch.rand(2, 1, 16, 16), torch.tensor([0.3, 2.0])
    with torch.no_grad():
        raw = external(2 * x - 1, torch.log(sigma))
        score = internal(x, sigma)
    torch.testing.assert_close(raw, score * sigma[:, None, None, None])
