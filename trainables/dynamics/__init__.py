"""Diffusion dynamics: the noise process, the training loss, and what samplers are handed.

Each family implements the ``Dynamics`` protocol and is registered under the ``kind`` its spec names.
The trainable only talks to this protocol, so adding a family touches no training code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from torch import nn

Tensor = torch.Tensor


class Dynamics(Protocol):
    """What a trial needs from a diffusion family."""

    def loss(
        self, net: nn.Module, x0: Tensor, generator: torch.Generator, class_labels: Tensor | None = None
    ) -> Tensor:
        """Scalar training loss on a batch of data x0 (in [-1, 1])."""
        ...

    def sampling_model(self, net: nn.Module, class_labels: Tensor | None = None) -> Any:
        """The object samplers receive: an ``EpsModel`` (discrete) or a denoiser D(x, sigma) (continuous)."""
        ...

    def to_data(self, x: Tensor) -> Tensor:
        """Map a sampler's output back to data space [-1, 1] (e.g. NCSN works on [0, 1])."""
        ...

    def summary(self) -> dict[str, float]:
        """Numbers a researcher should see before launching (terminal alpha-bar, log-SNR, sigma range)."""
        ...


# Optional hook, not part of the protocol: ``fit_data(train_x: Tensor) -> None``, called once by the trainable
# with the whole training set in [-1, 1] before training, for families that derive a setting from the data
# (NCSNv2's sigma_1 = largest pairwise distance). Call it as ``getattr(dynamics, "fit_data", None)``.


def _ddpm(spec: Any) -> Dynamics:
    from trainables.dynamics.ddpm import DDPM

    return DDPM.from_spec(spec)


def _ncsnv2(spec: Any) -> Dynamics:
    from trainables.dynamics.ncsn import NCSNv2

    return NCSNv2.from_spec(spec)


def _vp_sde(spec: Any) -> Dynamics:
    from trainables.dynamics.sde import VPSDEDynamics

    return VPSDEDynamics.from_spec(spec)


def _ve_sde(spec: Any) -> Dynamics:
    from trainables.dynamics.sde import VESDEDynamics

    return VESDEDynamics.from_spec(spec)


@dataclass(frozen=True)
class DynamicsDecl:
    """A family: how to build it from its spec, and the model interfaces its ``sampling_model`` provides
    (``eps``: an ``EpsModel`` on the discrete schedule; ``denoiser``: D(x, sigma); ``levels``: discrete sigmas;
    ``sde``: the model's own continuous process, for samplers that integrate the ``native`` SDE)."""

    build: Callable[[Any], Dynamics]
    provides: frozenset[str]

    def __call__(self, spec: Any) -> Dynamics:
        return self.build(spec)


DYNAMICS: dict[str, DynamicsDecl] = {
    # ddpm's denoiser is the sigma-space view of its eps model (trainables.samplers.view, DiscreteEpsDenoiser)
    "ddpm": DynamicsDecl(_ddpm, frozenset({"eps", "denoiser"})),
    "ncsnv2": DynamicsDecl(_ncsnv2, frozenset({"denoiser", "levels"})),
    "vp_sde": DynamicsDecl(_vp_sde, frozenset({"denoiser", "sde"})),
    "ve_sde": DynamicsDecl(_ve_sde, frozenset({"denoiser", "sde"})),
}


def build_dynamics(spec: Any) -> Dynamics:
    """The dynamics registered under ``spec.kind``."""
    return DYNAMICS[spec.kind](spec)


__all__ = ["DYNAMICS", "Dynamics", "DynamicsDecl", "build_dynamics"]
