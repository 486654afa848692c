"""MLflow logging from inside a trial: one child run per trial, continued (not forked) after a restore.

Everything goes through ``MlflowClient`` with an explicit run id (no fluent global state), and writes
are retried because several trials share one SQLite file by default ("database is locked").
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

log = logging.getLogger(__name__)
T = TypeVar("T")

# Child-run tags (the analysis reads them back; see analysis/runs.py)
TAG_STUDY, TAG_ROLE, TAG_TRIAL, TAG_AXES, TAG_STATUS = (
    "study.name",
    "study.role",
    "study.trial",
    "study.axes",
    "study.status",
)
TAG_INSTANCE, TAG_PARENT = "study.instance", "mlflow.parentRunId"


def retry(fn: Callable[[], T], attempts: int = 8, delay: float = 0.25) -> T:
    """Call ``fn`` with exponential back-off: SQLite allows one writer at a time."""
    for i in range(attempts):
        try:
            return fn()
        except Exception as e:  # noqa: BLE001 - MLflow wraps SQLAlchemy errors in several types
            if i == attempts - 1:
                raise
            log.debug("MLflow write failed (%s); retrying", e)
            time.sleep(delay * 2**i)
    raise AssertionError("unreachable")


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config -> {"training.lr": "0.002", ...}; lists become JSON (MLflow params are strings)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out |= flatten(v, key + ".")
        else:
            out[key] = json.dumps(v) if isinstance(v, list | tuple) else str(v)
    return out


class TrialRun:
    """The child run of one trial."""

    def __init__(self, client: MlflowClient, run_id: str):
        self.client = client
        self.run_id = run_id

    @classmethod
    def open(
        cls,
        tracking_uri: str,
        experiment_id: str,
        parent_run_id: str,
        instance: str,
        study: str,
        trial: str,
        axes: dict[str, str],
        params: dict[str, Any],
        run_id: str | None = None,
    ) -> TrialRun:
        """Continue ``run_id`` (from the checkpoint) or the run this study instance made for the trial,
        else create it. A trial that crashed before its first checkpoint thus still reuses its run."""
        client = MlflowClient(tracking_uri)
        if run_id is None:
            found = retry(
                lambda: client.search_runs(
                    [experiment_id],
                    filter_string=f"tags.`{TAG_INSTANCE}` = '{instance}' and tags.`{TAG_TRIAL}` = '{trial}'",
                    max_results=1,
                )
            )
            run_id = found[0].info.run_id if found else None
        if run_id is None:
            tags = {
                TAG_PARENT: parent_run_id, TAG_STUDY: study, TAG_ROLE: "trial", TAG_TRIAL: trial,
                TAG_AXES: json.dumps(list(axes)), TAG_INSTANCE: instance, TAG_STATUS: "running",
            } | {f"axis.{k}": v for k, v in axes.items()}  # fmt: skip
            run = retry(lambda: client.create_run(experiment_id, run_name=trial, tags=tags))
            run_id = run.info.run_id
            flat = flatten(params)
            batch = [Param(k, v[:6000]) for k, v in flat.items()]
            for i in range(0, len(batch), 100):
                retry(lambda i=i: client.log_batch(run_id, params=batch[i : i + 100]))
        else:
            retry(lambda: client.update_run(run_id, status="RUNNING"))
            retry(lambda: client.set_tag(run_id, TAG_STATUS, "running"))
        return cls(client, run_id)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()]
        retry(lambda: self.client.log_batch(self.run_id, metrics=batch))

    def set_tags(self, tags: dict[str, str]) -> None:
        retry(lambda: self.client.log_batch(self.run_id, tags=[RunTag(k, v) for k, v in tags.items()]))

    def log_image(self, image: np.ndarray, key: str, step: int) -> None:
        retry(lambda: self.client.log_image(self.run_id, image, key=key, step=step))

    def finish(self, status: str, study_status: str) -> None:
        """``status``: MLflow run status (FINISHED/FAILED/KILLED); ``study_status``: finished/diverged/errored."""
        self.set_tags({TAG_STATUS: study_status})
        retry(lambda: self.client.set_terminated(self.run_id, status=status))
