"""MLflow behind the tracking seam (``study.contract.tracking.Tracker``): the one module that imports mlflow.

Every call names its run explicitly (``MlflowClient``, no fluent global state). Retrying is the caller's choice
(``study.contract.tracking.retry``): a health check must fail fast, a metric write may wait for a locked SQLite file.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import Any

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, Run, RunTag, ViewType
from mlflow.version import VERSION as MLFLOW_VERSION

from study.contract.keys import TAG_SAVED_VIEW_PREFIX
from study.contract.tracking import ChartView, ExperimentRecord, MetricPoint, RunRecord, retry

log = logging.getLogger(__name__)

BATCH_LIMITS = {"metrics": 1000, "params": 100, "tags": 100}  # MLflow's log_batch limits per call
# MLflow 3.17 accepts 20,000 characters in an experiment tag, earlier 3.x releases 5,000: a view must fit both
VIEW_TAG_MAX_CHARS = 5000
# From 3.15 the UI lists saved views by name: the tag holds an envelope {name, createdAt, updatedAt, state}; before,
# the tag was the state itself (which 3.15+ still opens from a link, but does not list)
VIEW_ENVELOPE_SINCE = (3, 15)


class MlflowTracker:
    """A ``Tracker`` on an MLflow tracking URI (``sqlite:///...``, ``http(s)://...``, a file store)."""

    def __init__(self, uri: str):
        self.uri = uri
        self._client: MlflowClient | None = None

    @property
    def client(self) -> MlflowClient:
        """Made on first use: MLflow creates a SQLite store's directory then, which ``check`` looks at first."""
        if self._client is None:
            self._client = MlflowClient(tracking_uri=self.uri)
        return self._client

    # ---------------------------------------------------------------------------------------------- health
    def check(self, timeout: float = 3.0) -> str | None:
        """Why this URI cannot be tracked to, found in about ``timeout`` seconds (None when it can).

        A server is asked for ``/health`` with one short request (MLflow's own client would retry for minutes);
        a SQLite store must be in a writable directory; then one cheap read proves the store answers.
        """
        if self.uri.startswith(("http://", "https://")):
            url = self.uri.rstrip("/") + "/health"
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - the user's own URI
                    if response.status != 200:
                        return f"the MLflow server at {self.uri} answered {response.status} to {url}"
            except (urllib.error.URLError, OSError, TimeoutError) as e:
                return f"the MLflow server at {self.uri} is not reachable ({getattr(e, 'reason', e)})"
        elif self.uri.startswith("sqlite:///"):
            path = Path(self.uri[len("sqlite:///") :])
            folder = path.parent
            existing = next((p for p in (folder, *folder.parents) if p.exists()), Path("/"))
            if not existing.is_dir():
                return f"the MLflow database {path} cannot be created: {existing} is not a directory"
            if path.exists() and not _writable(path) or not path.exists() and not _writable(existing):
                return f"the MLflow database {path} is not writable"
        try:  # retried: a SQLite file another process is creating right now is briefly inconsistent
            retry(lambda: self.client.search_experiments(max_results=1), attempts=3, delay=0.5)
        except Exception as e:  # noqa: BLE001 - any failure of the store means the study cannot log
            return f"the MLflow store at {self.uri} does not answer: {type(e).__name__}: {str(e)[:300]}"
        return None

    # ---------------------------------------------------------------------------------------- experiments
    def experiment(self, name: str) -> ExperimentRecord | None:
        exp = self.client.get_experiment_by_name(name)
        if exp is None:
            return None
        return ExperimentRecord(exp.experiment_id, exp.name, exp.lifecycle_stage == "deleted", dict(exp.tags))

    def create_experiment(self, name: str, artifact_location: str | None, tags: dict[str, str]) -> str:
        return self.client.create_experiment(name, artifact_location=artifact_location, tags=tags)

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        self.client.set_experiment_tag(experiment_id, key, value)

    def save_view(self, experiment_id: str, view: ChartView) -> None:
        """``view`` as the UI's own saved view (``mlflow.sharedViewState.<id>``), charts dropped from the end (with a
        warning) if it would not fit in one experiment tag."""
        charts = list(view.charts)
        while True:
            value = _view_tag(view, charts)
            if len(value) <= VIEW_TAG_MAX_CHARS or len(charts) <= 1:
                break
            charts.pop()
        if len(charts) < len(view.charts):
            log.warning("the MLflow view %s keeps %d of %d charts (an experiment tag holds %d characters)",
                        view.view_id, len(charts), len(view.charts), VIEW_TAG_MAX_CHARS)  # fmt: skip
        self.client.set_experiment_tag(experiment_id, TAG_SAVED_VIEW_PREFIX + view.view_id, value)

    def experiment_names(self) -> list[str]:
        names: list[str] = []
        token = None
        while True:
            page = self.client.search_experiments(max_results=1000, page_token=token)
            names.extend(e.name for e in page)
            token = page.token
            if not token:
                return names

    # ----------------------------------------------------------------------------------------------- runs
    def create_run(self, experiment_id: str, name: str, tags: dict[str, str]) -> str:
        return self.client.create_run(experiment_id, run_name=name, tags=tags).info.run_id

    def find_runs(self, experiment_id: str, tags: dict[str, str]) -> list[str]:
        query = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
        return [r.info.run_id for r in self.client.search_runs([experiment_id], filter_string=query)]

    def runs(self, experiment_id: str) -> list[RunRecord]:
        out: list[RunRecord] = []
        token: str | None = None
        while True:
            page = self.client.search_runs(
                [experiment_id], run_view_type=ViewType.ACTIVE_ONLY, max_results=1000, page_token=token
            )
            out.extend(_record(r) for r in page)
            token = page.token
            if not token:
                return out

    def run(self, run_id: str) -> RunRecord:
        return _record(self.client.get_run(run_id))

    def set_status(self, run_id: str, status: str) -> None:
        """``RUNNING`` reopens a run; ``FINISHED``, ``FAILED`` or ``KILLED`` ends it."""
        if status == "RUNNING":
            self.client.update_run(run_id, status="RUNNING")
        else:
            self.client.set_terminated(run_id, status=status)

    def log_batch(
        self, run_id: str, metrics: list[MetricPoint], params: dict[str, str], tags: dict[str, str]
    ) -> None:
        entities: dict[str, list[Any]] = {
            "metrics": [Metric(m.key, m.value, m.timestamp, m.step) for m in metrics],
            "params": [Param(k, v) for k, v in params.items()],
            "tags": [RunTag(k, v) for k, v in tags.items()],
        }
        for kind, items in entities.items():
            size = BATCH_LIMITS[kind]
            for lo in range(0, len(items), size):
                self.client.log_batch(run_id, **{kind: items[lo : lo + size]})

    def history(self, run_id: str, key: str) -> list[MetricPoint]:
        return [MetricPoint(key, m.value, m.step, m.timestamp) for m in self.client.get_metric_history(run_id, key)]

    # ------------------------------------------------------------------------------------------- artifacts
    def log_artifact(self, run_id: str, local: Path, folder: str | None) -> None:
        self.client.log_artifact(run_id, str(local), folder)

    def log_artifacts(self, run_id: str, local_dir: Path, folder: str | None) -> None:
        self.client.log_artifacts(run_id, str(local_dir), folder)

    def log_image(self, run_id: str, image: np.ndarray, key: str, step: int) -> None:
        """MLflow's step-indexed image (``images/<key>+step+<step>+timestamp+...png``: ``keys.parse_image_file``)."""
        self.client.log_image(run_id, image, key=key, step=step)

    def list_artifacts(self, run_id: str, folder: str) -> list[str]:
        return [f.path for f in self.client.list_artifacts(run_id, folder)]

    def download(self, run_id: str, path: str, dest: Path) -> Path:
        return Path(self.client.download_artifacts(run_id, path, str(dest)))


def _view_state(view: ChartView, charts: list[list[str]]) -> dict[str, Any]:
    """The experiment page's state as the UI serializes it (its search facets and ``ExperimentPageUIState``)."""
    section = f"{view.view_id}.section"
    return {
        "searchFilter": " and ".join(f"tags.`{k}` = '{v}'" for k, v in view.run_tags.items()),
        # sorted by name: a filter sorted by start time still nests child runs under their (fetched) parent, and a
        # collapsed parent hides its trials' lines; by name, trials are flat rows in trial order
        "orderByKey": "tags.`mlflow.runName`", "orderByAsc": True,
        "runsHiddenMode": "SHOW_ALL", "runListHidden": True,  # every trial drawn; the charts get the page's width
        "isAccordionReordered": True,  # this section first; sections the UI adds for other metrics come after it
        "hideEmptyCharts": True,
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0, "selectedXAxisMetricKey": ""},
        "compareRunSections": [{"uuid": section, "name": view.section, "display": True, "isReordered": True,
                                "deleted": False, "isGenerated": False, "columns": 1, "cardHeight": 420}],
        "compareRunCharts": [
            {"type": "LINE", "uuid": f"{view.view_id}.{i}", "metricSectionId": section, "deleted": False,
             "isGenerated": False, "runsCountToCompare": 100, "metricKey": keys[0], "selectedMetricKeys": keys,
             "lineSmoothness": 0, "xAxisKey": "step", "selectedXAxisMetricKey": "", "scaleType": "linear",
             "xAxisScaleType": "linear", "displayPoints": True, "useGlobalXaxisKey": False,
             "useGlobalLineSmoothing": False}
            for i, keys in enumerate(charts)
        ],
    }  # fmt: skip


def _view_tag(view: ChartView, charts: list[list[str]]) -> str:
    """The tag value: the state deflated (``deflate;`` + base64 of zlib, as the UI's pako writes it), in the
    named envelope where the UI lists saved views."""
    state = json.dumps(_view_state(view, charts), separators=(",", ":"))
    blob = "deflate;" + base64.b64encode(zlib.compress(state.encode(), 9)).decode("ascii")
    if _version(MLFLOW_VERSION) < VIEW_ENVELOPE_SINCE:
        return blob
    now = int(time.time() * 1000)
    return json.dumps({"name": view.name, "createdAt": now, "updatedAt": now, "state": blob})


def _version(text: str) -> tuple[int, int]:
    """(major, minor) of a version string such as ``3.17.2`` or ``3.15.0rc1``."""
    major, minor = (re.findall(r"\d+", text) + ["0", "0"])[:2]
    return int(major), int(minor)


def _record(run: Run) -> RunRecord:
    return RunRecord(
        run_id=run.info.run_id, experiment_id=run.info.experiment_id, name=run.info.run_name or "",
        status=run.info.status, start_time=run.info.start_time, tags=dict(run.data.tags),
        params=dict(run.data.params), metrics=dict(run.data.metrics),
    )  # fmt: skip


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)

