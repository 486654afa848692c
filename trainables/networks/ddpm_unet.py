"""The DDPM U-Net of Ho et al. 2020 (diffusion_tf/models/unet.py), re-derived in PyTorch.

CIFAR10: 128 channels, multipliers (1, 2, 2, 2), 2 residual blocks per level, self-attention at 16x16,
dropout 0.1, GroupNorm(32), swish, sinusoidal time embedding -> 35.7M parameters.
``resample="box"`` swaps the strided down-sampling conv for 2x2 average pooling + conv (Table A.3's "box" filter).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from trainables.networks.layers import level_resolutions, timestep_embedding, zero_init

Tensor = torch.Tensor


class ResBlock(nn.Module):
    """GN-swish-conv, + dense(temb), GN-swish-dropout-conv(zero init), 1x1 shortcut when widths differ."""

    def __init__(self, c_in: int, c_out: int, temb: int, dropout: float, groups: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.temb = nn.Linear(temb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        h = h + self.temb(nn.functional.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(nn.functional.silu(self.norm2(h))))
        return self.skip(x) + h


class AttnBlock(nn.Module):
    """Single-head self-attention over all pixels, residual, zero-initialised output projection."""

    def __init__(self, c: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = zero_init(nn.Conv2d(c, c, 1))

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c**-0.5, dim=-1)
        out = torch.einsum("bij,bcj->bci", attn, v).reshape(b, c, h, w)
        return x + self.proj(out)


class Downsample(nn.Module):
    """Halve the resolution: Ho's strided 3x3 conv (``conv``), or a 2x2 box filter then a 3x3 conv (``box``).

    ``box`` is the "box" resampling filter of the paper's Table A.3 (EDM's filter [1, 1]): average pooling removes
    the aliasing of a strided conv; the conv after it keeps the parameter count (and capacity) unchanged.
    """

    def __init__(self, c: int, resample: Literal["conv", "box"] = "conv"):
        super().__init__()
        if resample not in ("conv", "box"):
            raise ValueError(f"resample must be 'conv' or 'box', not {resample!r}")
        self.pool = nn.AvgPool2d(2) if resample == "box" else nn.Identity()
        self.conv = nn.Conv2d(c, c, 3, stride=1 if resample == "box" else 2, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.pool(x))


class Upsample(nn.Module):
    """Nearest-neighbour 2x up-sampling (already the box filter) followed by a 3x3 conv, as in Ho et al."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2, mode="nearest"))


class DDPMUNet(nn.Module):
    """eps_theta(x_t, t): the input resolution must be divisible by 2^(levels-1)."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        channels: int = 128,
        channel_mult: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16,),
        dropout: float = 0.1,
        norm_groups: int = 32,
        resample: Literal["conv", "box"] = "conv",
        num_classes: int = 0,
    ):
        super().__init__()
        level_resolutions(resolution, channel_mult, attention_resolutions)
        self.channels = channels
        temb = 4 * channels
        self.temb = nn.Sequential(nn.Linear(channels, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.label_emb = nn.Embedding(num_classes, temb) if num_classes else None
        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)

        self.down = nn.ModuleList()
        widths, c, res = [channels], channels, resolution
        for level, mult in enumerate(channel_mult):
            for _ in range(num_res_blocks):
                blocks = [ResBlock(c, channels * mult, temb, dropout, norm_groups)]
                c = channels * mult
                if res in attention_resolutions:
                    blocks.append(AttnBlock(c, norm_groups))
                self.down.append(nn.ModuleList(blocks))
                widths.append(c)
            if level != len(channel_mult) - 1:
                self.down.append(nn.ModuleList([Downsample(c, resample)]))
                widths.append(c)
                res //= 2

        self.mid = nn.ModuleList(
            [
                ResBlock(c, c, temb, dropout, norm_groups),
                AttnBlock(c, norm_groups),
                ResBlock(c, c, temb, dropout, norm_groups),
            ]
        )

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(num_res_blocks + 1):
                blocks = [ResBlock(c + widths.pop(), channels * mult, temb, dropout, norm_groups)]
                c = channels * mult
                if res in attention_resolutions:
                    blocks.append(AttnBlock(c, norm_groups))
                self.up.append(nn.ModuleList(blocks))
            if level != 0:
                self.up.append(nn.ModuleList([Upsample(c)]))
                res *= 2

        self.out = nn.Sequential(
            nn.GroupNorm(norm_groups, c), nn.SiLU(), zero_init(nn.Conv2d(c, in_channels, 3, padding=1))
        )

    @staticmethod
    def _run(blocks: nn.ModuleList, h: Tensor, temb: Tensor) -> Tensor:
        for block in blocks:
            h = block(h, temb) if isinstance(block, ResBlock) else block(h)
        return h

    def forward(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        temb = self.temb(timestep_embedding(t, self.channels))
        if self.label_emb is not None and class_labels is not None:
            temb = temb + self.label_emb(class_labels)
        hs = [self.conv_in(x)]
        for blocks in self.down:
            hs.append(self._run(blocks, hs[-1], temb))
        h = self._run(self.mid, hs[-1], temb)
        for blocks in self.up:
            if isinstance(blocks[0], ResBlock):
                h = torch.cat([h, hs.pop()], dim=1)
            h = self._run(blocks, h, temb)
        return self.out(h)
