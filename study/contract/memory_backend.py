"""An in-memory ``Tracker`` for unit tests: the seam's contract without a database, a server or mlflow.

A test creates one and hands it to the code under test (``run_trial(..., tracker=...)``, ``load_study(...,
tracker=...)``). Artifacts are kept as bytes. ``fail`` injects outages.
"""

from __future__ import annotations

import io
import itertools
import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from study.contract.keys import TAG_SAVED_VIEW_PREFIX, image_file
from study.contract.store import MEMORY_URI_PREFIX
from study.contract.tracking import ChartView, ExperimentRecord, MetricPoint, RunRecord


class TrackingUnavailable(ConnectionError):
    """Raised by every call while an outage is injected (``MemoryTracker.fail``)."""


@dataclass
class _Run:
    record: RunRecord
    history: dict[str, list[MetricPoint]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)


class MemoryTracker:
    """A ``study.contract.tracking.Tracker`` whose store is a few dicts."""

    def __init__(self, uri: str = MEMORY_URI_PREFIX):
        self.uri = uri
        self.experiments: dict[str, ExperimentRecord] = {}
        self.runs_by_id: dict[str, _Run] = {}
        self.views: dict[tuple[str, str], ChartView] = {}
        self.down = False
        self._ids = itertools.count(1)

    def fail(self, down: bool = True) -> None:
        """Start (or end) an outage: every call raises ``TrackingUnavailable`` meanwhile."""
        self.down = down

    def _up(self) -> None:
        if self.down:
            raise TrackingUnavailable(f"{self.uri} is down (injected)")

    # ------------------------------------------------------------------------------------------- health
    def check(self, timeout: float = 3.0) -> str | None:
        return f"the store {self.uri} is down" if self.down else None

    # -------------------------------------------------------------------------------------- experiments
    def experiment(self, name: str) -> ExperimentRecord | None:
        self._up()
        return next((e for e in self.experiments.values() if e.name == name), None)

    def create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str:
        self._up()
        if self.experiment(name) is not None:
            raise ValueError(f"experiment {name!r} exists")
        eid = str(next(self._ids))
        self.experiments[eid] = ExperimentRecord(eid, name, False, dict(tags))
        return eid

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self._up()
        self.experiments[experiment_id].tags[key] = value

    def save_view(self, experiment_id: str, view: ChartView) -> None:
        """Kept as the object (``views``); the tag names it, as MLflow's does, with the view's JSON."""
        self._up()
        self.views[(experiment_id, view.view_id)] = view
        self.experiments[experiment_id].tags[TAG_SAVED_VIEW_PREFIX + view.view_id] = json.dumps(asdict(view))

    def experiment_names(self) -> list[str]:
        self._up()
        return [e.name for e in self.experiments.values()]

    # --------------------------------------------------------------------------------------------- runs
    def create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> str:
        self._up()
        run_id = uuid.uuid4().hex
        start = int(time.time() * 1000) + next(self._ids)  # strictly increasing, as analysis orders by it
        self.runs_by_id[run_id] = _Run(RunRecord(run_id, experiment_id, name, "RUNNING", start, dict(tags), {}, {}))
        return run_id

    def find_runs(self, experiment_id: str, tags: dict[str, str]) -> list[str]:
        return [r.run_id for r in self.runs(experiment_id) if all(r.tags.get(k) == v for k, v in tags.items())]

    def runs(self, experiment_id: str) -> list[RunRecord]:
        self._up()
        return [r.record for r in self.runs_by_id.values() if r.record.experiment_id == experiment_id]

    def run(self, run_id: str) -> RunRecord:
        self._up()
        return self.runs_by_id[run_id].record

    def set_status(self, run_id: str, status: str) -> None:
        self._up()
        run = self.runs_by_id[run_id]
        run.record = RunRecord(**{**run.record.__dict__, "status": status})

    def log_batch(
        self, run_id: str, metrics: list[MetricPoint], params: dict[str, str], tags: dict[str, str]
    ) -> None:
        self._up()
        run = self.runs_by_id[run_id]
        for k, v in params.items():
            if run.record.params.get(k, v) != v:  # MLflow refuses to change a logged param
                raise ValueError(f"param {k!r} already logged with another value")
        run.record.params.update(params)
        run.record.tags.update(tags)
        for m in metrics:
            run.history.setdefault(m.key, []).append(m)
            latest = max(run.history[m.key], key=lambda p: (p.step, p.timestamp))
            run.record.metrics[m.key] = latest.value

    def history(self, run_id: str, key: str) -> list[MetricPoint]:
        self._up()
        return list(self.runs_by_id[run_id].history.get(key, []))

    # ---------------------------------------------------------------------------------------- artifacts
    def log_artifact(self, run_id: str, local: Path, folder: str | None) -> None:
        self._up()
        path = f"{folder}/{Path(local).name}" if folder else Path(local).name
        self.runs_by_id[run_id].files[path] = Path(local).read_bytes()

    def log_artifacts(self, run_id: str, local_dir: Path, folder: str | None) -> None:
        for f in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            rel = f.relative_to(local_dir).parent.as_posix()
            sub = "/".join(x for x in (folder, rel if rel != "." else "") if x)
            self.log_artifact(run_id, f, sub or None)

    def log_image(self, run_id: str, image: np.ndarray, key: str, step: int) -> None:
        import matplotlib.image

        self._up()
        buf = io.BytesIO()
        matplotlib.image.imsave(buf, np.asarray(image), format="png")
        name = image_file(key, step, int(time.time() * 1000), str(uuid.uuid4()))
        self.runs_by_id[run_id].files[f"images/{name}"] = buf.getvalue()

    def list_artifacts(self, run_id: str, folder: str) -> list[str]:
        self._up()
        prefix = folder.rstrip("/") + "/"
        return sorted({prefix + p[len(prefix) :].split("/")[0] for p in self.runs_by_id[run_id].files
                       if p.startswith(prefix)})  # fmt: skip

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        self._up()
        files = self.runs_by_id[run_id].files
        for p, data in files.items():
            if p == path or p.startswith(path.rstrip("/") + "/"):
                target = Path(dest) / p
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
        return Path(dest) / path
