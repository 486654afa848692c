"""Noisy classifier for classifier guidance (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs on Image Synthesis").

Re-derived from the paper and openai/guided-diffusion ``unet.py::EncoderUNetModel``: the down-sampling half of the
ADM U-Net conditioned on the timestep (scale-shift GroupNorm), residual blocks that down-sample inside the block,
multi-head self-attention (64 channels per head), a middle block (res, attention, res) and CLIP-style attention
pooling of the final feature map into class logits.

CIFAR10 configuration (paper Table A.4): 64 model channels, multipliers (1, 2, 4), 2 residual blocks per level,
attention at 16 and 8 (the table also lists 4, which a 3-level encoder on 32x32 never reaches: its lowest resolution,
where the middle block attends and the pooling runs, is 8x8; guided-diffusion silently skips it, we reject
unreachable resolutions, so the default lists 16 and 8), 64 channels per head -> 7.55M parameters with 10 classes.

Call: ``forward(x, t) -> logits [B, num_classes]`` with ``x`` the noised image as the diffusion sees it and ``t``
the same timestep index (float, 0..T-1) the diffusion model gets (REFERENCE.md B.4: train with the diffusion's
schedule and T; never a respaced index).
"""

from __future__ import annotations

import torch
from torch import nn

from trainables.networks.layers import check_groups, level_resolutions, timestep_embedding, zero_init

Tensor = torch.Tensor


def _attend(qkv: Tensor, heads: int) -> Tensor:
    """Multi-head scaled dot-product attention over tokens; ``qkv`` is [B, 3C, N], the result [B, C, N]."""
    b, c3, n = qkv.shape
    c = c3 // 3
    q, k, v = qkv.reshape(b * heads, 3, c // heads, n).unbind(1)
    attn = torch.softmax(torch.einsum("bci,bcj->bij", q, k) * (c // heads) ** -0.5, dim=-1)
    return torch.einsum("bij,bcj->bci", attn, v).reshape(b, c, n)


class ScaleShiftResBlock(nn.Module):
    """ADM residual block: GN-SiLU-[down]-conv, GN * (1 + scale) + shift from the embedding, SiLU-dropout-conv(0).

    Scale-shift ("adaptive group norm") lets the timestep modulate the normalised features multiplicatively, which
    ADM found better than an additive bias. A down-sampling block average-pools both branches (resblock_updown).
    """

    def __init__(self, c_in: int, c_out: int, emb_dim: int, dropout: float, groups: int, down: bool = False):
        super().__init__()
        self.norm1 = nn.GroupNorm(check_groups(c_in, groups), c_in)
        self.down = nn.AvgPool2d(2) if down else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(check_groups(c_out, groups), c_out)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(nn.Conv2d(c_out, c_out, 3, padding=1))
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.down(nn.functional.silu(self.norm1(x))))
        scale, shift = self.emb(nn.functional.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(nn.functional.silu(h)))
        return self.skip(self.down(x)) + h


class MultiHeadSelfAttention(nn.Module):
    """Residual multi-head self-attention over pixels, ``head_channels`` per head, zero-initialised projection."""

    def __init__(self, c: int, head_channels: int, groups: int):
        super().__init__()
        if c % head_channels:
            raise ValueError(f"head_channels: {head_channels} does not divide an attention width of {c}")
        self.heads = c // head_channels
        self.norm = nn.GroupNorm(check_groups(c, groups), c)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj = zero_init(nn.Conv1d(c, c, 1))

    def forward(self, x: Tensor, emb: Tensor | None = None) -> Tensor:
        b, c, h, w = x.shape
        qkv = self.qkv(self.norm(x).reshape(b, c, h * w))
        return x + self.proj(_attend(qkv, self.heads)).reshape(b, c, h, w)


class AttentionPool2d(nn.Module):
    """CLIP's attention pooling: the spatial mean is prepended as a query token, attends over all tokens (with a
    learned positional embedding), and its output, projected to ``out_dim``, is the pooled result."""

    def __init__(self, size: int, c: int, head_channels: int, out_dim: int):
        super().__init__()
        if c % head_channels:
            raise ValueError(f"head_channels: {head_channels} does not divide the pooled width {c}")
        self.heads = c // head_channels
        self.pos = nn.Parameter(torch.randn(c, size * size + 1) / c**0.5)
        self.qkv = nn.Conv1d(c, 3 * c, 1)
        self.proj = nn.Conv1d(c, out_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        tokens = x.flatten(2)
        tokens = torch.cat([tokens.mean(dim=2, keepdim=True), tokens], dim=2) + self.pos[None].to(x.dtype)
        return self.proj(_attend(self.qkv(tokens), self.heads))[:, :, 0]


class NoisyClassifier(nn.Module):
    """p_phi(y | x_t, t): ADM's ``EncoderUNetModel`` with attention pooling."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        num_classes: int,
        channels: int = 64,
        channel_mult: tuple[int, ...] = (1, 2, 4),
        num_res_blocks: int = 2,
        attention_resolutions: tuple[int, ...] = (16, 8),
        head_channels: int = 64,
        dropout: float = 0.0,
        norm_groups: int = 32,
    ):
        super().__init__()
        if num_classes < 1:
            raise ValueError("a classifier needs num_classes >= 1")
        levels = len(channel_mult)
        resolutions = level_resolutions(resolution, channel_mult, attention_resolutions, network="encoder")
        self.channels = channels
        emb_dim = 4 * channels
        self.time_mlp = nn.Sequential(nn.Linear(channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))

        def attn(c: int) -> MultiHeadSelfAttention:
            return MultiHeadSelfAttention(c, head_channels, norm_groups)

        self.conv_in = nn.Conv2d(in_channels, channels * channel_mult[0], 3, padding=1)
        c = channels * channel_mult[0]
        self.blocks = nn.ModuleList()
        for i, (mult, res) in enumerate(zip(channel_mult, resolutions, strict=True)):
            for _ in range(num_res_blocks):
                self.blocks.append(ScaleShiftResBlock(c, channels * mult, emb_dim, dropout, norm_groups))
                c = channels * mult
                if res in attention_resolutions:
                    self.blocks.append(attn(c))
            if i < levels - 1:
                self.blocks.append(ScaleShiftResBlock(c, c, emb_dim, dropout, norm_groups, down=True))
        self.blocks.extend(
            [
                ScaleShiftResBlock(c, c, emb_dim, dropout, norm_groups),
                attn(c),
                ScaleShiftResBlock(c, c, emb_dim, dropout, norm_groups),
            ]
        )
        self.norm_out = nn.GroupNorm(check_groups(c, norm_groups), c)
        self.pool = AttentionPool2d(resolutions[-1], c, head_channels, num_classes)

    def forward(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.channels))
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h, emb)
        return self.pool(nn.functional.silu(self.norm_out(h)))
