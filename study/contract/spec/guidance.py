"""Guidance as a sampling axis (ADM, Dhariwal & Nichol 2021, Alg. 1 and 2) and the noisy classifier it uses.

Every evaluation of a trial is one (sampler, guidance) pair on the same checkpoint. Its id, used in metric keys
(``is/<extractor>/n<N>/<eval id>/mean``), is the sampler id for ``none`` and ``<sampler id>:<kind>-<scale>``
otherwise, e.g. ``ddim-50:classifier-1`` (a colon: sampler names never contain one, and MLflow metric keys reject
``+``).

* ``classifier``: the noisy classifier trained on noised images of the study's dataset with the diffusion's own
  schedule and T (section ``classifier`` of the study spec); trained once in the driver and cached.
* ``misguided``: the same architecture from a fixed-seed random initialisation, never trained (the paper's
  "misguided diffusion"): guidance by a meaningless gradient, the control for the trained classifier.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from study.contract.spec.base import MAX_BATCH, MAX_EPOCHS, SEED_MAX, Strict
from study.contract.spec.networks import NoisyClassifier

GuidanceKind = Literal["none", "classifier", "misguided"]


class GuidanceSpec(Strict):
    """One guidance setting; ``scale`` multiplies grad log p(y | x_t, t) (ADM's ``classifier_scale``)."""

    kind: GuidanceKind = "none"
    scale: float = Field(1.0, ge=0.0, le=1e4)

    @model_validator(mode="after")
    def _scale_for_guided_only(self) -> GuidanceSpec:
        if self.kind == "none" and self.scale != 1.0:
            raise ValueError("guidance kind 'none' takes no scale (use kind: classifier with scale: 0 to compare)")
        return self

    @property
    def guided(self) -> bool:
        return self.kind != "none"

    def eval_id(self, sampler_id: str) -> str:
        """``<sampler id>`` unguided, else ``<sampler id>:<kind>-<scale:g>`` (e.g. ``ddim-50:classifier-1``)."""
        return sampler_id if self.kind == "none" else f"{sampler_id}:{self.kind}-{self.scale:g}"


class ClassifierSpec(Strict):
    """The noisy classifier for guidance: its network (Table A.4 defaults) and how it is trained.

    Training follows guided-diffusion ``classifier_train.py`` with ``noised=True``: t uniform over the diffusion's
    T steps, x_t = q_sample(x_0, t) with the diffusion's schedule, cross-entropy, AdamW. The trained weights are
    cached by (dataset, dynamics, this section), so every trial and every later study with the same triple reuses
    them. ``misguided_seed`` initialises the untrained "misguided" classifier.
    """

    network: NoisyClassifier = Field(default_factory=NoisyClassifier)
    epochs: int = Field(200, ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(32, ge=1, le=MAX_BATCH)
    lr: float = Field(3e-4, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0)
    seed: int = Field(0, ge=0, le=SEED_MAX)
    misguided_seed: int = Field(0, ge=0, le=SEED_MAX)
    accuracy_buckets: int = Field(
        10, ge=1, le=1000, description="held-out accuracy is reported per this many bands of t"
    )
