"""The top-level study spec: what to train (training axes), how to evaluate (sampling axes), where to log."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from study.spec.base import Strict
from study.spec.compat import compatibility_problems
from study.spec.datasets import DatasetSpec, DigitsData
from study.spec.dynamics import DynamicsSpec
from study.spec.networks import NetworkSpec
from study.spec.samplers import SamplerSpec

StudyName = str
TRAINING_SECTIONS = ("dataset", "dynamics", "network", "class_conditional", "training")


class TrainingSpec(Strict):
    """Training budget and optimiser; identical across a study's variants unless gridded."""

    epochs: int = Field(ge=1)
    batch_size: int = Field(128, ge=1)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up in optimizer steps")
    grad_clip: float | None = Field(1.0, gt=0.0)
    ema_decay: float = Field(0.9999, ge=0.0, lt=1.0)
    ema_warmup: bool = Field(True, description="decay = min(ema_decay, (1+n)/(10+n)) as in score_sde")
    seed: int = 0
    eval_every: int = Field(5, ge=1, description="evaluate every N epochs (and always at the last epoch)")
    checkpoint_every: int = Field(1, ge=1)


class InceptionScoreSpec(Strict):
    """Inception Score through torch-fidelity with a named feature extractor (REFERENCE B.8)."""

    extractor: Literal["digits-cnn"] = "digits-cnn"
    splits: int = Field(10, ge=1)
    shuffle: bool = Field(
        True, description="torch-fidelity shuffles (seed 2020) before splitting; original IS does not"
    )


class EvaluationSpec(Strict):
    """Sampling axes: every sampler is run on the EMA weights of the same checkpoint."""

    samplers: list[SamplerSpec] = Field(min_length=1)
    num_samples: int = Field(500, ge=2)
    batch_size: int = Field(500, ge=1)
    seed: int = Field(1234, description="the same initial noise at every evaluation, for comparable curves")
    inception_score: InceptionScoreSpec = Field(default_factory=InceptionScoreSpec)
    grid_images: int = Field(64, ge=0, description="samples shown in the logged grid (0 = none)")

    @model_validator(mode="after")
    def _unique_ids(self) -> EvaluationSpec:
        ids = [s.id for s in self.samplers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"sampler ids must be unique, {dupes} repeat; give each a distinct `name`")
        if self.num_samples < self.inception_score.splits:
            raise ValueError("num_samples must be at least inception_score.splits")
        return self


class ResourcesSpec(Strict):
    """Resources per trial; fractions of a GPU let several trials share one."""

    cpus: float = Field(1.0, gt=0.0)
    gpus: float = Field(0.0, ge=0.0)
    max_concurrent_trials: int | None = Field(None, ge=1)
    max_failures: int = Field(1, ge=0, description="retries of a crashed trial from its last checkpoint")


class TrackingSpec(Strict):
    """Overrides of mlflow.yaml for this study."""

    tracking_uri: str | None = None
    experiment: str | None = Field(None, description="defaults to the study name")
    log_images: bool = True


class StudySpec(Strict):
    """One comparison: the cross product of ``grid`` values over the training sections, one trial each."""

    name: StudyName = Field(pattern=r"^[A-Za-z0-9_.-]+$", max_length=80)
    description: str = ""
    dataset: DatasetSpec = Field(default_factory=DigitsData)
    dynamics: DynamicsSpec
    network: NetworkSpec
    class_conditional: bool = Field(False, description="train with a class-label embedding; sample uniform labels")
    training: TrainingSpec
    evaluation: EvaluationSpec
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted path of a training field -> list of values; one trial per combination",
    )

    @field_validator("grid")
    @classmethod
    def _grid_paths(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for path, values in grid.items():
            if path.split(".")[0] not in TRAINING_SECTIONS:
                raise ValueError(
                    f"grid key {path!r} must start with one of {list(TRAINING_SECTIONS)}: only training "
                    "fields are gridded; samplers are sampling axes and go in evaluation.samplers"
                )
            if not values:
                raise ValueError(f"grid key {path!r} has no values")
        return grid

    @model_validator(mode="after")
    def _compatible(self) -> StudySpec:
        problems = compatibility_problems(self)
        if problems:
            raise ValueError("; ".join(problems))
        return self
