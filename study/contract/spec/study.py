"""The top-level study spec: what to train (training axes), how to evaluate (sampling axes), where to log."""

from __future__ import annotations

import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Field, field_validator, model_validator

from study.contract.spec.base import MAX_BATCH, MAX_EPOCHS, MAX_LIST, MAX_SAMPLES, SEED_MAX, Strict
from study.contract.spec.claims import ClaimSpec
from study.contract.spec.datasets import DatasetSpec, DigitsData
from study.contract.spec.dynamics import DynamicsSpec
from study.contract.spec.guidance import ClassifierSpec, GuidanceSpec
from study.contract.spec.networks import NetworkSpec
from study.contract.spec.performance import PerformanceSpec
from study.contract.spec.samplers import SamplerSpec

StudyName = str
TRAINING_SECTIONS = ("dataset", "dynamics", "network", "class_conditional", "training")


def is_training_path(path: str) -> bool:
    """Whether a dotted grid key names a training field (else it names a zipped axis)."""
    return path.split(".")[0] in TRAINING_SECTIONS


class PlateauParameters(Strict):
    """The plateau rule's parameters besides its margin, declared once: ``evaluation.plateau`` (``PlateauSpec``)
    states them, the rule (``study.statistics.plateau.PlateauRule``) is built on them. The defaults are the
    calibrated ones (study/statistics/plateau.py)."""

    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="one-sided confidence of each side of the test")
    tail_share: float = Field(0.2, ge=0.0, le=1.0, description="the tail spans at least this share of the budget")
    min_tail: int = Field(3, ge=3, le=1000, description="... and at least this many evaluations")
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS, description="evaluations at or before this epoch are ignored")
    persistence: int = Field(3, ge=1, le=100, description="the stopper: consecutive plateaued/peaked evaluations")


class PlateauSpec(PlateauParameters):
    """The plateau rule (study/statistics/plateau.py): the margin delta is stated here, before looking, in score
    units (``0.25``) or relative to the curve's latest score (``"2%"``); None takes the extractor's default
    (``InceptionScoreSpec.default_margin``). The other parameters are ``PlateauParameters``."""

    margin: float | str | None = Field(
        None, description="delta: IS units (0.25) or a share of the latest score ('2%'); default per extractor"
    )

    @field_validator("margin")
    @classmethod
    def _margin(cls, v: float | str | None) -> float | str | None:
        if isinstance(v, bool):
            raise ValueError("the margin is a number of score units or a percentage such as '2%'")
        if isinstance(v, str):
            text = v.strip()
            if not text.endswith("%"):
                raise ValueError(f"a relative margin is written as a percentage such as '2%', got {v!r}")
            try:
                pct = float(text[:-1])
            except ValueError:
                raise ValueError(f"a relative margin is written as a percentage such as '2%', got {v!r}") from None
            if not 0 < pct <= 100:
                raise ValueError(f"a relative margin must be in (0%, 100%], got {v!r}")
            return f"{pct:g}%"
        if v is not None and not (0 < v < 1e6):
            raise ValueError(f"the margin must be a positive number of score units, got {v}")
        return v

    def resolved_margin(self) -> tuple[float, bool]:
        """(margin, relative): in score units, or a fraction of the latest score for a percentage. The margin is
        resolved by ``EvaluationSpec`` (the extractor's default when unstated)."""
        m = self.margin
        if m is None:
            raise ValueError("the plateau margin is unresolved: read it from an EvaluationSpec")
        return (float(m[:-1]) / 100, True) if isinstance(m, str) else (float(m), False)


class OnsetParameters(Strict):
    """The memorization-onset rule's parameters, declared once: ``evaluation.onset`` (``OnsetSpec``) states them,
    the rule (``study.statistics.onset.OnsetRule``) is built on them. The defaults are the calibrated ones (the
    rule's docstring gives the rates)."""

    margin: float = Field(0.05, gt=0.0, lt=1.0, description="delta in fraction units (0.05 = 5 points)")
    confidence: float = Field(0.95, gt=0.5, lt=1.0, description="one-sided confidence of each evaluation's test")
    persistence: int = Field(2, ge=1, le=100, description="consecutive evaluations above delta")
    warmup_epochs: int = Field(0, ge=0, le=MAX_EPOCHS, description="evaluations at or before this epoch are ignored")


class OnsetSpec(OnsetParameters):
    """The memorization-onset rule (study/statistics/onset.py) of the stopper and the report: the memorized fraction
    of ``score`` (one of ``inception_score.extra_metrics``) risen above its held-out level by more than ``margin``,
    in fraction units (0.05 = 5 percentage points of the generated images), stated before looking."""

    score: Literal["memorization_feature", "memorization_pixel"] = Field(
        "memorization_feature", description="the memorized fraction the rule reads"
    )


class StopSpec(Strict):
    """Early stopping (opt-in): end a trial as ``converged`` (stopped early; the stop-rule tag says which rule)
    once its evaluation curves plateaued or peaked under ``evaluation.plateau`` at that rule's ``persistence``
    consecutive evaluations (``plateau``), or, with ``memorization``, once any evaluation's memorized fraction
    shows an onset under ``evaluation.onset``."""

    curves: Literal["all", "any"] = Field("all", description="stop when all (or any) evaluation curves plateaued")
    min_epochs: int = Field(0, ge=0, description="never stop before this epoch")
    plateau: bool = Field(True, description="stop when the evaluation curves plateaued (evaluation.plateau)")
    memorization: bool = Field(
        False, description="stop when memorization begins: evaluation.onset says `onset` on any evaluation's curve"
    )


class TrainingSpec(Strict):
    """Training budget and optimiser; identical across a study's variants unless gridded."""

    epochs: int = Field(ge=1, le=MAX_EPOCHS)
    batch_size: int = Field(128, ge=1, le=MAX_BATCH)
    optimizer: Literal["adam", "adamw"] = "adam"
    lr: float = Field(2e-4, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0, le=10.0)
    warmup_steps: int = Field(0, ge=0, le=10**9, description="linear learning-rate warm-up in optimizer steps")
    grad_clip: float | None = Field(1.0, gt=0.0, le=1e6)
    ema_decay: float = Field(0.9999, ge=0.0, lt=1.0)
    ema_warmup: bool = Field(True, description="decay = min(ema_decay, (1+n)/(10+n)) as in score_sde")
    seed: int = Field(0, ge=0, le=SEED_MAX)
    epoch_size: int | None = Field(
        None, ge=1, le=10**9,
        description="training images per epoch, cycled over the training set and reshuffled at each pass (default: "
        "one pass). Set it when the training-set size is a grid axis, so an epoch is the same number of optimizer "
        "steps in every trial: the time scales of generalization and memorization are measured in steps",
    )
    eval_every: int = Field(
        5, ge=1, le=MAX_EPOCHS, description="evaluate every N epochs (and always at the last epoch)"
    )
    checkpoint_every: int = Field(1, ge=1, le=MAX_EPOCHS)
    stop: StopSpec | None = Field(None, description="early stopping on the plateau rule (default: train all epochs)")


class InceptionScoreSpec(Strict):
    """Inception Score through torch-fidelity with a named feature extractor (REFERENCE B.8).

    ``inception-v3-compat`` is the TF 2015-12-05 Inception port (weights
    ``weights-inception-2015-12-05-6726825d.pth``); with 10 splits and ``shuffle: false`` it reproduces the
    original IS code. ``digits-cnn`` is the digits classifier shipped with the package (the same weights on every
    machine); ``digits-cnn-local`` trains one on this machine on the study's split (another metric). FID and KID
    (``extra_metrics``) use the same extractor against the training set.
    """

    extractor: Literal["digits-cnn", "digits-cnn-local", "inception-v3-compat"] = "digits-cnn"
    splits: int = Field(10, ge=1, le=1000)
    shuffle: bool = Field(
        True, description="torch-fidelity shuffles (seed 2020) before splitting; original IS does not"
    )
    weights_path: str | None = Field(
        None,
        description="inception-v3-compat only: a local weights file (default: torch hub's checkpoints folder)",
    )
    extra_metrics: list[Literal["fid", "kid", "memorization_pixel", "memorization_feature", "precision", "recall"]] = (
        Field(
            default_factory=list,
            description="also FID / KID / precision / recall against the training set and the memorized fraction "
            "(pixel and feature space), with the same extractor (trainables/scores.py)",
        )
    )
    reference_samples: int | None = Field(
        None, ge=2, le=MAX_SAMPLES,
        description="training images in the FID/KID reference (default all); features cached on disk",
    )
    kid_subset_size: int = Field(
        1000, ge=2, le=MAX_SAMPLES, description="KID subset size (capped at the sample counts)"
    )
    bootstrap: int = Field(
        1000, ge=0, le=100_000, description="bootstrap replicates over the generated images for IS intervals (0: none)"
    )
    infinity_points: int = Field(15, ge=0, le=100, description="subset sizes of the IS-infinity fit (0: none)")
    keep_logits: bool = Field(True, description="keep per-image logits (float16 npz artifact) of every evaluation")

    # The plateau margin when the spec states none, in IS units of each extractor. digits-cnn: 0.25 is about 5 % of
    # the span from Gaussian noise (IS 1.81) to real 8x8 digits (6.49), the smallest change visible in its sample
    # grids. inception-v3-compat: 0.2 is about 2 % of CIFAR10's real-data IS (11.24), the resolution at which the
    # paper's figures separate configurations.
    DEFAULT_MARGINS: ClassVar[dict[str, float]] = {
        "digits-cnn": 0.25, "digits-cnn-local": 0.25, "inception-v3-compat": 0.2,
    }  # fmt: skip
    # the fewest bootstrap replicates a decision is made with (the stopper and the report use the same draws)
    MIN_DECISION_REPLICATES: ClassVar[int] = 200

    @property
    def default_margin(self) -> float:
        return self.DEFAULT_MARGINS[self.extractor]

    @property
    def decision_replicates(self) -> int:
        """Bootstrap replicates behind the plateau decisions, in the trial and in the report alike."""
        return max(self.bootstrap, self.MIN_DECISION_REPLICATES)

    @model_validator(mode="after")
    def _weights_for_inception_only(self) -> InceptionScoreSpec:
        if self.weights_path is not None and self.extractor != "inception-v3-compat":
            raise ValueError("weights_path is for inception-v3-compat; the digits-cnn weights ship with the package")
        if len(set(self.extra_metrics)) != len(self.extra_metrics):
            raise ValueError("extra_metrics lists a metric twice")
        return self


class EvaluationSpec(Strict):
    """Sampling axes: every (sampler, guidance) pair is run on the EMA weights of the same checkpoint."""

    samplers: list[SamplerSpec] = Field(min_length=1, max_length=MAX_LIST)
    guidance: list[GuidanceSpec] = Field(
        default_factory=lambda: [GuidanceSpec()], min_length=1, max_length=MAX_LIST,
        description="guidance settings crossed with the samplers (none / classifier / misguided, each with a scale)",
    )  # fmt: skip
    num_samples: int = Field(500, ge=2, le=MAX_SAMPLES)
    batch_size: int = Field(500, ge=1, le=MAX_BATCH)
    seed: int = Field(
        1234, ge=0, le=SEED_MAX, description="the same initial noise at every evaluation, for comparable curves"
    )
    inception_score: InceptionScoreSpec = Field(default_factory=InceptionScoreSpec)
    plateau: PlateauSpec = Field(default_factory=PlateauSpec, description="the plateau rule of the stopper and report")
    onset: OnsetSpec = Field(
        default_factory=OnsetSpec, description="the memorization-onset rule of the stopper and report"
    )
    grid_images: int = Field(64, ge=0, le=1024, description="samples shown in the logged grid (0 = none)")

    @property
    def evaluations(self) -> list[tuple[str, SamplerSpec, GuidanceSpec]]:
        """(evaluation id, sampler, guidance) for sampler x guidance, guidance varying fastest."""
        return [(g.eval_id(s.id), s, g) for s in self.samplers for g in self.guidance]

    @model_validator(mode="after")
    def _margin_stated(self) -> EvaluationSpec:
        """The plateau margin is resolved here (the extractor's default when unstated), so the logged config
        carries the delta every verdict was made with."""
        if self.plateau.margin is None:
            plateau = self.plateau.model_copy(update={"margin": self.inception_score.default_margin})
            object.__setattr__(self, "plateau", plateau)
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> EvaluationSpec:
        ids = [s.id for s in self.samplers]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"sampler ids must be unique, {dupes} repeat; give each a distinct `name`")
        gids = [g.eval_id("") for g in self.guidance]
        if len(set(gids)) != len(gids):
            raise ValueError("evaluation.guidance lists the same (kind, scale) twice")
        if self.num_samples < self.inception_score.splits:
            raise ValueError("num_samples must be at least inception_score.splits")
        return self


class ResourcesSpec(Strict):
    """Resources per trial; fractions of a GPU let several trials share one."""

    cpus: float = Field(1.0, gt=0.0, le=1024)
    gpus: float = Field(0.0, ge=0.0, le=64)
    max_concurrent_trials: int | None = Field(None, ge=1, le=10_000)
    max_failures: int = Field(1, ge=0, le=100, description="retries of a crashed trial from its last checkpoint")


class TrackingSpec(Strict):
    """Overrides of mlflow.yaml for this study."""

    tracking_uri: str | None = None
    experiment: str | None = Field(None, description="defaults to the study name")
    log_images: bool = True


class StudySpec(Strict):
    """One comparison: the cross product of ``grid`` values over the training sections, one trial each."""

    # The study directory is <storage>/<name> (and `run --fresh` deletes it): "." or ".." would name the storage
    # itself or its parent, so a name starts with a letter or digit.
    name: StudyName = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=80)
    description: str = ""
    dataset: DatasetSpec = Field(default_factory=DigitsData)
    dynamics: DynamicsSpec
    network: NetworkSpec
    class_conditional: bool = Field(False, description="train with a class-label embedding; sample uniform labels")
    training: TrainingSpec
    evaluation: EvaluationSpec
    classifier: ClassifierSpec | None = Field(
        None, description="noisy classifier for evaluation.guidance (required when any guidance is not none)"
    )
    resources: ResourcesSpec = Field(default_factory=ResourcesSpec)
    performance: PerformanceSpec = Field(default_factory=PerformanceSpec, description="fast paths (default: exact)")
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    claims: list[ClaimSpec] = Field(
        default_factory=list,
        max_length=100,
        description="expected findings the report checks (study/contract/spec/claims.py)",
    )
    grid: dict[str, list[Any]] = Field(
        default_factory=dict,
        description="dotted path of a training field -> list of values, or an axis name -> list of "
        "{dotted path: value} mappings (zipped); one trial per combination",
    )

    @field_validator("grid")
    @classmethod
    def _grid_paths(cls, grid: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in grid.items():
            if not values:
                raise ValueError(f"grid key {key!r} has no values")
            if is_training_path(key):
                continue
            # A named (zipped) axis: each value sets several training fields together, e.g. a dynamics with its
            # network (VP SDE + DDPM++, VE SDE + NCSN++), instead of crossing them.
            for value in values:
                if not isinstance(value, dict) or not value or not all(is_training_path(p) for p in value):
                    raise ValueError(
                        f"grid key {key!r} must start with one of {list(TRAINING_SECTIONS)} (a field to vary), or "
                        "name a zipped axis whose values are mappings of such fields, e.g. "
                        "{dynamics: {kind: ve_sde}, network: {kind: ncsnpp}}; samplers are sampling axes and go in "
                        "evaluation.samplers"
                    )
        return grid

    @model_validator(mode="after")
    def _consistent(self) -> StudySpec:
        # Which samplers run on which dynamics is the trial library's knowledge: the driver checks it when it plans
        # the study (study/plan.py, trainables/compat.py), not the spec's shape.
        if self.training.stop is not None and not self.evaluation.inception_score.keep_logits:
            raise ValueError(
                "training.stop decides from the kept per-image logits (a resumed trial re-reads them): "
                "set evaluation.inception_score.keep_logits to true"
            )
        stop, onset = self.training.stop, self.evaluation.onset
        if stop is not None and not (stop.plateau or stop.memorization):
            raise ValueError("training.stop stops on nothing: set plateau or memorization to true")
        if stop is not None and stop.memorization and onset.score not in self.evaluation.inception_score.extra_metrics:
            raise ValueError(
                f"training.stop.memorization reads {onset.score} (evaluation.onset.score): add it to "
                "evaluation.inception_score.extra_metrics"
            )
        return self


# Samplers added at run time (a plugin, a test), by kind; ``trainables.samplers.register_sampler`` adds one with its
# declaration. The built-in ones are ``SamplerSpec``'s union.
_BUILT_IN_SAMPLERS: tuple[type[Strict], ...] = typing.get_args(typing.get_args(SamplerSpec)[0])
_ADDED_SAMPLERS: dict[str, type[Strict]] = {}


def add_sampler_spec(model: type[Strict]) -> None:
    """``model`` (a ``Strict`` model with a ``kind`` literal and an ``id``) joins ``evaluation.samplers``' union until
    :func:`remove_sampler_spec` takes it out. Pydantic fixes a union when the model is built, so both rebuild it."""
    kind = model.model_fields["kind"].default
    if kind in _ADDED_SAMPLERS or kind in {m.model_fields["kind"].default for m in _BUILT_IN_SAMPLERS}:
        raise ValueError(f"sampler kind {kind!r} is already a sampler spec")
    _ADDED_SAMPLERS[kind] = model
    _rebuild_samplers()


def remove_sampler_spec(kind: str) -> None:
    """Take a sampler added with :func:`add_sampler_spec` out of the union again."""
    if _ADDED_SAMPLERS.pop(kind, None) is None:
        raise ValueError(f"sampler kind {kind!r} was not added at run time")
    _rebuild_samplers()


def _rebuild_samplers() -> None:
    members = (*_BUILT_IN_SAMPLERS, *_ADDED_SAMPLERS.values())
    union = Annotated[Union[members], Field(discriminator="kind")]  # noqa: UP007 - a union built from a tuple
    EvaluationSpec.model_fields["samplers"].annotation = list[union]
    EvaluationSpec.model_rebuild(force=True)
    StudySpec.model_rebuild(force=True)
