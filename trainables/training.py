"""What every training loop here shares (the trial, the noisy classifier, the digits classifier): one pass of
optimiser steps over a stream of batches, and the seed of each epoch's randomness."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

import torch

B = TypeVar("B")


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's randomness (data order, noise levels, noise, dropout).

    Derived from (seed, epoch) alone, so a job restored from a checkpoint replays exactly the epochs it would have
    run, without carrying generator states.
    """
    return seed * 1_000_003 + epoch


def epoch_order(n: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """The indices of an epoch of ``size`` images drawn from a training set of ``n`` (``training.epoch_size``):
    whole shuffled passes, each a fresh permutation, cut at ``size``; every image appears ``size // n`` or one
    more times."""
    passes = -(-size // n)
    return torch.cat([torch.randperm(n, generator=generator) for _ in range(passes)])[:size]


def fit_epoch(
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    batches: Iterable[B],
    loss_of: Callable[[B], tuple[torch.Tensor, int]],
    *,
    grad_clip: float | None = None,
    before_step: Callable[[], None] | None = None,
    after_step: Callable[[], None] | None = None,
) -> float:
    """One pass over ``batches``: for each, ``loss_of(batch) -> (mean loss, examples)``, backward, optional norm
    clipping, an optimiser step; ``before_step`` / ``after_step`` hook learning-rate warm-up and EMA updates.
    Returns the mean loss per example (NaN-propagating, so divergence is seen).

    The running sum stays on the loss's device, in float64: the same additions as Python floats of ``loss.item()``
    (bit-identical), with one host synchronisation per epoch instead of one per step.
    """
    net.train()
    total: torch.Tensor | float = 0.0
    count = 0
    for batch in batches:
        if before_step is not None:
            before_step()
        loss, n = loss_of(batch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            torch.nn.utils.clip_grad_norm_(net.parameters(), grad_clip)
        opt.step()
        if after_step is not None:
            after_step()
        total, count = total + loss.detach().to(torch.float64) * n, count + n
    return float(total) / max(count, 1)
