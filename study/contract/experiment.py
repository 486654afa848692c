"""The driver's writes: the study's experiment, the parent run of one invocation, its IS chart view, and the
links to them in the MLflow UI (the report prints the same links)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from study.contract.keys import (
    ROLE_PARENT,
    ROLE_TRIAL,
    TAG_DESCRIPTION,
    TAG_INSTANCE,
    TAG_PRIMARY_METRIC,
    TAG_ROLE,
    TAG_STUDY,
    VIEW_LINK_PARAM,
    chart_view_id,
    parse_role,
    parse_score_key,
    score_key,
    version_param,
)
from study.contract.runlog import json_file
from study.contract.tracking import ChartView, MetricPoint, Tracker, now_ms, retry

PACKAGES = ("torch", "torchvision", "ray", "mlflow", "torch-fidelity", "pydantic", "numpy", "scikit-learn")


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


IS_CHART_STATS = ("mean", "ci_low", "ci_high")  # one chart per curve: IS with its 95 % bootstrap interval


DEFAULT_UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` serves a local store unless told otherwise


def chart_view(study: str, instance: str, curves: list[tuple[str, int, str]]) -> ChartView:
    """The study's IS-vs-epoch view: a chart per ``(extractor, n, evaluation)`` curve with IS mean, ``ci_low`` and
    ``ci_high``, one line each per trial of this study instance (the parent run, classifier runs and older
    instances' trials are left out by their tags)."""
    charts = [[score_key("is", x, n, ev, stat) for stat in IS_CHART_STATS] for x, n, ev in curves]
    return ChartView(chart_view_id(study), f"{study}: IS vs epoch", "IS vs epoch (mean, 95 % CI)",
                     {TAG_ROLE: ROLE_TRIAL, TAG_INSTANCE: instance}, charts)  # fmt: skip


def save_chart_view(tracker: Tracker, experiment_id: str, view: ChartView) -> None:
    """Write ``view`` (replacing the study's previous one) and make its first metric the experiment's primary one."""
    retry(lambda: tracker.save_view(experiment_id, view))
    if view.primary_metric:
        retry(lambda: tracker.set_experiment_tag(experiment_id, TAG_PRIMARY_METRIC, view.primary_metric))


def logged_chart_view(tracker: Tracker, experiment_id: str, study: str) -> ChartView | None:
    """The view of what a study logged (``report`` of a study run before views existed, or elsewhere): its latest
    instance and the IS curves its trials logged. ``None`` without a parent run."""
    runs = retry(lambda: tracker.runs(experiment_id))
    mine = [r for r in runs if r.tags.get(TAG_STUDY, study) == study]
    parents = [r for r in mine if parse_role(r.tags.get(TAG_ROLE)) == ROLE_PARENT]
    if not parents:
        return None
    instance = max(parents, key=lambda r: r.start_time or 0).tags.get(TAG_INSTANCE, "")
    curves = sorted({
        (k.extractor, k.n, k.evaluation) for r in runs
        if parse_role(r.tags.get(TAG_ROLE)) == ROLE_TRIAL and r.tags.get(TAG_INSTANCE) == instance
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
    tags = {TAG_STUDY: study, TAG_ROLE: ROLE_PARENT, TAG_INSTANCE: instance, TAG_DESCRIPTION: description}
    tags |= {"mlflow.note.content": description} if description else {}
    commit = git_commit(spec_path.parent)
    if commit:
        tags["mlflow.source.git.commit"] = commit
    tags |= extra_tags
    run_id = retry(lambda: tracker.create_run(experiment_id, f"{study} (study)", tags))
    versions = package_versions()
    retry(lambda: tracker.log_batch(run_id, [], {version_param(k): v for k, v in versions.items()}, {}))
    retry(lambda: tracker.log_artifact(run_id, spec_path, "spec"))
    log_json(tracker, run_id, {"trials": trials}, "spec/trials.json")
    log_json(tracker, run_id, versions, "environment.json")
    return run_id


def log_json(tracker: Tracker, run_id: str, data: Any, path: str) -> None:
    """``data`` as the JSON artifact ``path`` (folder/name.json) of the run (``TrialRun.log_json`` in a trial)."""
    with json_file(data, path) as (local, folder):
        retry(lambda: tracker.log_artifact(run_id, local, folder))


def log_metrics(tracker: Tracker, run_id: str, metrics: dict[str, float], step: int = 0) -> None:
    """One batch of metrics at ``step`` (driver side: references, classifier curves, sample-size tables)."""
    ts = now_ms()
    points = [MetricPoint(k, float(v), step, ts) for k, v in metrics.items()]
    retry(lambda: tracker.log_batch(run_id, points, {}, {}))
