"""Networks by the ``kind`` a spec names: ``build_network(spec, channels, resolution, num_classes)``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from trainables.networks.ddpm_unet import DDPMUNet

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "ddpm_unet": DDPMUNet,
}


def build_network(spec: Any, in_channels: int, resolution: int, num_classes: int = 0) -> nn.Module:
    """Instantiate the network registered under ``spec.kind`` with the spec's remaining fields."""
    params = spec.model_dump(exclude={"kind"})
    return NETWORKS[spec.kind](in_channels=in_channels, resolution=resolution, num_classes=num_classes, **params)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


__all__ = ["NETWORKS", "build_network", "count_parameters"]
