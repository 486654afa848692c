"""The embedded default: digits data, the digits classifier as IS extractor, and a DDPM that learns."""

from __future__ import annotations

from pathlib import Path

import torch

from study.contract.spec.dynamics import DDPMDynamics
from trainables.data import digits_tensors
from trainables.dynamics import build_dynamics
from trainables.metrics import inception_score, to_uint8
from trainables.networks.ddpm_unet import DDPMUNet


def test_digits_split_is_fixed_stratified_and_in_range() -> None:
    tx, ty, hx, hy = digits_tensors(16)
    assert tx.shape == (1347, 1, 16, 16) and hx.shape == (450, 1, 16, 16)
    assert tx.min() >= -1 and tx.max() <= 1
    assert torch.bincount(hy).min() >= 43  # every class held out (stratified)
    assert torch.equal(digits_tensors(16)[3], hy)


def test_classifier_is_accurate_and_real_digits_score_far_above_noise(classifier_r8: tuple[Path, float]) -> None:
    weights, accuracy = classifier_r8
    assert accuracy > 0.93
    _, _, hx, _ = digits_tensors(8)
    real = inception_score(to_uint8(hx), "digits-cnn", weights, splits=5)
    noise = inception_score(to_uint8(torch.randn(450, 1, 8, 8).clamp(-1, 1)), "digits-cnn", weights, splits=5)
    blank = inception_score(to_uint8(torch.zeros(450, 1, 8, 8)), "digits-cnn", weights, splits=5)
    assert real.mean > 6.0 and noise.mean < 3.0 and real.mean > 2.5 * noise.mean
    assert abs(blank.mean - 1.0) < 1e-6  # one prediction for every image: p(y|x) = p(y)


def test_ddpm_loss_decreases_on_a_tiny_dataset() -> None:
    torch.manual_seed(0)
    tx = digits_tensors(8)[0][:64]
    dyn = build_dynamics(DDPMDynamics(timesteps=100))
    net = DDPMUNet(1, 8, channels=16, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(), dropout=0.0,
                   norm_groups=8)  # fmt: skip
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(150):
        loss = dyn.loss(net, tx, gen)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert first > 0.5 and last < first / 3, (first, last)
