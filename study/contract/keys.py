"""Every MLflow metric key, tag and artifact path the harness writes, formatted and parsed in one place.

Score keys name what a number is (DESIGN: comparability): ``<score>/<extractor>/n<N>/<evaluation>/<stat>``,
e.g. ``is/digits-cnn/n400/ddim-20/mean``. Evaluation ids are ``<sampler id>[:<guidance>-<scale>]``. Stats of a
score (``IS_STATS``): ``mean`` and ``std`` (torch-fidelity's mean and split std, as in the literature), ``se``,
``ci_low``/``ci_high`` (bootstrap over the generated images, study/statistics/stats.py: they cover IS at this n, not
the generator's IS at any n) and ``inf`` (IS-infinity, Chong & Forsyth 2020) with ``inf_ci_low``/``inf_ci_high``.
FID is ``value``; KID ``mean``/``std`` (torch-fidelity's subset statistics). The memorization scores
(trainables/scores.py) are fractions: ``memorization_pixel`` / ``memorization_feature`` (``mean``, ``se``,
``ci_low``/``ci_high``, and ``held_out``, the held-out images' fraction, with ``held_out_se``), as are
``precision`` / ``recall`` (``mean``, ``se``, ``ci_low``/``ci_high``). Per-image arrays a score keeps sit in the
evaluation's npz under ``score_array(score, name)`` (``memorization_pixel.nn1``); images a score returns
are logged at each evaluation under ``score_image_key(score, image, evaluation)``
(``memorization_pixel.copies/ddim-20``: the most-copied generated images beside their nearest training images).

The trial status vocabulary (``Status``) is shared by the trial, the runner and the report; the rules' verdict
vocabularies (``PLATEAU_STATES``, ``ONSET_STATES``) by the statistics, the trial that logs them and the report.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, get_args

# ------------------------------------------------------------------------------------------------ statuses

Status = Literal["running", "finished", "converged", "diverged", "errored"]
STATUSES: tuple[str, ...] = get_args(Status)
# A trial that ended on its own (not errored, not interrupted): Tune reports it TERMINATED.
ENDED: tuple[str, ...] = ("finished", "converged", "diverged")
MLFLOW_RUN_STATUS: dict[str, str] = {
    "running": "RUNNING", "finished": "FINISHED", "converged": "FINISHED", "diverged": "FAILED", "errored": "FAILED",
}  # fmt: skip

# The decision rules' verdicts (study/statistics/plateau.py, study/statistics/onset.py): a trial logs each as its
# index here (``convergence_key(ev, "state")``, ``onset_key(ev, "state")``), the report reads them back by name.
PlateauState = Literal["rising", "plateaued", "peaked", "undetermined"]
PLATEAU_STATES: tuple[PlateauState, ...] = get_args(PlateauState)
OnsetState = Literal["onset", "no onset", "undetermined"]
ONSET_STATES: tuple[OnsetState, ...] = get_args(OnsetState)

# ---------------------------------------------------------------------------------------------------- tags

TAG_STUDY = "study.name"
TAG_ROLE = "study.role"  # one of ROLES
TAG_TRIAL = "study.trial"
TAG_AXES = "study.axes"  # JSON list of axis names, in spec order
TAG_STATUS = "study.status"  # one of STATUSES
TAG_INSTANCE = "study.instance"
TAG_DESCRIPTION = "study.description"
TAG_PARENT = "mlflow.parentRunId"
TAG_STOP_EPOCH = "study.stop.epoch"  # epoch at which a stopping rule ended the trial
TAG_STOP_RULE = "study.stop.rule"
TAG_STOP_REASON = "study.stop.reason"
# how many times a trial's process started on its run: 1 when never interrupted; each restore from a checkpoint
# (a killed driver, a crashed or killed trial process retried by Ray Tune under resources.max_failures) adds one
TAG_STARTS = "study.starts"
TAG_DEVICE = "study.device"  # what the trial ran on (GPU name, or CPU model and threads): compute tables name it
TAG_NODE = "study.node"  # Ray node id the trial (last) ran on, "local" outside Ray: shows where trials were placed
AXIS_PREFIX = "axis."
# MLflow's own experiment tags: the UI opens a saved view ``<prefix><view id>`` from a link whose query names the id
# (``viewStateShareKey``), and draws the primary metric's chart first
TAG_SAVED_VIEW_PREFIX = "mlflow.sharedViewState."
TAG_PRIMARY_METRIC = "mlflow.experiment.primaryMetric.name"
VIEW_LINK_PARAM = "viewStateShareKey"


# What a run is, by its ``TAG_ROLE`` value: the parent run of one study invocation, one trial's child run, a guidance
# classifier's run (trainables/guidance_classifier.py), a sample-size run (study/sample_size.py)
Role = Literal["parent", "trial", "classifier", "sample-size"]
ROLES: tuple[str, ...] = get_args(Role)
ROLE_PARENT, ROLE_TRIAL, ROLE_CLASSIFIER, ROLE_SAMPLE_SIZE = ROLES


def parse_role(value: object) -> Role | None:
    """The role a ``TAG_ROLE`` value names; None for a run without one (or one this version does not know)."""
    return value if value in ROLES else None  # type: ignore[return-value]  # checked against Role's values


# A trial's facts, as tags: its network's parameter count, and for guided evaluations the sha256 of each guidance
# network's weights (``classifier``, ``misguided``) and the key of the noisy classifier it loaded
TAG_NETWORK_PARAMETERS = "network.parameters"
TAG_GUIDANCE_CLASSIFIER_KEY = "guidance.classifier.key"
# A guidance classifier's run: its cache key, whether the weights came from the cache, and where they are
TAG_CLASSIFIER_KEY, TAG_CLASSIFIER_CACHED, TAG_CLASSIFIER_PATH = (
    "classifier.key", "classifier.cached", "classifier.path",
)  # fmt: skip


def guidance_weights_tag(kind: str) -> str:
    """The tag holding the sha256 of guidance network ``kind``'s weights (``guidance.misguided.weights_sha256``)."""
    return f"guidance.{kind}.weights_sha256"


def parse_guidance_weights_tag(tag: str) -> str | None:
    """The guidance kind of a :func:`guidance_weights_tag`; None for any other tag."""
    m = re.fullmatch(r"guidance\.([a-z_]+)\.weights_sha256", tag)
    return m[1] if m else None


# The parent run's params: the version of each package the study ran with (``version.torch``, ``version.python``)
VERSION_PREFIX = "version."


def version_param(package: str) -> str:
    return VERSION_PREFIX + package


def parse_version_param(key: str) -> str | None:
    """The package a :func:`version_param` names; None for any other param."""
    return key[len(VERSION_PREFIX) :] if key.startswith(VERSION_PREFIX) and len(key) > len(VERSION_PREFIX) else None


def chart_view_id(study: str) -> str:
    """The id of a study's IS-vs-epoch view: one per study, rewritten by each run, so a link printed once keeps
    opening the latest instance's trials (study names are ``[A-Za-z0-9_.-]``: safe in a tag key and a URL)."""
    return f"{study}.is-vs-epoch"


def axis_tag(axis: str) -> str:
    return AXIS_PREFIX + axis


# ------------------------------------------------------------------------------------------------ metrics

TRAIN_LOSS, TRAIN_SECONDS, TRAIN_EPOCH_SECONDS, TRAIN_DIVERGED = (
    "train/loss", "train/seconds", "train/epoch_seconds", "train/diverged",
)  # fmt: skip

NETWORK_PARAMETERS = "network/parameters"
EXTRACTOR_ACCURACY = "extractor/held_out_accuracy"  # parent run: the IS extractor's held-out accuracy
CLASSIFIER_ACCURACY, CLASSIFIER_LOSS, CLASSIFIER_SECONDS = (
    "classifier/accuracy", "classifier/loss", "classifier/train_seconds",
)  # fmt: skip


def dynamics_key(name: str) -> str:
    """A fact of the trial's dynamics (alpha-bar end points, sigma range, ...), logged at step 0."""
    return f"dynamics/{name}"


# The per-epoch result a trial reports to Ray Tune (written by trainables/trainable.py, read by the progress line
# and the runner), not MLflow keys. ``status`` (one of STATUSES) and ``stop_reason`` come only when the trial ends.
REPORT_EPOCH, REPORT_LOSS, REPORT_TRAIN_SECONDS = "epoch", "loss", "train_seconds"
REPORT_STATUS, REPORT_STOP_REASON = "status", "stop_reason"
ReportKind = Literal["is", "is_ci_low", "is_ci_high", "state"]
REPORT_KINDS: tuple[str, ...] = get_args(ReportKind)


def report_key(kind: ReportKind, evaluation: str) -> str:
    """A per-evaluation entry of the Tune result: the IS mean, its interval's ends, the plateau state."""
    return f"{kind}/{evaluation}"


def parse_report_key(key: object) -> tuple[ReportKind, str] | None:
    """(kind, evaluation) of a :func:`report_key`; None for any other key of the result (Ray adds its own)."""
    if not isinstance(key, str):
        return None
    kind, sep, evaluation = key.partition("/")
    if not (sep and evaluation) or kind not in REPORT_KINDS:
        return None
    return kind, evaluation  # type: ignore[return-value]  # kind checked against ReportKind's values above


SCORES = ("is", "fid", "kid", "memorization_pixel", "memorization_feature", "precision", "recall")
FRACTION_STATS = ("mean", "se", "ci_low", "ci_high", "held_out", "held_out_se")
IS_STATS = ("mean", "std", "se", "ci_low", "ci_high", "inf", "inf_ci_low", "inf_ci_high")
_ID = r"[A-Za-z0-9_.:+-]+"
_SCORE_RE = re.compile(
    rf"^(?P<score>[a-z_]+)/(?P<extractor>{_ID})/n(?P<n>\d+)/(?P<evaluation>{_ID})(?:/(?P<stat>[a-z_]+))?$"
)
_SAMPLE_RE = re.compile(rf"^sample/(?P<evaluation>{_ID})/(?P<stat>seconds|nfe)$")
_GUIDANCE_RE = re.compile(rf"^guidance/(?P<evaluation>{_ID})/(?P<stat>target_accuracy|time_overhead)$")
_REFERENCE_RE = re.compile(rf"^reference/(?P<score>[a-z_]+)/(?P<extractor>{_ID})/n(?P<n>\d+)/(?P<source>[a-z]+)/(?P<stat>[a-z_]+)$")  # noqa: E501


@dataclass(frozen=True)
class ScoreKey:
    """``<score>/<extractor>/n<N>/<evaluation>/<stat>``: one statistic of one score of one evaluation."""

    score: str
    extractor: str
    n: int
    evaluation: str
    stat: str

    def __str__(self) -> str:
        return f"{self.score}/{self.extractor}/n{self.n}/{self.evaluation}/{self.stat}"

    @property
    def curve(self) -> tuple[str, str, int, str]:
        """What identifies a curve: comparable values share (score, extractor, n, evaluation)."""
        return self.score, self.extractor, self.n, self.evaluation

    def with_stat(self, stat: str) -> ScoreKey:
        return ScoreKey(self.score, self.extractor, self.n, self.evaluation, stat)


def score_key(score: str, extractor: str, n: int, evaluation: str, stat: str) -> str:
    return str(ScoreKey(score, extractor, n, evaluation, stat))


def parse_score_key(key: str) -> ScoreKey | None:
    """The parts of a score key; ``None`` for any other key. FID logged before it had a stat reads as ``value``."""
    m = _SCORE_RE.match(key)
    if m is None or m["score"] in ("reference", "sample", "guidance", "train"):
        return None
    stat = m["stat"]
    if stat is None:  # the only legacy form: fid/<extractor>/n<N>/<evaluation>
        if m["score"] != "fid":
            return None
        stat = "value"
    return ScoreKey(m["score"], m["extractor"], int(m["n"]), m["evaluation"], stat)


def sample_key(evaluation: str, stat: Literal["seconds", "nfe"]) -> str:
    return f"sample/{evaluation}/{stat}"


def parse_sample_key(key: str) -> tuple[str, str] | None:
    """(evaluation, stat) of ``sample/<evaluation>/<seconds|nfe>``."""
    m = _SAMPLE_RE.match(key)
    return (m["evaluation"], m["stat"]) if m else None


def guidance_key(evaluation: str, stat: Literal["target_accuracy", "time_overhead"]) -> str:
    return f"guidance/{evaluation}/{stat}"


def parse_guidance_key(key: str) -> tuple[str, str] | None:
    m = _GUIDANCE_RE.match(key)
    return (m["evaluation"], m["stat"]) if m else None


def reference_key(score: str, extractor: str, n: int, source: str, stat: str) -> str:
    """A score of real data or noise at the study's sample count, logged on the parent run."""
    return f"reference/{score}/{extractor}/n{n}/{source}/{stat}"


def parse_reference_key(key: str) -> tuple[str, str, int, str, str] | None:
    """(score, extractor, n, source, stat) of a reference key."""
    m = _REFERENCE_RE.match(key)
    return (m["score"], m["extractor"], int(m["n"]), m["source"], m["stat"]) if m else None


def convergence_key(evaluation: str, stat: Literal["state", "plateau_epoch"]) -> str:
    """The plateau rule's verdict on one evaluation curve at each evaluated epoch (state: an index into
    ``PLATEAU_STATES``)."""
    return f"convergence/{evaluation}/{stat}"


def onset_key(evaluation: str, stat: Literal["state", "epoch", "rise"]) -> str:
    """The memorization-onset rule's verdict (study/statistics/onset.py) on one evaluation's memorized-fraction
    curve at each evaluated epoch (state: an index into ``ONSET_STATES``; epoch: the onset epoch, NaN before)."""
    return f"onset/{evaluation}/{stat}"


def sample_size_key(extractor: str, evaluation: str, stat: str) -> str:
    """The sample-size study (``study sample-size``): ``sample_size/<extractor>/<evaluation>/<stat>``, step = N
    (``is_inf`` at step 0)."""
    return f"sample_size/{extractor}/{evaluation}/{stat}"


# ---------------------------------------------------------------------------------------------- artifacts


def image_key(evaluation: str) -> str:
    """MLflow image keys reject ':' (guided ids): ``samples/<sampler>/<guidance>``."""
    return "samples/" + evaluation.replace(":", "/")


def score_image_key(score: str, image: str, evaluation: str) -> str:
    """An image a score returns at each evaluation (trainables/scores.py ``ScoreImage``), logged beside the sample
    grid: ``<score>.<image>/<sampler>[/<guidance>]`` (``memorization_pixel.copies/ddim-20``; ':' as in
    :func:`image_key`)."""
    return f"{score_array(score, image)}/" + evaluation.replace(":", "/")


_SCORE_IMAGE_RE = re.compile(r"^(?P<score>[a-z_]+)\.(?P<image>[a-z_]+)/(?P<evaluation>.+)$")


def parse_score_image_key(key: str) -> tuple[str, str, str] | None:
    """(score, image, evaluation) of a :func:`score_image_key`; None for any other image key (sample grids)."""
    m = _SCORE_IMAGE_RE.match(key)
    if m is None:
        return None
    sampler, _, guidance = m["evaluation"].partition("/")
    return m["score"], m["image"], f"{sampler}:{guidance}" if guidance else sampler


_IMAGE_FILE = re.compile(r"^(?P<key>.+)\+step\+(?P<step>\d+)\+timestamp\+\d+\+[0-9a-f-]+\.png$")


def image_file(key: str, step: int, timestamp: int, uid: str) -> str:
    """The name MLflow's ``log_image`` gives a step-indexed image (in-memory backends write the same)."""
    return f"{key.replace('/', '~')}+step+{step}+timestamp+{timestamp}+{uid}.png"


def parse_image_file(name: str) -> tuple[str, int] | None:
    """(image key, step) of a file MLflow's ``log_image`` wrote under ``images/`` (it writes '/' in keys as '~');
    its compressed thumbnails are not matched."""
    m = _IMAGE_FILE.match(name)
    return (m["key"].replace("~", "/"), int(m["step"])) if m else None


def evaluation_dir(evaluation: str) -> str:
    """Artifact folder of one evaluation's per-image outputs (':' is not portable in paths)."""
    return "evaluations/" + evaluation.replace(":", "/")


def targets_artifact(evaluation: str) -> str:
    """The guidance target labels of a guided evaluation (JSON)."""
    return f"guidance/{evaluation}/targets.json"


def score_array(score: str, name: str) -> str:
    """The name of a score's per-image array in an evaluation's npz: ``<score>.<name>`` (``memorization_pixel.nn1``)."""
    return f"{score}.{name}"


def parse_score_array(key: str) -> tuple[str, str] | None:
    """(score, name) of a ``score_array`` name; None for the npz's other arrays (``logits``, ``labels``)."""
    score, dot, name = key.partition(".")
    return (score, name) if dot and re.fullmatch(r"[a-z_]+", score) and name else None


def evaluation_file(epoch: int) -> str:
    return f"epoch-{epoch:05d}.npz"


_EPOCH_FILE = re.compile(r"^epoch-(\d+)\.npz$")


def parse_evaluation_file(name: str) -> int | None:
    m = _EPOCH_FILE.match(name)
    return int(m[1]) if m else None
