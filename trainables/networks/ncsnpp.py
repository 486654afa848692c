"""DDPM++ and NCSN++ (Song et al. 2021, "Score-Based Generative Modeling through SDEs"), re-derived in PyTorch.

Both are one U-Net family that differs only in configuration (score_sde's ``models/ncsnpp.py``; EDM's ``SongUNet``):

| setting                 | DDPM++ (cifar10_ddpmpp_continuous) | NCSN++ (cifar10_ncsnpp_continuous)       |
|-------------------------|------------------------------------|------------------------------------------|
| resampling filter       | box [1, 1] (avg-pool / nearest)    | FIR [1, 3, 3, 1]                         |
| progressive input       | none                               | residual (FIR-down 3x3 conv of the input) |
| noise embedding         | sinusoidal (positional) of t       | Gaussian Fourier features, scale 16      |

Common: 128 channels, multipliers (1, 2, 2, 2), 4 BigGAN residual blocks per level (up/down-sampling inside the
block), sums rescaled by 1/sqrt(2), single-head self-attention at 16x16, GroupNorm(min(C/4, 32)), swish, dropout
0.1, zero-initialised last convolutions. CIFAR10 sizes: DDPM++ 61.80M, NCSN++ 62.76M parameters.

What the network expects (the dynamics owns all preconditioning, EDM-style; the backbone applies none):
- ``x`` as the dynamics scales it (score_sde feeds [-1, 1] data; its VE model maps [0, 1] -> [-1, 1] inside, here
  that is the dynamics' job), output of the same shape, not divided by sigma.
- ``t``: a float per sample fed straight into the embedding. DDPM++ (positional): the timestep on the 0..999 scale
  (score_sde feeds 999 t for the VP SDE). NCSN++ (Fourier): c_noise, a function of sigma such as ln(sigma)
  (score_sde VE) or ln(sigma)/4 (EDM); the Fourier frequencies (std 16) assume values of order 1.
- ``class_labels``: optional LongTensor [B]; a learned embedding added to the noise embedding (EDM's ``map_label``),
  only present when ``num_classes > 0``.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from trainables.networks.layers import FIRResample, check_groups, level_resolutions, timestep_embedding, zero_init

Tensor = torch.Tensor
SKIP_SCALE = 1 / math.sqrt(2)


def _norm(channels: int, max_groups: int) -> nn.GroupNorm:
    """score_sde's GroupNorm: min(C/4, max_groups) groups, eps 1e-6 (so narrow tiny nets still get 4 channels/group)."""
    return nn.GroupNorm(check_groups(channels, max(1, min(channels // 4, max_groups))), channels, eps=1e-6)


class FourierEmbedding(nn.Module):
    """Gaussian Fourier features [sin(2 pi w c), cos(2 pi w c)], w ~ N(0, scale^2) fixed (Tancik et al. 2020)."""

    def __init__(self, dim: int, scale: float):
        super().__init__()
        # A buffer, not a parameter: the frequencies are never trained (score_sde keeps them with requires_grad=False).
        self.register_buffer("freqs", torch.randn(dim // 2) * scale)

    def forward(self, c: Tensor) -> Tensor:
        args = 2 * math.pi * c.float()[:, None] * self.freqs[None]
        return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class BigGANBlock(nn.Module):
    """BigGAN-style residual block: GN-swish-[resample]-conv, +dense(emb), GN-swish-dropout-conv(zero init).

    When the block changes resolution both branches are resampled with the same filter and the skip branch gets a
    1x1 convolution; the sum is scaled by 1/sqrt(2) to keep the variance of the residual stream constant.
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_dim: int,
        dropout: float,
        norm_groups: int,
        resample: Literal["up", "down"] | None = None,
        taps: tuple[float, ...] = (1, 1),
        skip_rescale: bool = True,
    ):
        super().__init__()
        self.norm1 = _norm(c_in, norm_groups)
        self.resample = FIRResample(taps, resample) if resample else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2 = _norm(c_out, norm_groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if (c_in != c_out or resample) else nn.Identity()
        self.skip_scale = SKIP_SCALE if skip_rescale else 1.0

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.resample(nn.functional.silu(self.norm1(x)))
        h = self.conv1(h)
        h = h + self.emb(nn.functional.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(nn.functional.silu(self.norm2(h))))
        return (self.skip(self.resample(x)) + h) * self.skip_scale


class SelfAttention(nn.Module):
    """Single-head self-attention over all pixels (score_sde ``AttnBlockpp``), residual sum scaled by 1/sqrt(2)."""

    def __init__(self, c: int, norm_groups: int, skip_rescale: bool = True):
        super().__init__()
        self.norm = _norm(c, norm_groups)
        self.qkv = nn.Conv2d(c, 3 * c, 1)
        self.proj = zero_init(nn.Conv2d(c, c, 1))
        self.skip_scale = SKIP_SCALE if skip_rescale else 1.0

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, c, h * w).unbind(1)
        attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * c**-0.5, dim=-1)
        out = torch.einsum("bij,bcj->bci", attn, v).reshape(b, c, h, w)
        return (x + self.proj(out)) * self.skip_scale


class ResAttn(nn.Module):
    """A residual block optionally followed by self-attention (the unit repeated at every level)."""

    def __init__(self, block: BigGANBlock, attn: SelfAttention | None):
        super().__init__()
        self.block = block
        self.attn = attn if attn is not None else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.attn(self.block(x, emb))


class EncoderLevel(nn.Module):
    """``num_res_blocks`` blocks at one resolution, then (except at the bottom) a down-sampling BigGAN block.

    With ``progressive_input='residual'`` (NCSN++) a FIR-blurred strided 3x3 convolution carries the running input
    pyramid down one level and is averaged (1/sqrt(2)) into the down-sampled features.
    """

    def __init__(self, blocks: list[ResAttn], down: BigGANBlock | None, pyramid: nn.Module | None, skip_rescale: bool):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.down = down
        self.pyramid = pyramid
        self.skip_scale = SKIP_SCALE if skip_rescale else 1.0

    def forward(
        self, h: Tensor, emb: Tensor, skips: list[Tensor], pyramid: Tensor | None
    ) -> tuple[Tensor, Tensor | None]:
        for block in self.blocks:
            h = block(h, emb)
            skips.append(h)
        if self.down is not None:
            h = self.down(h, emb)
            if self.pyramid is not None:
                h = pyramid = (self.pyramid(pyramid) + h) * self.skip_scale
            skips.append(h)
        return h, pyramid


class DecoderLevel(nn.Module):
    """``num_res_blocks + 1`` blocks eating one skip each, attention once at the end, then an up-sampling block."""

    def __init__(self, blocks: list[BigGANBlock], attn: SelfAttention | None, up: BigGANBlock | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attn = attn if attn is not None else nn.Identity()
        self.up = up

    def forward(self, h: Tensor, emb: Tensor, skips: list[Tensor]) -> Tensor:
        for block in self.blocks:
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
        h = self.attn(h)
        return self.up(h, emb) if self.up is not None else h


class ScoreUNet(nn.Module):
    """The score_sde U-Net; ``DDPMpp`` and ``NCSNpp`` below are its two reference configurations."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        channels: int = 128,
        channel_mult: tuple[int, ...] = (1, 2, 2, 2),
        num_res_blocks: int = 4,
        attention_resolutions: tuple[int, ...] = (16,),
        dropout: float = 0.1,
        norm_groups: int = 32,
        embedding: Literal["positional", "fourier"] = "positional",
        fourier_scale: float = 16.0,
        resample_filter: tuple[float, ...] = (1, 1),
        progressive_input: Literal["none", "residual"] = "none",
        skip_rescale: bool = True,
        num_classes: int = 0,
    ):
        super().__init__()
        levels = len(channel_mult)
        resolutions = level_resolutions(resolution, channel_mult, attention_resolutions)
        self.channels = channels
        self.embedding = embedding
        emb_in = 2 * channels if embedding == "fourier" else channels
        emb_dim = 4 * channels
        self.fourier = FourierEmbedding(emb_in, fourier_scale) if embedding == "fourier" else None
        # Class labels join the noise embedding before the MLP, as EDM's SongUNet does (score_sde has none).
        self.label_emb = nn.Embedding(num_classes, emb_in) if num_classes else None
        self.emb_mlp = nn.Sequential(nn.Linear(emb_in, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def block(c_in: int, c_out: int, resample: Literal["up", "down"] | None = None) -> BigGANBlock:
            return BigGANBlock(c_in, c_out, emb_dim, dropout, norm_groups, resample, resample_filter, skip_rescale)

        def attn(c: int, res: int) -> SelfAttention | None:
            return SelfAttention(c, norm_groups, skip_rescale) if res in attention_resolutions else None

        self.conv_in = nn.Conv2d(in_channels, channels, 3, padding=1)
        skip_widths, c, pyramid_c = [channels], channels, in_channels
        self.encoder = nn.ModuleList()
        for i, (mult, res) in enumerate(zip(channel_mult, resolutions, strict=True)):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResAttn(block(c, channels * mult), attn(channels * mult, res)))
                c = channels * mult
                skip_widths.append(c)
            down = pyramid = None
            if i < levels - 1:
                down = block(c, c, "down")
                if progressive_input == "residual":
                    # score_sde's pyramid_downsample: FIR blur then a strided 3x3 conv (upfirdn2d conv_downsample).
                    pyramid = nn.Sequential(
                        FIRResample(resample_filter, "blur", extra_pad=2), nn.Conv2d(pyramid_c, c, 3, stride=2)
                    )
                    pyramid_c = c
                skip_widths.append(c)
            self.encoder.append(EncoderLevel(blocks, down, pyramid, skip_rescale))

        self.mid = nn.ModuleList(
            [ResAttn(block(c, c), SelfAttention(c, norm_groups, skip_rescale)), ResAttn(block(c, c), None)]
        )

        self.decoder = nn.ModuleList()
        for i in reversed(range(levels)):
            blocks = []
            for _ in range(num_res_blocks + 1):
                blocks.append(block(c + skip_widths.pop(), channels * channel_mult[i]))
                c = channels * channel_mult[i]
            self.decoder.append(DecoderLevel(blocks, attn(c, resolutions[i]), block(c, c, "up") if i else None))

        self.out = nn.Sequential(_norm(c, norm_groups), nn.SiLU(), zero_init(nn.Conv2d(c, in_channels, 3, padding=1)))

    def forward(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        if self.fourier is not None:
            emb = self.fourier(t)
        else:
            emb = timestep_embedding(t, self.channels)
        if self.label_emb is not None and class_labels is not None:
            emb = emb + self.label_emb(class_labels)
        emb = self.emb_mlp(emb)

        h = self.conv_in(x)
        skips, pyramid = [h], x
        for level in self.encoder:
            h, pyramid = level(h, emb, skips, pyramid)
        for unit in self.mid:
            h = unit(h, emb)
        for level in self.decoder:
            h = level(h, emb, skips)
        return self.out(h)


class DDPMpp(ScoreUNet):
    """DDPM++ (cifar10_ddpmpp_continuous): box resampling, no progressive input, positional embedding of t."""

    def __init__(self, in_channels: int, resolution: int, **kwargs: object):
        kwargs.setdefault("embedding", "positional")
        kwargs.setdefault("resample_filter", (1, 1))
        kwargs.setdefault("progressive_input", "none")
        super().__init__(in_channels, resolution, **kwargs)  # type: ignore[arg-type]


class NCSNpp(ScoreUNet):
    """NCSN++ (cifar10_ncsnpp_continuous): FIR [1,3,3,1], residual progressive input, Fourier embedding (scale 16)."""

    def __init__(self, in_channels: int, resolution: int, **kwargs: object):
        kwargs.setdefault("embedding", "fourier")
        kwargs.setdefault("resample_filter", (1, 3, 3, 1))
        kwargs.setdefault("progressive_input", "residual")
        super().__init__(in_channels, resolution, **kwargs)  # type: ignore[arg-type]
