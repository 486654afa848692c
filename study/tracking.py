"""Driver-side MLflow setup: resolve the tracking config, create the experiment and the parent run once.

Trials never create experiments (concurrent creation races, ECOSYSTEM 2.2); they receive absolute ids.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from ruamel.yaml import YAML

from study.keys import TAG_DESCRIPTION, TAG_INSTANCE, TAG_ROLE, TAG_STUDY
from trainables.tracking import retry

log = logging.getLogger(__name__)
PACKAGES = ("torch", "torchvision", "ray", "mlflow", "torch-fidelity", "pydantic", "numpy", "scikit-learn")


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
    for candidate in (cwd / "mlflow.yaml", Path(__file__).resolve().parents[1] / "mlflow.yaml"):
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


def ensure_experiment(client: MlflowClient, name: str, artifact_root: str | None) -> str:
    """The experiment's id, created if needed, tagged as a model-training experiment (unless a kind is set)."""
    exp = retry(lambda: client.get_experiment_by_name(name))
    if exp is not None:
        if exp.lifecycle_stage == "deleted":
            raise ValueError(
                f"MLflow experiment {name!r} is deleted; restore it (mlflow experiments restore) or rename"
            )
        if EXPERIMENT_KIND_TAG not in exp.tags:
            retry(lambda: client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND))
        return exp.experiment_id
    location = f"{artifact_root.rstrip('/')}/{name}" if artifact_root else None
    tags = {EXPERIMENT_KIND_TAG: EXPERIMENT_KIND}
    return retry(lambda: client.create_experiment(name, artifact_location=location, tags=tags))


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
    client: MlflowClient,
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
    run = retry(lambda: client.create_run(experiment_id, run_name=f"{study} (study)", tags=tags))
    run_id = run.info.run_id
    versions = package_versions()
    for k, v in versions.items():
        retry(lambda k=k, v=v: client.log_param(run_id, f"version.{k}", v))
    retry(lambda: client.log_artifact(run_id, str(spec_path), "spec"))
    retry(lambda: client.log_dict(run_id, {"trials": trials}, "spec/trials.json"))
    retry(lambda: client.log_dict(run_id, versions, "environment.json"))
    return run_id
