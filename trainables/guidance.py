"""Classifier guidance for the discrete DDPM samplers (ADM: Dhariwal & Nichol 2021, Alg. 1 and 2).

``classifier_grad`` builds the ``cond_fn(x_t, t) -> scale * grad_x log p_phi(y | x_t, t)`` that
``trainables.samplers.ddpm.ancestral`` / ``ddim`` take (as guided-diffusion ``scripts/classifier_sample.py``):
the samplers turn it into the mean shift (Alg. 1) or the eps shift (Alg. 2). "Misguided" guidance is the same code
with an untrained classifier from a fixed seed (``misguided_classifier``): the paper's control for whether a
*trained* classifier matters.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from trainables.files import load_tensors
from trainables.networks import build_network

Tensor = torch.Tensor


def classifier_grad(classifier: Callable[[Tensor, Tensor], Tensor], labels: Tensor, scale: float) -> Callable:
    """cond_fn for target ``labels``: ``scale * grad_x sum_i log softmax(classifier(x, t))[i, y_i]``.

    ``t`` arrives as the ORIGINAL timestep index (the samplers hand it over unrespaced) and is fed to the classifier
    as a float batch, exactly like the eps model. Summing over the batch gives each sample its own gradient (the
    samples are independent). Grad is enabled only here: the rest of sampling runs under ``no_grad``.
    """

    def cond_fn(x: Tensor, t: int) -> Tensor:
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            t_batch = torch.full((x.shape[0],), float(t), device=x.device, dtype=x.dtype)
            log_probs = torch.log_softmax(classifier(x_in, t_batch), dim=-1)
            selected = log_probs[torch.arange(x.shape[0], device=x.device), labels]
            (grad,) = torch.autograd.grad(selected.sum(), x_in)
        return grad.detach() * scale

    return cond_fn


def freeze(net: nn.Module) -> nn.Module:
    """Eval mode (no dropout) and no parameter gradients: a guide is read, never trained."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def misguided_classifier(
    network_spec: Any, in_channels: int, resolution: int, num_classes: int, seed: int
) -> nn.Module:
    """The classifier architecture at a fixed-seed random initialisation, never trained ("misguided diffusion").

    Built under a forked RNG from ``seed`` alone, so it is bit-identical across runs and leaves the caller's global
    RNG untouched (the trial's training randomness must not depend on whether misguided guidance is evaluated).
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = build_network(network_spec, in_channels, resolution, num_classes)
    return freeze(net)


def load_classifier(
    path: str | Path, network_spec: Any, in_channels: int, resolution: int, num_classes: int
) -> nn.Module:
    """The trained noisy classifier from a cache file written by ``trainables.guidance_classifier``."""
    net = build_network(network_spec, in_channels, resolution, num_classes)
    state = load_tensors(path, map_location="cpu")  # weights_only, and a refusal that names the file
    net.load_state_dict(state["state_dict"])
    return freeze(net)


def weights_hash(net: nn.Module) -> str:
    """sha256 (16 hex) over the parameters and buffers in order: proves a guide was never updated."""
    h = hashlib.sha256()
    for name, tensor in net.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@torch.no_grad()
def target_accuracy(judge: nn.Module, samples: Tensor, targets: Tensor, batch_size: int = 500) -> float:
    """Fraction of ``samples`` the (trained) classifier, read at t = 0, assigns to their target label."""
    hits = 0
    for lo in range(0, samples.shape[0], batch_size):
        x = samples[lo : lo + batch_size]
        t = torch.zeros(x.shape[0], device=x.device, dtype=x.dtype)
        hits += int((judge(x, t).argmax(-1) == targets[lo : lo + batch_size].to(x.device)).sum())
    return hits / max(samples.shape[0], 1)
