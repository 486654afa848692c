"""Networks by the ``kind`` a spec names: ``build_network(spec, channels, resolution, num_classes)``.

Every denoiser is called as ``net(x, t, class_labels=None) -> tensor shaped like x``; what ``t`` means is stated in
each module (DDPM U-Net / DDPM++: the timestep on the 0..999 scale; NCSN++: c_noise, e.g. ln sigma or ln(sigma/2);
NCSNv2: ignored by default, the raw output sigma * score under the dynamics' NCSNv2Precond, or with
``preconditioning="internal"`` sigma itself, returning s(x)/sigma). The noisy classifier is called as
``net(x_t, t) -> logits [B, num_classes]``.

Parameter counts of the CIFAR10 configurations (32x32x3, unconditional; classifier with 10 classes):

| kind             | ours       | reference  | source of the reference number                                          |
|------------------|------------|------------|-------------------------------------------------------------------------|
| ddpm_unet        | 35,746,307 | 35.7M      | Ho et al. 2020, Sec. 4 / diffusion README ("35.7 million parameters")   |
| ncsnv2           | 29,694,083 | 29,694,083 | ermongroup/ncsnv2 ``NCSNv2`` with configs/cifar10.yml, counted by us    |
| ddpmpp           | 61,804,419 | 61,804,419 | score_sde ``NCSNpp`` + configs/vp/cifar10_ddpmpp_continuous.py, counted |
| ncsnpp           | 62,758,787 | 62,758,915 | score_sde ``NCSNpp`` + configs/ve/cifar10_ncsnpp_continuous.py, counted;|
|                  |            |            | the 128 extra are its frozen Fourier frequencies (a buffer here)        |
| noisy_classifier |  7,553,802 |  7,553,802 | guided-diffusion ``EncoderUNetModel`` with Table A.4 settings, counted  |

"Counted" = the reference module instantiated on CPU (score_sde's CUDA op stubbed; it holds no parameters) and its
``parameters()`` summed. None of their code is used here: every network is re-derived (licences forbid copying).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from trainables.networks.classifier import NoisyClassifier
from trainables.networks.ddpm_unet import DDPMUNet
from trainables.networks.ncsnpp import DDPMpp, NCSNpp
from trainables.networks.ncsnv2 import NCSNv2

NETWORKS: dict[str, Callable[..., nn.Module]] = {
    "ddpm_unet": DDPMUNet,
    "ncsnv2": NCSNv2,
    "ddpmpp": DDPMpp,
    "ncsnpp": NCSNpp,
    "noisy_classifier": NoisyClassifier,
}


def build_network(spec: Any, in_channels: int, resolution: int, num_classes: int = 0) -> nn.Module:
    """Instantiate the network registered under ``spec.kind`` with the spec's remaining fields."""
    params = spec.model_dump(exclude={"kind"})
    return NETWORKS[spec.kind](in_channels=in_channels, resolution=resolution, num_classes=num_classes, **params)


def count_parameters(net: nn.Module) -> int:
    return sum(p.numel() for p in net.parameters())


__all__ = ["NETWORKS", "build_network", "count_parameters"]
