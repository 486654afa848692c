"""Building blocks shared by the networks."""

from __future__ import annotations

import math

import torch
from torch import nn

Tensor = torch.Tensor


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Sinusoidal embedding of Ho et al. (Transformer positions): [sin(t w_i), cos(t w_i)], w_i = 1/10000^(i/(h-1))."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - 1))
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.sin(args), torch.cos(args)], dim=1)
    return nn.functional.pad(emb, (0, 1)) if dim % 2 else emb


def zero_init(module: nn.Module) -> nn.Module:
    """Zero the last layer of a residual branch so the block starts as the identity (Ho et al. init_scale=0)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module
