"""Network specs, discriminated by ``kind``. Defaults are the reference CIFAR10 configurations.

A tiny network for the embedded 16x16 digits is the same kind with smaller values, e.g.
``{kind: ncsnpp, channels: 16, channel_mult: [1, 2], num_res_blocks: 1, attention_resolutions: [8]}``.
Attention resolutions are checked against the data resolution when the network is built.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from study.contract.spec.base import MAX_WIDTH, Strict

ChannelMult = Annotated[tuple[Annotated[int, Field(ge=1, le=64)], ...], Field(min_length=1, max_length=8)]
Resolutions = Annotated[tuple[Annotated[int, Field(ge=1, le=1024)], ...], Field(max_length=8)]


def _check_groups(field: str, groups: int, widths: set[int], rule: str = "exact") -> None:
    """GroupNorm needs its group count to divide every width it normalises; name the offending field."""
    bad = []
    for w in sorted(widths):
        g = max(1, min(w // 4, groups)) if rule == "score_sde" else groups
        if w % g:
            bad.append(w)
    if bad:
        raise ValueError(f"{field}={groups} must divide (GroupNorm) every feature width, not {bad}")


class DDPMUNet(Strict):
    """The DDPM U-Net of Ho et al. 2020 (CIFAR10: 128 channels, (1,2,2,2), 2 blocks, attention at 16, 35.7M)."""

    kind: Literal["ddpm_unet"] = "ddpm_unet"
    channels: int = Field(128, ge=1, le=MAX_WIDTH)
    channel_mult: ChannelMult = (1, 2, 2, 2)
    num_res_blocks: int = Field(2, ge=1, le=16)
    attention_resolutions: Resolutions = (16,)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm_groups: int = Field(32, ge=1, le=MAX_WIDTH)
    resample: Literal["conv", "box"] = Field("conv", description="down-sampling: Ho's strided conv, or box filter")

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> DDPMUNet:
        widths = [self.channels * m for m in (1, *self.channel_mult)]
        # Decoder blocks see [h, skip] concatenations: every width plus its own and its neighbour's level width.
        cats = {a + b for a in widths for b in widths}
        _check_groups("norm_groups", self.norm_groups, set(widths) | cats)
        return self


class NCSNv2(Strict):
    """NCSNv2 RefineNet (Song & Ermon 2020), InstanceNorm++, ELU, dilations; CIFAR10 ngf=128 -> 29.7M."""

    kind: Literal["ncsnv2"] = "ncsnv2"
    channels: int = Field(128, ge=1, le=MAX_WIDTH, description="ngf: width of the first stage (deeper stages use 2x)")
    preconditioning: Literal["external", "internal"] = Field(
        "external",
        description="external: the dynamics' NCSNv2Precond feeds 2x-1 and scales by sigma (net returns sigma*score); "
        "internal: ncsnv2's own call, x in [0,1], t = sigma, returns score = output/sigma",
    )


class _ScoreUNet(Strict):
    """Shared fields of the score_sde U-Net family (DDPM++ / NCSN++)."""

    channels: int = Field(128, ge=1, le=MAX_WIDTH)
    channel_mult: ChannelMult = (1, 2, 2, 2)
    num_res_blocks: int = Field(4, ge=1, le=16)
    attention_resolutions: Resolutions = (16,)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm_groups: int = Field(
        32, ge=1, le=MAX_WIDTH, description="at most this many groups; score_sde uses min(width/4, 32)"
    )
    skip_rescale: bool = True

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> _ScoreUNet:
        widths = [self.channels * m for m in (1, *self.channel_mult)]
        cats = {a + b for a in widths for b in widths}
        _check_groups("norm_groups", self.norm_groups, set(widths) | cats, rule="score_sde")
        return self


class DDPMpp(_ScoreUNet):
    """DDPM++ cont. (score_sde cifar10_ddpmpp_continuous): box resampling, positional embedding -> 61.8M."""

    kind: Literal["ddpmpp"] = "ddpmpp"
    resample_filter: tuple[float, ...] = Field((1, 1), min_length=2, description="FIR taps; (1, 1) = box")


class NCSNpp(_ScoreUNet):
    """NCSN++ cont. (score_sde cifar10_ncsnpp_continuous): FIR [1,3,3,1], residual input, Fourier -> 62.8M."""

    kind: Literal["ncsnpp"] = "ncsnpp"
    resample_filter: tuple[float, ...] = Field((1, 3, 3, 1), min_length=2, description="FIR taps")
    fourier_scale: float = Field(16.0, gt=0.0, le=1e4)
    progressive_input: Literal["none", "residual"] = "residual"


class NoisyClassifier(Strict):
    """Guidance classifier = ADM encoder U-Net with attention pooling (Table A.4: 64 ch, (1,2,4), 2 blocks) -> 7.55M.

    Table A.4 lists attention at 16, 8 and 4; a 3-level encoder at 32x32 bottoms out at 8x8, so 4 is never reached
    (guided-diffusion ignores it silently, this harness rejects unreachable resolutions).
    """

    kind: Literal["noisy_classifier"] = "noisy_classifier"
    channels: int = Field(64, ge=1, le=MAX_WIDTH)
    channel_mult: ChannelMult = (1, 2, 4)
    num_res_blocks: int = Field(2, ge=1, le=16)
    attention_resolutions: Resolutions = (16, 8)
    head_channels: int = Field(64, ge=1, le=MAX_WIDTH)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    norm_groups: int = Field(32, ge=1, le=MAX_WIDTH)

    @model_validator(mode="after")
    def _check_widths(self) -> NoisyClassifier:
        widths = {self.channels * m for m in self.channel_mult}
        _check_groups("norm_groups", self.norm_groups, widths)
        # The middle block and the pooling always attend at the deepest width (other levels are checked at build).
        deepest = self.channels * self.channel_mult[-1]
        if deepest % self.head_channels:
            raise ValueError(f"head_channels={self.head_channels} must divide the deepest width {deepest}")
        return self


def _kind(value: Any) -> str:
    """Discriminator: the ``kind`` key (``ddpm_unet`` when omitted, so older specs stay valid)."""
    if isinstance(value, dict):
        return value.get("kind", "ddpm_unet")
    return getattr(value, "kind", "ddpm_unet")


NetworkSpec = Annotated[
    Annotated[DDPMUNet, Tag("ddpm_unet")]
    | Annotated[NCSNv2, Tag("ncsnv2")]
    | Annotated[DDPMpp, Tag("ddpmpp")]
    | Annotated[NCSNpp, Tag("ncsnpp")]
    | Annotated[NoisyClassifier, Tag("noisy_classifier")],
    Discriminator(_kind),
]
