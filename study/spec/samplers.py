"""Sampler specs (a sampling axis: evaluated inside each trial on the same checkpoint).

Each sampler has an ``id`` used in metric keys (``is/<extractor>/n<N>/<id>/mean``): ``name`` when
given, else derived from the kind and its main parameters.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from study.spec.base import Strict

SamplerName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=60)]
Spacing = Literal["leading", "linspace", "trailing", "quadratic"]


class AncestralSampler(Strict):
    """DDPM ancestral (Markovian) sampling, Ho et al. Alg. 2 with guided-diffusion's semantics (REFERENCE B.2).

    ``steps`` None walks all T steps; fewer steps respace the betas over a subsequence while the model
    still sees the original timestep index.
    """

    kind: Literal["ancestral"] = "ancestral"
    name: SamplerName | None = None
    steps: int | None = Field(None, ge=1)
    spacing: Spacing = "linspace"
    variance: Literal["fixed_large", "fixed_small"] = "fixed_large"
    clip_x0: bool = True

    @property
    def id(self) -> str:
        return self.name or ("ancestral" if self.steps is None else f"ancestral-{self.steps}")


class DDIMSampler(Strict):
    """DDIM (Song et al. 2021, Eq. 12) with ``eta`` and a timestep spacing (REFERENCE B.3).

    ``clip_x0`` follows guided-diffusion: clip x0-hat to [-1, 1] and re-derive eps from it.
    """

    kind: Literal["ddim"] = "ddim"
    name: SamplerName | None = None
    steps: int = Field(50, ge=1)
    eta: float = Field(0.0, ge=0.0)
    spacing: Spacing = "leading"
    clip_x0: bool = False

    @property
    def id(self) -> str:
        if self.name:
            return self.name
        return f"ddim-{self.steps}" + (f"-eta{self.eta:g}" if self.eta else "")


SamplerSpec = Annotated[AncestralSampler | DDIMSampler, Field(discriminator="kind")]
