"""Where the tracking store is (``mlflow.yaml``, ``MLFLOW_TRACKING_URI``, the spec) and the connection to it."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from study.contract.tracking import Tracker

MEMORY_URI_PREFIX = "memory:"  # ``MemoryTracker``'s URIs: an object a test hands over, never reached by its URI


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


def connect(uri: str) -> Tracker:
    """The MLflow tracker of ``uri`` (``sqlite:///...``, ``http(s)://...``, a file store): every store a study or a
    report names is an MLflow one, so there is no choice to make here. The in-memory backend has no address: a test
    hands its ``MemoryTracker`` over as an object (``run_trial(..., tracker=...)``, ``load_study(..., tracker=...)``),
    and a ``memory:`` URI here is refused rather than opened as an MLflow store of that name."""
    if uri.startswith(MEMORY_URI_PREFIX):
        raise ValueError(f"{uri!r} is an in-memory store: pass the MemoryTracker itself (tracker=...), not its URI")
    from study.contract.mlflow_backend import MlflowTracker  # mlflow loads only when a store is opened

    return MlflowTracker(uri)
