"""NCSNv2 RefineNet (Song & Ermon 2020, "Improved Techniques for Training Score-Based Generative Models").

Re-derived from the paper and ermongroup/ncsnv2 ``models/ncsnv2.py`` (class ``NCSNv2``, used for CIFAR10):
a pre-activation ResNet encoder with InstanceNorm++ (unconditional), ELU and dilated convolutions at the two
deepest stages, followed by a four-stage RefineNet decoder (residual conv units, multi-resolution fusion, chained
residual max-pooling). The network is unconditional; noise conditioning is s(x, sigma) = s(x) / sigma.

CIFAR10 (ngf = 128): 29.69M parameters. Stages at 32x32 input: 32 (ngf) -> 16 (2 ngf) -> 16 dilated 2 -> 16
dilated 4; the "down" blocks of the dilated stages keep the resolution (dilation replaces striding).

What the network expects depends on ``preconditioning`` (``class_labels`` is accepted and ignored either way:
NCSNv2 has no class conditioning):

- ``"internal"`` (ermongroup/ncsnv2's own call): ``x`` in [0, 1] (NCSN data are not centred; the net maps
  x -> 2x - 1 itself, as ncsnv2 does with ``rescaled: false``), ``t`` = sigma per sample (float [B], relative to
  [0, 1] data); returns the score estimate s(x)/sigma.
- ``"external"`` (default; what ``trainables/dynamics/precond.py::NCSNv2Precond`` drives): the wrapper already
  feeds 2x - 1 and multiplies by c_out = sigma, so the net returns the raw RefineNet output F = sigma * score and
  ignores ``t`` (the wrapper passes ln sigma). Both modes have the same parameters and the same function.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Tensor = torch.Tensor


class InstanceNormPlus(nn.Module):
    """InstanceNorm++: instance norm plus a learned correction by the normalised per-channel means.

    Plain instance norm erases each channel's mean, i.e. the colour shift of an image; InstanceNorm++ adds back
    alpha_c * (mu_c - mean_c mu) / std_c mu, then scales by gamma and shifts by beta (NCSNv2 paper, App. B.1).
    """

    def __init__(self, c: int):
        super().__init__()
        self.alpha = nn.Parameter(1 + 0.02 * torch.randn(c))
        self.gamma = nn.Parameter(1 + 0.02 * torch.randn(c))
        self.beta = nn.Parameter(torch.zeros(c))

    def forward(self, x: Tensor) -> Tensor:
        mu = x.mean(dim=(2, 3))
        # Unbiased variance over channels, 1e-5 floor: the reference statistics.
        mu_hat = (mu - mu.mean(dim=1, keepdim=True)) / torch.sqrt(mu.var(dim=1, keepdim=True) + 1e-5)
        h = nn.functional.instance_norm(x, eps=1e-5) + (mu_hat * self.alpha)[:, :, None, None]
        return self.gamma[None, :, None, None] * h + self.beta[None, :, None, None]


def conv3x3(c_in: int, c_out: int, dilation: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, 3, padding=dilation, dilation=dilation, bias=bias)


class MeanPool(nn.Module):
    """2x2 mean pooling, used after a convolution ("ConvMeanPool") to halve the resolution."""

    def forward(self, x: Tensor) -> Tensor:
        return nn.functional.avg_pool2d(x, 2)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: norm-ELU-conv, norm-ELU-conv, plus a (projected) shortcut.

    ``down`` without dilation halves the resolution (conv then 2x2 mean-pool, on both branches); ``down`` with
    dilation keeps it and only widens the receptive field. The shortcut is a projection whenever the block
    resamples or changes width (1x1 conv + pool when striding, the dilated 3x3 conv otherwise), as in ncsnv2.
    """

    def __init__(self, c_in: int, c_out: int, down: bool = False, dilation: int = 1):
        super().__init__()
        self.norm1 = InstanceNormPlus(c_in)
        self.act = nn.ELU()
        strided = down and dilation == 1
        # Widen in the second conv when down-sampling (keeps the expensive conv at the lower width before pooling).
        mid = c_in if down else c_out
        self.conv1 = conv3x3(c_in, mid, dilation)
        self.norm2 = InstanceNormPlus(mid)
        self.conv2 = (
            nn.Sequential(conv3x3(mid, c_out, dilation), MeanPool()) if strided else conv3x3(mid, c_out, dilation)
        )
        if strided:
            self.shortcut: nn.Module = nn.Sequential(nn.Conv2d(c_in, c_out, 1), MeanPool())
        elif down or c_in != c_out:
            self.shortcut = conv3x3(c_in, c_out, dilation) if dilation > 1 else nn.Conv2d(c_in, c_out, 1)
        else:
            self.shortcut = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(self.act(self.norm1(x)))
        h = self.conv2(self.act(self.norm2(h)))
        return self.shortcut(x) + h


class ResidualConvUnit(nn.Module):
    """RefineNet RCU: ``n_blocks`` residual units of ``n_stages`` (ELU, bias-free 3x3 conv)."""

    def __init__(self, c: int, n_blocks: int, n_stages: int = 2):
        super().__init__()
        self.units = nn.ModuleList(
            nn.Sequential(*[m for _ in range(n_stages) for m in (nn.ELU(), conv3x3(c, c, bias=False))])
            for _ in range(n_blocks)
        )

    def forward(self, x: Tensor) -> Tensor:
        for unit in self.units:
            x = x + unit(x)
        return x


class ChainedResidualPool(nn.Module):
    """RefineNet CRP: ELU, then a chain of (5x5 stride-1 max-pool, bias-free 3x3 conv) whose outputs are summed."""

    def __init__(self, c: int, n_stages: int = 2):
        super().__init__()
        self.pool = nn.MaxPool2d(5, stride=1, padding=2)
        self.convs = nn.ModuleList(conv3x3(c, c, bias=False) for _ in range(n_stages))
        self.act = nn.ELU()

    def forward(self, x: Tensor) -> Tensor:
        x = path = self.act(x)
        for conv in self.convs:
            path = conv(self.pool(path))
            x = x + path
        return x


class RefineBlock(nn.Module):
    """RefineNet block: adapt each input (2x2 RCU), fuse at the output size (3x3 conv + bilinear), CRP, output RCU."""

    def __init__(self, in_widths: list[int], c: int, end: bool = False):
        super().__init__()
        self.adapt = nn.ModuleList(ResidualConvUnit(w, 2) for w in in_widths)
        # Multi-resolution fusion only when there is more than one path to fuse (the "start" block has one).
        self.fuse = nn.ModuleList(conv3x3(w, c) for w in in_widths) if len(in_widths) > 1 else None
        self.crp = ChainedResidualPool(c)
        self.out = ResidualConvUnit(c, 3 if end else 1)

    def forward(self, xs: list[Tensor], size: torch.Size) -> Tensor:
        hs = [adapt(x) for adapt, x in zip(self.adapt, xs, strict=True)]
        if self.fuse is None:
            h = hs[0]
        else:
            h = sum(
                nn.functional.interpolate(conv(x), size=size, mode="bilinear", align_corners=True)
                for conv, x in zip(self.fuse, hs, strict=True)
            )
        return self.out(self.crp(h))


class NCSNv2(nn.Module):
    """NCSNv2 for 32x32-class images: s_theta(x, sigma) = RefineNet(2x - 1) / sigma (see ``preconditioning``)."""

    def __init__(
        self,
        in_channels: int,
        resolution: int,
        channels: int = 128,
        preconditioning: Literal["external", "internal"] = "external",
        num_classes: int = 0,
    ):
        super().__init__()
        if preconditioning not in ("external", "internal"):
            raise ValueError(f"preconditioning must be 'external' or 'internal', not {preconditioning!r}")
        self.internal = preconditioning == "internal"
        if resolution % 2:
            raise ValueError(f"resolution {resolution} must be even (one 2x down-sampling stage)")
        c, c2 = channels, 2 * channels
        self.conv_in = nn.Conv2d(in_channels, c, 3, padding=1)
        self.stage1 = nn.Sequential(ResidualBlock(c, c), ResidualBlock(c, c))
        self.stage2 = nn.Sequential(ResidualBlock(c, c2, down=True), ResidualBlock(c2, c2))
        self.stage3 = nn.Sequential(ResidualBlock(c2, c2, down=True, dilation=2), ResidualBlock(c2, c2, dilation=2))
        self.stage4 = nn.Sequential(ResidualBlock(c2, c2, down=True, dilation=4), ResidualBlock(c2, c2, dilation=4))
        self.refine1 = RefineBlock([c2], c2)
        self.refine2 = RefineBlock([c2, c2], c2)
        self.refine3 = RefineBlock([c2, c2], c)
        self.refine4 = RefineBlock([c, c], c, end=True)
        self.norm_out = InstanceNormPlus(c)
        self.conv_out = nn.Conv2d(c, in_channels, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, class_labels: Tensor | None = None) -> Tensor:
        h = self.conv_in(2 * x - 1 if self.internal else x)
        l1 = self.stage1(h)
        l2 = self.stage2(l1)
        l3 = self.stage3(l2)
        l4 = self.stage4(l3)
        r = self.refine1([l4], l4.shape[2:])
        r = self.refine2([l3, r], l3.shape[2:])
        r = self.refine3([l2, r], l2.shape[2:])
        r = self.refine4([l1, r], l1.shape[2:])
        out = self.conv_out(nn.functional.elu(self.norm_out(r)))
        # s(x, sigma) = s(x) / sigma: the unconditional net learns sigma * score, whose scale is sigma-independent.
        return out / t.to(out.dtype).reshape(-1, 1, 1, 1) if self.internal else out
