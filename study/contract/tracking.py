"""The tracking seam: what the study records, independent of the backend that stores it.

Three roles, one protocol (``Tracker``): the driver creates the experiment and the parent run and reads state
back; a trial logs into its run through ``TrialRun``; analysis reads runs and full metric histories. MLflow
implements it in ``study/contract/mlflow_backend.py`` (the only module that imports mlflow);
``study/contract/memory_backend.py`` keeps everything in memory for unit tests. Trials never create experiments
(concurrent creation races, ECOSYSTEM 2.2); they receive absolute ids.

Two guarantees live here rather than in a backend:

* **Exact resume.** A run reopened after a restore knows which (key, step) points it already holds and never logs
  them again: epochs replayed from an older checkpoint (the driver or the trial process was killed after they were
  logged but before they were checkpointed) keep their first point. On CPU the replay is bit-identical, so the kept
  values are the replay's values; wall-clock metrics keep their first measurement.
* **Outages.** A write that still fails after ``retry`` goes to the trial's spool file (JSON lines, files beside
  it) instead of failing the trial; the spool is replayed before the next write, when the run is reopened, and by
  the driver at the end of the study (``replay_spools``), which reports what is still unlogged.
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol, TypeVar

import numpy as np
from ruamel.yaml import YAML

from study.contract.keys import (
    MLFLOW_RUN_STATUS,
    TAG_AXES,
    TAG_DESCRIPTION,
    TAG_INSTANCE,
    TAG_PARENT,
    TAG_PRIMARY_METRIC,
    TAG_ROLE,
    TAG_STARTS,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL,
    VIEW_LINK_PARAM,
    Status,
    axis_tag,
    chart_view_id,
    parse_score_key,
    score_key,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
PACKAGES = ("torch", "torchvision", "ray", "mlflow", "torch-fidelity", "pydantic", "numpy", "scikit-learn")


# ----------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class MetricPoint:
    key: str
    value: float
    step: int
    timestamp: int  # ms since the epoch


@dataclass(frozen=True)
class RunRecord:
    """A run as analysis reads it: tags, params and the latest value of each metric."""

    run_id: str
    experiment_id: str
    name: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED
    start_time: int | None
    tags: dict[str, str]
    params: dict[str, str]
    metrics: dict[str, float]


@dataclass(frozen=True)
class ExperimentRecord:
    experiment_id: str
    name: str
    deleted: bool
    tags: dict[str, str]


@dataclass(frozen=True)
class ChartView:
    """A saved view of an experiment's runs as line charts against step (= epoch), in the backend's UI.

    Only runs carrying every ``run_tags`` tag are drawn (one line per run and key); each chart draws its ``keys``
    together (a mean with its interval bounds). ``section`` titles the group of charts."""

    view_id: str
    name: str
    section: str
    run_tags: dict[str, str]
    charts: list[list[str]]

    @property
    def primary_metric(self) -> str | None:
        return self.charts[0][0] if self.charts else None


class Tracker(Protocol):
    """A tracking backend. Writes may raise on a transient failure; callers wrap them in ``retry``."""

    uri: str

    def check(self, timeout: float = 3.0) -> str | None: ...
    def experiment(self, name: str) -> ExperimentRecord | None: ...
    def create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str: ...
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None: ...
    def save_view(self, experiment_id: str, view: ChartView) -> None: ...
    def experiment_names(self) -> list[str]: ...
    def create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> str: ...
    def find_runs(self, experiment_id: str, tags: dict[str, str]) -> list[str]: ...
    def runs(self, experiment_id: str) -> list[RunRecord]: ...
    def run(self, run_id: str) -> RunRecord: ...
    def set_status(self, run_id: str, status: str) -> None: ...
    def log_batch(
        self, run_id: str, metrics: list[MetricPoint], params: dict[str, str], tags: dict[str, str]
    ) -> None: ...
    def history(self, run_id: str, key: str) -> list[MetricPoint]: ...
    def log_artifact(self, run_id: str, local: Path, folder: str | None) -> None: ...
    def log_artifacts(self, run_id: str, local_dir: Path, folder: str | None) -> None: ...
    def log_image(self, run_id: str, image: np.ndarray, key: str, step: int) -> None: ...
    def list_artifacts(self, run_id: str, folder: str) -> list[str]: ...
    def download(self, run_id: str, path: str, dest: Path) -> Path: ...


def connect(uri: str) -> Tracker:
    """The backend of a tracking URI (MLflow: ``sqlite:///...``, ``http(s)://...``, a file store)."""
    from study.contract.mlflow_backend import MlflowTracker

    return MlflowTracker(uri)


def retry(fn: Callable[[], T], attempts: int = 8, delay: float = 0.25) -> T:
    """Call ``fn`` with exponential back-off: SQLite allows one writer at a time ("database is locked")."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - backends wrap store errors in several types
            if i == attempts - 1:
                raise
            log.debug("tracking write failed (%s); retrying", e)
            time.sleep(delay * 2**i)
    raise AssertionError("unreachable")


def now_ms() -> int:
    return int(time.time() * 1000)


# ------------------------------------------------------------------------------------------------------ config
@dataclass(frozen=True)
class TrackingConfig:
    tracking_uri: str
    artifact_location: str | None
    experiment_prefix: str = ""
    tags: dict[str, str] = field(default_factory=dict)


def _absolute_sqlite(uri: str, base: Path) -> str:
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str((base / uri[len(prefix) :]).resolve())
    return uri


def find_config_file(cwd: Path) -> Path | None:
    """``mlflow.yaml`` in the working directory, else the one beside the installed project."""
    for candidate in (cwd / "mlflow.yaml", Path(__file__).resolve().parents[2] / "mlflow.yaml"):
        if candidate.is_file():
            return candidate
    return None


def resolve_tracking(spec_uri: str | None = None, cwd: Path | None = None) -> TrackingConfig:
    """Tracking config with every path absolute (env var > spec > mlflow.yaml > built-in default)."""
    cwd = (cwd or Path.cwd()).resolve()
    cfg: dict[str, Any] = {}
    path = find_config_file(cwd)
    if path is not None:
        cfg = dict(YAML(typ="safe").load(path.read_text()) or {})
        unknown = set(cfg) - {"tracking_uri", "artifact_location", "experiment_prefix", "tags"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or spec_uri or cfg.get("tracking_uri") or "sqlite:///mlflow.db"
    uri = _absolute_sqlite(uri, cwd)
    artifacts = cfg.get("artifact_location", "mlartifacts")
    if (
        uri.startswith(("http://", "https://"))
        and artifacts
        and "://" not in artifacts
        and not Path(artifacts).is_absolute()
    ):
        artifacts = None  # a tracking server stores artifacts under its own root unless told otherwise
    if artifacts and "://" not in artifacts:
        artifacts = str((cwd / artifacts).resolve())
    return TrackingConfig(uri, artifacts, cfg.get("experiment_prefix") or "", dict(cfg.get("tags") or {}))


# The UI's kind of experiment: model training, not GenAI. MLflow 3.7's UI opens an experiment by this tag (runs,
# not traces); 3.17's UI ignores it and follows its own GenAI / Model training switch (README, "The MLflow UI").
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def ensure_experiment(tracker: Tracker, name: str, artifact_root: str | None) -> str:
    """The experiment's id, created if needed, tagged as a model-training experiment (unless a kind is set)."""
    exp = retry(lambda: tracker.experiment(name))
    if exp is not None:
        if exp.deleted:
            raise ValueError(
                f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) or rename"
            )
        if EXPERIMENT_KIND_TAG not in exp.tags:
            retry(lambda: tracker.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND))
        return exp.experiment_id
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    return retry(lambda: tracker.create_experiment(name, location, {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}))


# ------------------------------------------------------------------------------------------- the IS chart view
IS_CHART_STATS = ("mean", "ci_low", "ci_high")  # one chart per curve: IS with its 95 % bootstrap interval
DEFAULT_UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` serves a local store unless told otherwise


def chart_view(study: str, instance: str, curves: list[tuple[str, int, str]]) -> ChartView:
    """The study's IS-vs-epoch view: a chart per ``(extractor, n, evaluation)`` curve with IS mean, ``ci_low`` and
    ``ci_high``, one line each per trial of this study instance (the parent run, classifier runs and older
    instances' trials are left out by their tags)."""
    charts = [[score_key("is", x, n, ev, stat) for stat in IS_CHART_STATS] for x, n, ev in curves]
    return ChartView(chart_view_id(study), f"{study}: IS vs epoch", "IS vs epoch (mean, 95 % CI)",
                     {TAG_ROLE: "trial", TAG_INSTANCE: instance}, charts)  # fmt: skip


def save_chart_view(tracker: Tracker, experiment_id: str, view: ChartView) -> None:
    """Write ``view`` (replacing the study's previous one) and make its first metric the experiment's primary one."""
    retry(lambda: tracker.save_view(experiment_id, view))
    if view.primary_metric:
        retry(lambda: tracker.set_experiment_tag(experiment_id, TAG_PRIMARY_METRIC, view.primary_metric))


def logged_chart_view(tracker: Tracker, experiment_id: str, study: str) -> ChartView | None:
    """The view of what a study logged (``report`` of a study run before views existed, or elsewhere): its latest
    instance and the IS curves its trials logged. ``None`` without a parent run."""
    runs = retry(lambda: tracker.runs(experiment_id))
    parents = [r for r in runs if r.tags.get(TAG_ROLE) == "parent" and r.tags.get(TAG_STUDY, study) == study]
    if not parents:
        return None
    instance = max(parents, key=lambda r: r.start_time or 0).tags.get(TAG_INSTANCE, "")
    curves = sorted({
        (k.extractor, k.n, k.evaluation) for r in runs
        if r.tags.get(TAG_ROLE) == "trial" and r.tags.get(TAG_INSTANCE) == instance
        for k in map(parse_score_key, r.metrics) if k is not None and k.score == "is" and k.stat == "mean"
    })  # fmt: skip
    return chart_view(study, instance, curves)


def ui_base(tracking_uri: str) -> str:
    """The UI's address: a tracking server serves it; a local store is served by ``mlflow ui`` (``ui_command``)."""
    return tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else DEFAULT_UI


def ui_command(tracking_uri: str) -> str | None:
    """The command that serves the UI of a local store (``None`` for a server, which serves its own)."""
    return None if tracking_uri.startswith(("http://", "https://")) else f"mlflow ui --backend-store-uri {tracking_uri}"


def view_link(tracking_uri: str, experiment_id: str, view_id: str) -> str:
    """The link that opens a saved view on the chart tab of the experiment's runs."""
    return (f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs?{VIEW_LINK_PARAM}={view_id}"
            "&compareRunsMode=CHART")  # fmt: skip


def run_link(tracking_uri: str, experiment_id: str, run_id: str) -> str:
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/runs/{run_id}"


def git_commit(path: Path) -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def create_parent_run(
    tracker: Tracker,
    experiment_id: str,
    study: str,
    description: str,
    instance: str,
    spec_path: Path,
    trials: list[dict[str, Any]],
    extra_tags: dict[str, str],
) -> str:
    """The parent run of one study invocation: spec file, expanded trials, git commit, package versions."""
    tags = {TAG_STUDY: study, TAG_ROLE: "parent", TAG_INSTANCE: instance, TAG_DESCRIPTION: description}
    tags |= {"mlflow.note.content": description} if description else {}
    commit = git_commit(spec_path.parent)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    tags |= extra_tags
    run_id = retry(lambda: tracker.create_run(experiment_id, f"{study} (study)", tags))
    versions = package_versions()
    retry(lambda: tracker.log_batch(run_id, [], {f"version.{k}": v for k, v in versions.items()}, {}))
    retry(lambda: tracker.log_artifact(run_id, spec_path, "spec"))
    log_json(tracker, run_id, {"trials": trials}, "spec/trials.json")
    log_json(tracker, run_id, versions, "environment.json")
    return run_id


def log_json(tracker: Tracker, run_id: str, data: Any, path: str) -> None:
    """``data`` as the JSON artifact ``path`` (folder/name.json) of the run."""
    folder, _, name = path.rpartition("/")
    with tempfile.TemporaryDirectory() as d:
        local = Path(d) / name
        local.write_text(json.dumps(data, indent=2))
        retry(lambda: tracker.log_artifact(run_id, local, folder or None))


def log_metrics(tracker: Tracker, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """One batch of metrics at ``step`` (driver side: references, classifier curves, sample-size tables)."""
    ts = now_ms()
    points = [MetricPoint(k, float(v), step, ts) for k, v in metrics.items()]
    retry(lambda: tracker.log_batch(run_id, points, {}, {}))


# -------------------------------------------------------------------------------------------------- run side
def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"training.lr": "0.002", ...}; lists become JSON (params are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + ".")
        else:
            out[key] = json.dumps(v) if isinstance(v, list | tuple) else str(v)
    return out


PARAM_MAX_CHARS = 250  # longer values (JSON lists of samplers, claims) are tags: see ``split_params``
TEXT_PARAMS = {"description": TAG_DESCRIPTION}  # free text: a tag, never a param
MAX_TAG_CHARS = 8000  # MLflow's limit on a tag value


def split_params(flat: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of a flattened config: free text and values over ``PARAM_MAX_CHARS`` become tags.

    The MLflow UI prints every param as ``key=value`` above each image card and in Compare, so a long
    description or JSON list buries the sample grids. Text goes to its tag (``study.description``), a long
    value to a tag of the same key (the whole spec is also in the parent run's ``spec/`` artifacts).
    """
    params: dict[str, str] = {}
    tags: dict[str, str] = {}
    for k, v in flat.items():
        if k in TEXT_PARAMS:
            if v and v != "None":
                tags[TEXT_PARAMS[k]] = v[:MAX_TAG_CHARS]
        elif len(v) > PARAM_MAX_CHARS:
            tags[k] = v[:MAX_TAG_CHARS]
        else:
            params[k] = v
    return params, tags


class Spool:
    """Writes that failed during an outage, kept on disk (``<dir>.jsonl`` + files in ``<dir>/``) until replayed.

    Each line is one write (``metrics``, ``tags``, ``artifact`` or ``image``) with its run id, so the driver can
    replay a spool whose trial has ended.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.files = self.path.with_suffix("")

    def add(self, record: dict[str, Any], local: Path | None = None, array: np.ndarray | None = None) -> None:
        self.files.mkdir(parents=True, exist_ok=True)
        if local is not None:
            kept = self.files / f"{uuid.uuid4().hex}-{local.name}"
            shutil.copyfile(local, kept)
            record = record | {"local": str(kept), "name": local.name}
        if array is not None:
            kept = self.files / f"{uuid.uuid4().hex}.npy"
            np.save(kept, array)
            record = record | {"local": str(kept)}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]

    def replay(
        self, tracker: Tracker, skip: Callable[[str, int], bool] = lambda key, step: False,
        written: Callable[[dict[str, Any]], None] = lambda rec: None,
    ) -> int:  # fmt: skip
        """Write every spooled record (one attempt each; metric points ``skip`` accepts are dropped), call
        ``written`` with each that went through, keep those that still fail. Returns how many remain."""
        remaining = []
        for rec in self.records():
            try:
                _write_record(tracker, rec, skip)
                written(rec)
            except Exception as e:  # noqa: BLE001 - still down: keep it for the next replay
                log.debug("spooled write still failing: %s", e)
                remaining.append(rec)
        if remaining:
            self.path.write_text("".join(json.dumps(r) + "\n" for r in remaining))
        else:
            self.path.unlink(missing_ok=True)
            shutil.rmtree(self.files, ignore_errors=True)
        return len(remaining)

    def count(self) -> int:
        return len(self.records())


def _write_record(tracker: Tracker, rec: dict[str, Any], skip: Callable[[str, int], bool]) -> None:
    run_id, kind = rec["run_id"], rec["kind"]
    if kind == "metrics":
        points = [MetricPoint(*p) for p in rec["points"] if not skip(p[0], p[2])]
        tracker.log_batch(run_id, points, {}, {})
    elif kind == "tags":
        tracker.log_batch(run_id, [], {}, rec["tags"])
    elif kind == "artifact":
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / rec["name"]
            shutil.copyfile(rec["local"], local)
            tracker.log_artifact(run_id, local, rec["folder"])
    elif kind == "image":
        tracker.log_image(run_id, np.load(rec["local"]), rec["key"], rec["step"])
    elif kind == "status":
        tracker.set_status(run_id, rec["status"])


def replay_spools(tracker: Tracker, folder: Path) -> dict[str, int]:
    """Driver side, at the end of a study: replay every trial's spool; {trial: writes still unlogged}."""
    out = {}
    for path in sorted(Path(folder).glob("*.jsonl")) if Path(folder).is_dir() else []:
        out[path.stem] = Spool(path).replay(tracker)
    return {k: v for k, v in out.items() if v}


class TrialRun:
    """The child run of one trial: continued (not forked) after a restore, each (key, step) logged once."""

    def __init__(self, tracker: Tracker, run_id: str, logged: dict[str, set[int]] | None = None,
                 spool: Spool | None = None, attempts: int = 8):  # fmt: skip
        self.tracker = tracker
        self.run_id = run_id
        self.logged: dict[str, set[int]] = logged or {}
        self.spool = spool
        self.attempts = attempts  # per write, before it is spooled (SQLite's "database is locked" needs several)

    @classmethod
    def open(
        cls,
        tracker: Tracker,
        experiment_id: str,
        parent_run_id: str,
        instance: str,
        study: str,
        trial: str,
        axes: dict[str, str],
        params: dict[str, Any],
        run_id: str | None = None,
        spool: Path | None = None,
        attempts: int = 8,
    ) -> TrialRun:
        """Continue ``run_id`` (from the checkpoint) or the run this study instance made for the trial, else
        create it. A trial that crashed before its first checkpoint thus still reuses its run."""
        if run_id is None:
            found = retry(lambda: tracker.find_runs(experiment_id, {TAG_INSTANCE: instance, TAG_TRIAL: trial}))
            run_id = found[0] if found else None
        if run_id is None:
            tags = {
                TAG_PARENT: parent_run_id, TAG_STUDY: study, TAG_ROLE: "trial", TAG_TRIAL: trial,
                TAG_AXES: json.dumps(list(axes)), TAG_INSTANCE: instance, TAG_STATUS: "running", TAG_STARTS: "1",
            } | {axis_tag(k): v for k, v in axes.items()}  # fmt: skip
            short, long = split_params(flatten(params))
            new_id = retry(lambda: tracker.create_run(experiment_id, trial, long | tags))
            retry(lambda: tracker.log_batch(new_id, [], short, {}))
            run = cls(tracker, new_id, spool=Spool(spool) if spool else None, attempts=attempts)
        else:
            record = retry(lambda: tracker.run(run_id))
            starts = int(record.tags.get(TAG_STARTS, "1")) + 1
            retry(lambda: tracker.set_status(run_id, "RUNNING"))
            retry(lambda: tracker.log_batch(run_id, [], {}, {TAG_STATUS: "running", TAG_STARTS: str(starts)}))
            run = cls(tracker, run_id, logged_steps(tracker, record), Spool(spool) if spool else None, attempts)
        run.flush()
        return run

    def _write(self, write: Callable[[], None], record: dict[str, Any], **files: Any) -> bool:
        """``write`` with retries; when the backend stays down, the spool keeps it (and the trial goes on).
        True when it was written now."""
        self.flush()
        try:
            retry(write, attempts=self.attempts)
            return True
        except Exception as e:  # noqa: BLE001 - any failure of the store
            if self.spool is None:
                raise
            log.warning("tracking is failing (%s); spooling to %s", e, self.spool.path)
            self.spool.add(record | {"run_id": self.run_id}, **files)
            return False

    def flush(self) -> None:
        """Replay what an outage left in the spool (points already in the run are skipped)."""
        if self.spool is not None and self.spool.path.exists():
            self.spool.replay(self.tracker, self._has, self._written)

    def _written(self, rec: dict[str, Any]) -> None:
        if rec["kind"] == "metrics":
            self._mark([(p[0], p[2]) for p in rec["points"]])
        elif rec["kind"] == "image":
            self._mark([(f"image:{rec['key']}", rec["step"])])

    def _mark(self, points: list[tuple[str, int]]) -> None:
        for key, step in points:
            self.logged.setdefault(key, set()).add(step)

    def _has(self, key: str, step: int) -> bool:
        return step in self.logged.get(key, ())

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = now_ms()
        points = [MetricPoint(k, float(v), step, ts) for k, v in metrics.items() if not self._has(k, step)]
        if points and self._write(lambda: self.tracker.log_batch(self.run_id, points, {}, {}),
                                  {"kind": "metrics", "points": [[p.key, p.value, p.step, p.timestamp]
                                                                 for p in points]}):  # fmt: skip
            self._mark([(p.key, p.step) for p in points])

    def set_tags(self, tags: dict[str, str]) -> None:
        self._write(lambda: self.tracker.log_batch(self.run_id, [], {}, tags), {"kind": "tags", "tags": tags})

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        if not self._has(f"image:{key}", step) and self._write(
            lambda: self.tracker.log_image(self.run_id, image, key, step),
            {"kind": "image", "key": key, "step": step}, array=image,
        ):  # fmt: skip
            self._mark([(f"image:{key}", step)])

    def log_dict(self, data: dict[str, Any], path: str) -> None:
        folder, _, name = path.rpartition("/")
        with tempfile.TemporaryDirectory() as d:
            local = Path(d) / name
            local.write_text(json.dumps(data, indent=2))
            self._log_file(local, folder or None)

    def log_arrays(self, path: str, **arrays: np.ndarray) -> None:
        """Arrays as one compressed ``.npz`` artifact at ``path`` (a folder/file.npz); re-logging replaces it."""
        folder, name = path.rsplit("/", 1)
        with tempfile.TemporaryDirectory() as d:
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            (Path(d) / name).write_bytes(buf.getvalue())
            self._log_file(Path(d) / name, folder)

    def _log_file(self, local: Path, folder: str | None) -> None:
        self._write(lambda: self.tracker.log_artifact(self.run_id, local, folder),
                    {"kind": "artifact", "folder": folder}, local=local)  # fmt: skip

    def load_arrays(self, folder: str) -> dict[str, dict[str, np.ndarray]]:
        """{file name: {array name: array}} of the ``.npz`` artifacts directly under ``folder`` (empty if none)."""
        return load_run_arrays(self.tracker, self.run_id, folder)

    def unlogged(self) -> int:
        """Writes still waiting in the spool."""
        return self.spool.count() if self.spool is not None else 0

    def finish(self, status: Status) -> None:
        """Set the study status (study/contract/keys.py) and end the run with the matching run status."""
        self.set_tags({TAG_STATUS: status})
        run_status = MLFLOW_RUN_STATUS[status]
        self._write(lambda: self.tracker.set_status(self.run_id, run_status), {"kind": "status", "status": run_status})


def logged_steps(tracker: Tracker, record: RunRecord) -> dict[str, set[int]]:
    """{metric key: steps already in the run}, and images as ``image:<key>`` (from their file names)."""
    from study.contract.keys import parse_image_file

    run_id = record.run_id
    out = {k: {p.step for p in retry(lambda k=k: tracker.history(run_id, k))} for k in record.metrics}
    for path in retry(lambda: tracker.list_artifacts(run_id, "images")):
        parsed = parse_image_file(path.rsplit("/", 1)[-1])
        if parsed is not None:
            out.setdefault(f"image:{parsed[0]}", set()).add(parsed[1])
    return out


def load_run_arrays(tracker: Tracker, run_id: str, folder: str) -> dict[str, dict[str, np.ndarray]]:
    """{file name: arrays} of a run's ``.npz`` artifacts under ``folder``, read once into memory."""
    files = [f for f in retry(lambda: tracker.list_artifacts(run_id, folder)) if f.endswith(".npz")]
    if not files:
        return {}
    out = {}
    with tempfile.TemporaryDirectory() as d:
        local = Path(retry(lambda: tracker.download(run_id, folder, Path(d))))
        for f in files:
            with np.load(local / Path(f).name) as z:
                out[Path(f).name] = {k: z[k] for k in z.files}
    return out
