"""The tracking seam's contract: what the study records, independent of the backend that stores it.

Three roles speak one protocol (``Tracker``): the driver creates the experiment and the parent run and reads state
back (``study.contract.experiment``); a trial logs into its run (``study.contract.runlog.TrialRun``); analysis reads
runs and full metric histories. ``study.contract.store.connect`` opens the MLflow backend
(``study/contract/mlflow_backend.py``, the only module that imports mlflow); ``study/contract/memory_backend.py``
keeps everything in memory for unit tests. Trials never create experiments (concurrent creation races, ECOSYSTEM
2.2); they receive absolute ids. This module holds the protocol, the records it passes and ``retry``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import numpy as np

log = logging.getLogger(__name__)
T = TypeVar("T")


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
