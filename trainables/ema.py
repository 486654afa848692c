"""Exponential moving average of the weights, the ones every evaluation samples with."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """theta_ema <- d theta_ema + (1 - d) theta, d = min(decay, (1 + n) / (10 + n)) with warm-up (score_sde ema.py)."""

    def __init__(self, net: nn.Module, decay: float, warmup: bool = True):
        self.model = copy.deepcopy(net).eval().requires_grad_(False)
        self.decay = decay
        self.warmup = warmup
        self.num_updates = 0

    @torch.no_grad()
    def update(self, net: nn.Module) -> None:
        self.num_updates += 1
        n = self.num_updates
        d = min(self.decay, (1 + n) / (10 + n)) if self.warmup else self.decay
        for p_ema, p in zip(self.model.parameters(), net.parameters(), strict=True):
            p_ema.lerp_(p.detach(), 1.0 - d)
        for b_ema, b in zip(self.model.buffers(), net.buffers(), strict=True):
            b_ema.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = state["num_updates"]
