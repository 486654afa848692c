"""Read one study back from MLflow into tidy pandas tables.

Contract (written by the trials, see DESIGN.md "Tracking, concretely"):

* experiment name = study name; parent runs carry ``study.role=parent``, trial runs
  ``study.role=trial``, ``study.trial=<name>``, ``study.axes=<JSON list>``, ``axis.<name>=<label>``
  and ``study.status``;
* trial metrics use ``step = epoch``: ``train/loss``, ``train/seconds``, ``train/epoch_seconds``,
  ``<score>/<extractor>/n<N>/<evaluation>/<stat>`` (parsed by study/contract/keys.py: every score reaches the report),
  ``sample/<evaluation>/(seconds|nfe)``. Other keys are ignored.
* per-image IS logits of every evaluation: artifacts ``evaluations/<evaluation>/epoch-*.npz`` (``logits``).

Full histories are read with ``Tracker.history`` (never only the last value). When a
step was logged several times in one run (a trial restored from an older checkpoint re-logs epochs),
the value with the latest timestamp wins.

Several runs with the same ``study.trial`` tag (a trial that was restarted as a new run) are
**merged**: runs are ordered by start time and the newest run's history is kept in full; an older
run contributes only the epochs *before* the first epoch logged by any newer run (the newer run was
restored from a checkpoint at that point, so the older run's later epochs are a discarded future).
The trial's ``status`` and axis labels come from its newest run; each row keeps the ``run_id`` it
came from.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, TypeAdapter, ValidationError

from study.contract import keys
from study.contract.keys import AXIS_PREFIX, TAG_AXES, TAG_ROLE, TAG_STATUS, TAG_TRIAL
from study.contract.keys import TAG_STUDY as TAG_NAME
from study.contract.runlog import load_run_arrays, unflatten
from study.contract.spec.study import StudySpec
from study.contract.store import connect
from study.contract.tracking import RunRecord, Tracker

__all__ = ["StudyRuns", "load_study", "logged_spec", "SCORE_COLUMNS", "LOSS_COLUMNS", "TRIAL_COLUMNS", "METRIC_COLUMNS"]

log = logging.getLogger(__name__)

TRAIN_KEYS = {keys.TRAIN_LOSS: "loss", keys.TRAIN_SECONDS: "train_seconds", keys.TRAIN_EPOCH_SECONDS: "epoch_seconds"}
IS_STAT_COLUMNS = {stat: f"is_{stat}" for stat in keys.IS_STATS}

# Fixed columns; the axis columns go after ``status`` (scores, trials) or ``trial`` (losses).
SCORE_COLUMNS = [
    "run_id", "trial", "status", "evaluation", "extractor", "n_samples", "epoch",
    *IS_STAT_COLUMNS.values(), "sampling_seconds", "nfe", "train_seconds",
]
LOSS_COLUMNS = ["trial", "epoch", "loss", "train_seconds", "epoch_seconds"]
TRIAL_COLUMNS = ["trial", "run_id", "status", "start_time", "n_runs", "stop_epoch", "stop_rule", "stop_reason",
                 "device", "starts"]
METRIC_COLUMNS = ["trial", "score", "extractor", "n_samples", "evaluation", "stat", "epoch", "value"]


@dataclass(frozen=True)
class StudyRuns:
    """One study read back from MLflow.

    * ``scores``: one row per (trial, evaluation, extractor, n_samples, epoch) with columns
      ``run_id, trial, status, <axes...>, evaluation, extractor, n_samples, epoch, is_mean, is_std,
      sampling_seconds, nfe, train_seconds``; sorted, epochs ascending.
    * ``losses``: ``trial, <axes...>, epoch, loss, train_seconds, epoch_seconds``.
    * ``trials``: one row per trial (also those without any metric yet):
      ``trial, run_id (newest run), status, <axes...>, start_time (ms), n_runs``.
    * ``axes``: the axis column names in spec order; ``parent_run_id``: the latest started parent run
      (``None`` if there is none); ``description``: the parent's ``study.description`` tag, if any.
    * ``metrics``: every score statistic (IS, FID, KID, ...), long: ``trial, score, extractor, n_samples,
      evaluation, stat, epoch, value``.
    * ``specs``: each trial's spec, typed (``StudySpec``), rebuilt from the resolved config it logged
      (``logged_spec``; None when it logged none); ``logits``: per-image IS logits by (trial, evaluation) and
      epoch, where the trial kept them.
    """

    study_name: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str | None
    axes: list[str]
    scores: pd.DataFrame
    losses: pd.DataFrame
    trials: pd.DataFrame
    description: str | None = None
    metrics: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=METRIC_COLUMNS))
    specs: dict[str, StudySpec | None] = field(default_factory=dict)
    references: dict[tuple[str, int], dict[str, float]] = field(default_factory=dict)  # (extractor, n) -> real/noise
    sample_size_runs: list[str] = field(default_factory=list)  # runs of ``study sample-size``
    logits: dict[tuple[str, str], dict[int, np.ndarray]] = field(default_factory=dict)
    tracker: Tracker | None = field(default=None, compare=False, repr=False)  # where images are read from


def logged_spec(params: dict[str, str], tags: dict[str, str]) -> StudySpec | None:
    """The typed spec a trial ran with, from the resolved config it logged (``TrialRun.open``: its params, and tags
    for values too long for a param). Validated whole; where that fails (a run logged under an older spec, a
    record written by hand), each section and value on its own (``_lenient``): what validates is the logged value,
    the rest the model's default, a required field that did not validate is absent. None when nothing was logged."""
    config = unflatten(params, tags, set(StudySpec.model_fields), verbatim=("grid",))
    if not config:
        return None
    try:
        return StudySpec.model_validate(config)
    except ValidationError as e:
        log.info("a trial's logged config is not a valid spec today (%d problem(s)); read field by field",
                 e.error_count())  # fmt: skip
        return _lenient(StudySpec, config)


def _lenient(model: type[BaseModel], data: dict[str, Any]) -> BaseModel:
    """``data`` as ``model``: validated whole, else field by field (a nested model recursively, a value against
    its annotation and constraints); an unknown or invalid value is left out (the default stands)."""
    try:
        return model.model_validate(data)
    except ValidationError:
        pass
    values: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        if name not in data:
            continue
        value, sub = data[name], _model_of(info.annotation)
        if sub is not None and isinstance(value, dict):
            values[name] = _lenient(sub, value)
            continue
        annotation = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        try:
            values[name] = TypeAdapter(annotation).validate_python(value)
        except ValidationError:
            log.info("logged %s.%s=%r is not valid today; its default stands", model.__name__, name, value)
    return model.model_construct(**values)


def _model_of(annotation: Any) -> type[BaseModel] | None:
    """The model a field holds (``X`` or ``X | None``), else None."""
    args = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    found = [a for a in (args or (annotation,)) if isinstance(a, type) and issubclass(a, BaseModel)]
    return found[0] if len(found) == 1 and all(a in (found[0], type(None)) for a in (args or (annotation,))) else None


def _history(client: Tracker, run_id: str, key: str) -> dict[int, float]:
    """Full history of one metric as {epoch: value}; for a re-logged step the latest timestamp wins."""
    out: dict[int, tuple[int, float]] = {}
    for m in client.history(run_id, key):
        step = int(m.step)
        if step not in out or m.timestamp >= out[step][0]:
            out[step] = (m.timestamp, float(m.value))
    return {s: v for s, (_, v) in out.items()}


def _axes_of(run: RunRecord) -> list[str]:
    raw = run.tags.get(TAG_AXES)
    if raw:
        try:
            axes = json.loads(raw)
            if isinstance(axes, list) and all(isinstance(a, str) for a in axes):
                return axes
        except json.JSONDecodeError:
            pass
        log.warning("run %s: cannot parse %s=%r; using its axis.* tags", run.run_id, TAG_AXES, raw)
    return sorted(k[len(AXIS_PREFIX):] for k in run.tags if k.startswith(AXIS_PREFIX))


def _union_ordered(lists: Iterable[list[str]]) -> list[str]:
    seen: dict[str, None] = {}
    for lst in lists:
        for a in lst:
            seen.setdefault(a, None)
    return list(seen)


def _run_rows(client: Tracker, run: RunRecord) -> tuple[list[dict], list[dict], list[dict]]:
    """Score rows (IS, wide), loss rows and generic metric rows (every score, long) of one trial run."""
    run_id = run.run_id
    hist = {k: _history(client, run_id, k) for k in run.metrics if k in TRAIN_KEYS}
    train_seconds = hist.get(keys.TRAIN_SECONDS, {})
    loss_epochs = sorted(set().union(*hist.values())) if hist else []
    losses = [
        {"run_id": run_id, "epoch": e, **{col: hist.get(k, {}).get(e, math.nan) for k, col in TRAIN_KEYS.items()}}
        for e in loss_epochs
    ]

    sample: dict[tuple[str, str], dict[int, float]] = {}
    series: dict[tuple[str, str, int, str], dict[str, dict[int, float]]] = {}
    for k in run.metrics:
        if (sk := keys.parse_score_key(k)) is not None:
            series.setdefault(sk.curve, {})[sk.stat] = _history(client, run_id, k)
        elif (sm := keys.parse_sample_key(k)) is not None:
            sample[sm] = _history(client, run_id, k)
        elif k not in TRAIN_KEYS:
            log.debug("run %s: ignoring metric %s", run_id, k)

    scores, generic = [], []
    for (score, extractor, n, evaluation), stats in series.items():
        generic += [
            {"run_id": run_id, "score": score, "extractor": extractor, "n_samples": n, "evaluation": evaluation,
             "stat": stat, "epoch": e, "value": v}
            for stat, h in stats.items() for e, v in h.items()
        ]  # fmt: skip
        if score != "is":
            continue
        secs, nfe = sample.get((evaluation, "seconds"), {}), sample.get((evaluation, "nfe"), {})
        for e in sorted(stats.get("mean", {})):
            scores.append({
                "run_id": run_id, "evaluation": evaluation, "extractor": extractor, "n_samples": n, "epoch": e,
                **{col: stats.get(stat, {}).get(e, math.nan) for stat, col in IS_STAT_COLUMNS.items()},
                "sampling_seconds": secs.get(e, math.nan), "nfe": nfe.get(e, math.nan),
                "train_seconds": train_seconds.get(e, math.nan),
            })  # fmt: skip
    return scores, losses, generic


def _run_logits(client: Tracker, run: RunRecord, evaluations: set[str]) -> dict[str, dict[int, np.ndarray]]:
    """{evaluation: {epoch: logits}} from the run's ``evaluations/<id>/epoch-*.npz`` artifacts."""
    out: dict[str, dict[int, np.ndarray]] = {}
    for ev in sorted(evaluations):
        try:
            files = load_run_arrays(client, run.run_id, keys.evaluation_dir(ev))
        except Exception as e:  # noqa: BLE001 - an unreadable artifact store must not hide the metrics
            log.warning("run %s: cannot read the logits of %s (%s); using summary statistics", run.run_id, ev, e)
            continue
        for name, arrays in files.items():
            epoch = keys.parse_evaluation_file(name)
            if epoch is not None and "logits" in arrays:
                out.setdefault(ev, {})[epoch] = arrays["logits"]
    return out


def _first_epoch(rows: list[dict]) -> float:
    return min((r["epoch"] for r in rows), default=math.inf)


def load_study(
    tracking_uri: str, study_name: str, with_logits: bool = True, tracker: Tracker | None = None
) -> StudyRuns:
    """Read all runs of ``study_name`` from the MLflow tracking server or database at ``tracking_uri``.

    ``with_logits`` also reads every evaluation's per-image logits (for paired intervals and the plateau rule).

    Raises ``ValueError`` (naming the study, the URI and the existing experiments) when the experiment
    does not exist.
    """
    client = tracker or connect(tracking_uri)
    exp = client.experiment(study_name)
    if exp is None:
        existing = client.experiment_names()
        raise ValueError(
            f"no MLflow experiment named {study_name!r} at tracking URI {tracking_uri!r}; "
            f"existing experiments: {', '.join(repr(n) for n in existing) or '(none)'}"
        )
    runs = client.runs(exp.experiment_id)
    log.info("study %s: %d run(s) in experiment %s", study_name, len(runs), exp.experiment_id)

    parents, trials_runs, sample_size = [], {}, []
    for run in runs:
        tags = run.tags
        if tags.get(TAG_NAME, study_name) != study_name:
            log.warning("run %s has %s=%r, not %r; skipped", run.run_id, TAG_NAME, tags[TAG_NAME], study_name)
            continue
        role = keys.parse_role(tags.get(TAG_ROLE))
        if role == keys.ROLE_PARENT:
            parents.append(run)
        elif role == keys.ROLE_SAMPLE_SIZE:
            sample_size.append(run.run_id)
        elif role == keys.ROLE_TRIAL:
            trial = tags.get(TAG_TRIAL) or run.name or run.run_id
            trials_runs.setdefault(trial, []).append(run)
    parent = max(parents, key=lambda r: r.start_time or 0, default=None)

    all_axes = _union_ordered(_axes_of(r) for rs in trials_runs.values() for r in rs)
    reserved = set(SCORE_COLUMNS) | set(LOSS_COLUMNS) | set(TRIAL_COLUMNS)
    axis_cols = {a: (f"axis.{a}" if a in reserved else a) for a in all_axes}

    score_rows, loss_rows, trial_rows, metric_rows = [], [], [], []
    specs: dict[str, StudySpec | None] = {}
    logits: dict[tuple[str, str], dict[int, np.ndarray]] = {}
    for trial, trial_runs in sorted(trials_runs.items()):
        trial_runs.sort(key=lambda r: r.start_time or 0)
        newest = trial_runs[-1]
        if len(trial_runs) > 1:
            log.warning("trial %s has %d runs; merging histories (newest run wins)", trial, len(trial_runs))
        per_run = [_run_rows(client, r) for r in trial_runs]
        # one cutoff per run for every table: the first epoch logged by any newer run
        cuts = _cutoffs([_first_epoch(s + ls) for s, ls, _ in per_run])
        status = newest.tags.get(TAG_STATUS, "unknown")
        labels = {axis_cols[a]: newest.tags.get(AXIS_PREFIX + a) for a in all_axes}
        for run, (scores, losses, generic), c in zip(trial_runs, per_run, cuts, strict=True):
            score_rows += [{**row, "trial": trial, "status": status, **labels} for row in scores if row["epoch"] < c]
            loss_rows += [{**row, "trial": trial, **labels} for row in losses if row["epoch"] < c]
            metric_rows += [{**row, "trial": trial} for row in generic if row["epoch"] < c]
            if with_logits:
                for ev, by_epoch in _run_logits(client, run, {r["evaluation"] for r in scores}).items():
                    logits.setdefault((trial, ev), {}).update({e: x for e, x in by_epoch.items() if e < c})
        specs[trial] = logged_spec(newest.params, newest.tags)
        tags = newest.tags
        stop_epoch = tags.get(keys.TAG_STOP_EPOCH)
        trial_rows.append({
            "trial": trial, "run_id": newest.run_id, "status": status, **labels,
            "start_time": newest.start_time, "n_runs": len(trial_runs),
            "stop_epoch": int(stop_epoch) if stop_epoch and stop_epoch.isdigit() else None,
            "stop_rule": tags.get(keys.TAG_STOP_RULE), "stop_reason": tags.get(keys.TAG_STOP_REASON),
            "device": tags.get(keys.TAG_DEVICE, ""),
            "starts": sum(int(r.tags.get(keys.TAG_STARTS, "1")) for r in trial_runs),
        })

    ax = list(axis_cols.values())
    scores = _frame(score_rows, SCORE_COLUMNS[:3] + ax + SCORE_COLUMNS[3:],
                    ["trial", "evaluation", "extractor", "n_samples", "epoch"],
                    {"n_samples": "int64", "epoch": "int64"})
    losses = _frame(loss_rows, ["trial", *ax, *LOSS_COLUMNS[1:]], ["trial", "epoch"], {"epoch": "int64"})
    trials = _frame(trial_rows, TRIAL_COLUMNS[:3] + ax + TRIAL_COLUMNS[3:], ["trial"],
                    {"n_runs": "int64", "stop_epoch": "Int64", "starts": "Int64"})
    metrics = _frame(metric_rows, METRIC_COLUMNS, METRIC_COLUMNS[:7], {"n_samples": "int64", "epoch": "int64"})
    return StudyRuns(
        study_name=study_name, tracking_uri=tracking_uri, experiment_id=exp.experiment_id,
        parent_run_id=parent.run_id if parent else None, axes=ax,
        scores=scores, losses=losses, trials=trials,
        description=parent.tags.get(keys.TAG_DESCRIPTION) if parent else None,
        metrics=metrics, specs=specs, logits=logits, references=_references(parent),
        sample_size_runs=sample_size, tracker=tracker,
    )


def _references(parent: RunRecord | None) -> dict[tuple[str, int], dict[str, float]]:
    """IS of real data and of noise at the study's sample count, logged on the parent run."""
    out: dict[tuple[str, int], dict[str, float]] = {}
    for key, value in (parent.metrics if parent else {}).items():
        parsed = keys.parse_reference_key(key)
        if parsed is not None and parsed[0] == "is" and parsed[4] == "mean":
            out.setdefault((parsed[1], parsed[2]), {})[parsed[3]] = value
    return out


def _cutoffs(first_epochs: list[float]) -> list[float]:
    """For runs sorted oldest first: run i keeps epochs < min(first epoch of runs i+1, i+2, ...)."""
    cut = [math.inf] * len(first_epochs)
    running = math.inf
    for i in range(len(first_epochs) - 1, -1, -1):
        cut[i] = running
        running = min(running, first_epochs[i])
    return cut


def _frame(rows: list[dict], columns: list[str], sort: list[str], dtypes: dict[str, str]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=columns)
    for col, dt in dtypes.items():
        df[col] = df[col].astype(dt)
    return df.sort_values(sort, kind="stable").reset_index(drop=True)


def load_images(study: StudyRuns, run_id: str, folder: str, keep: Callable[[str], bool]) -> dict[str, np.ndarray]:
    """{file name: image array} of a run's PNG artifacts under ``folder`` whose names ``keep`` accepts."""
    import matplotlib.image

    client = study.tracker or connect(study.tracking_uri)
    names = [path for path in client.list_artifacts(run_id, folder) if keep(path.rsplit("/", 1)[-1])]
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for path in names:
            local = client.download(run_id, path, Path(d))
            out[path.rsplit("/", 1)[-1]] = matplotlib.image.imread(local)
    return out


def _run_id(study: StudyRuns, trial: str) -> str:
    return str(study.trials.set_index("trial").loc[trial, "run_id"])


def load_logged_images(
    study: StudyRuns, trial: str, key: str, epochs: Iterable[int] | Callable[[list[int]], Iterable[int]]
) -> dict[int, np.ndarray]:
    """The images a trial logged under the image ``key`` (``keys.image_key``, ``keys.score_image_key``) at
    ``epochs`` (those that exist; or a function choosing among the logged epochs, sorted), by epoch. Only the
    chosen files are downloaded."""
    client = study.tracker or connect(study.tracking_uri)
    run_id = _run_id(study, trial)
    logged = {}
    for path in client.list_artifacts(run_id, "images"):
        parsed = keys.parse_image_file(path.rsplit("/", 1)[-1])
        if parsed is not None and parsed[0] == key:
            logged[parsed[1]] = path.rsplit("/", 1)[-1]
    wanted = set(epochs(sorted(logged)) if callable(epochs) else epochs)
    names = {logged[e] for e in wanted if e in logged}
    images = load_images(study, run_id, "images", lambda name: name in names)
    return {keys.parse_image_file(name)[1]: img for name, img in images.items()}  # type: ignore[index]


def load_sample_grids(study: StudyRuns, trial: str, evaluation: str, epochs: Iterable[int]) -> dict[int, np.ndarray]:
    """The sample grids a trial logged for ``evaluation`` at ``epochs`` (those that exist), by epoch."""
    return load_logged_images(study, trial, keys.image_key(evaluation), epochs)


def load_evaluation_arrays(study: StudyRuns, trial: str, evaluation: str, epoch: int) -> dict[str, np.ndarray]:
    """The arrays of one evaluation at one epoch (``evaluations/<id>/epoch-<e>.npz``: logits, the scores'
    per-image arrays); empty when the trial kept none. Downloads that file only."""
    client = study.tracker or connect(study.tracking_uri)
    run_id, folder = _run_id(study, trial), keys.evaluation_dir(evaluation)
    path = f"{folder}/{keys.evaluation_file(epoch)}"
    if path not in {p for p in client.list_artifacts(run_id, folder)}:
        return {}
    with tempfile.TemporaryDirectory() as d, np.load(client.download(run_id, path, Path(d))) as z:
        return {k: z[k] for k in z.files}
