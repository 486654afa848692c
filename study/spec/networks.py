"""Network specs, discriminated by ``kind``. Defaults are the reference CIFAR10 configurations."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from study.spec.base import Strict


class DDPMUNet(Strict):
    """The DDPM U-Net of Ho et al. 2020 (CIFAR10: 128 channels, (1,2,2,2), 2 blocks, attention at 16, 35.7M)."""

    kind: Literal["ddpm_unet"] = "ddpm_unet"
    channels: int = Field(128, ge=1)
    channel_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = Field(2, ge=1)
    attention_resolutions: tuple[int, ...] = (16,)
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    norm_groups: int = Field(32, ge=1)

    @model_validator(mode="after")
    def _groups_divide_channels(self) -> DDPMUNet:
        widths = {self.channels * m for m in self.channel_mult} | {self.channels}
        bad = sorted(w for w in widths if w % self.norm_groups)
        if bad:
            raise ValueError(f"norm_groups={self.norm_groups} must divide every level width, not {bad}")
        return self


NetworkSpec = DDPMUNet
