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


def check_groups(width: int, groups: int, field: str = "norm_groups") -> int:
    """Return ``groups`` after checking that GroupNorm can split ``width`` channels into it (clear error otherwise)."""
    if groups < 1 or width % groups:
        raise ValueError(f"{field}: GroupNorm with {groups} groups cannot split a {width}-channel feature map")
    return groups


def level_resolutions(
    resolution: int, channel_mult: tuple[int, ...], attention_resolutions: tuple[int, ...], network: str = "U-Net"
) -> list[int]:
    """The feature-map resolution of each level of a network halving it ``len(channel_mult) - 1`` times, after
    checking that the input halves evenly and that every attention resolution is one of them (a clear error names
    the field instead of a shape mismatch deep in ``forward``). ``network`` names the network in that error."""
    levels = len(channel_mult)
    if resolution % 2 ** (levels - 1):
        raise ValueError(f"channel_mult: resolution {resolution} is not divisible by 2^{levels - 1}")
    resolutions = [resolution // 2**i for i in range(levels)]
    if bad := sorted(set(attention_resolutions) - set(resolutions)):
        raise ValueError(f"attention_resolutions: {bad} not among the {network}'s resolutions {resolutions}")
    return resolutions


def fir_kernel_2d(taps: tuple[float, ...]) -> Tensor:
    """Separable 2D FIR kernel outer(k, k) normalised to unit DC gain (StyleGAN2 / score-SDE ``make_kernel``)."""
    k = torch.tensor(taps, dtype=torch.float32)
    k2 = torch.outer(k, k)
    return k2 / k2.sum()


class FIRResample(nn.Module):
    """2x up- or down-sampling with a fixed FIR filter, in plain PyTorch (no custom CUDA ``upfirdn2d`` op).

    ``taps=(1, 1)`` is the box filter (down = 2x2 average pooling, up = nearest neighbour, the DDPM++ setting);
    ``taps=(1, 3, 3, 1)`` is the smoother filter of NCSN++ / StyleGAN2. Padding follows ``upfirdn2d`` so that an
    n-tap filter keeps pixel centres aligned: down pads ((n-1)//2, (n-2)//2), up pads ((n-1)//2 + 1, (n-2)//2)
    after zero insertion, and the up kernel is multiplied by 4 to keep unit gain.
    """

    def __init__(self, taps: tuple[float, ...], mode: str, extra_pad: int = 0):
        super().__init__()
        if mode not in ("up", "down", "blur"):
            raise ValueError(f"mode must be up, down or blur, not {mode!r}")
        self.mode = mode
        n = len(taps)
        p = n - 2 + extra_pad
        self.pad = ((p + 1) // 2 + (1 if mode == "up" else 0), p // 2)
        # Not persistent: the filter is fixed by the config, so checkpoints stay free of it.
        self.register_buffer("kernel", fir_kernel_2d(taps) * (4.0 if mode == "up" else 1.0), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        if self.mode == "up":
            # Zero insertion: every input pixel lands on an even position of a 2x larger grid.
            up = x.new_zeros(b, c, h, 2, w, 2)
            up[:, :, :, 0, :, 0] = x
            x = up.reshape(b, c, 2 * h, 2 * w)
        lo, hi = self.pad
        x = nn.functional.pad(x, (lo, hi, lo, hi))
        weight = self.kernel.to(x.dtype)[None, None].expand(c, 1, *self.kernel.shape)
        return nn.functional.conv2d(x, weight, stride=2 if self.mode == "down" else 1, groups=c)
