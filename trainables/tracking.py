"""MLflow logging from inside a trial: one child run per trial, continued (not forked) after a restore.

Everything goes through ``MlflowClient`` with an explicit run id (no fluent global state), and writes
are retried because several trials share one SQLite file by default ("database is locked").
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from study.keys import (
    MLFLOW_RUN_STATUS,
    TAG_AXES,
    TAG_DESCRIPTION,
    TAG_INSTANCE,
    TAG_PARENT,
    TAG_ROLE,
    TAG_STATUS,
    TAG_STUDY,
    TAG_TRIAL,
    Status,
    axis_tag,
)

log = logging.getLogger(__name__)
T = TypeVar("T")



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
            } | {axis_tag(k): v for k, v in axes.items()}  # fmt: skip
            short, long = split_params(flatten(params))
            run = retry(lambda: client.create_run(experiment_id, run_name=trial, tags=long | tags))
            run_id = run.info.run_id
            batch = [Param(k, v) for k, v in short.items()]
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

    def log_dict(self, data: dict[str, Any], path: str) -> None:
        retry(lambda: self.client.log_dict(self.run_id, data, path))

    def log_arrays(self, path: str, **arrays: np.ndarray) -> None:
        """Arrays as one compressed ``.npz`` artifact at ``path`` (a folder/file.npz); re-logging replaces it."""
        folder, name = path.rsplit("/", 1)
        with tempfile.TemporaryDirectory() as d:
            target = Path(d) / name
            buf = io.BytesIO()
            np.savez_compressed(buf, **arrays)
            target.write_bytes(buf.getvalue())
            retry(lambda: self.client.log_artifact(self.run_id, str(target), folder))

    def load_arrays(self, folder: str) -> dict[str, dict[str, np.ndarray]]:
        """{file name: {array name: array}} of the ``.npz`` artifacts directly under ``folder`` (empty if none)."""
        return load_run_arrays(self.client, self.run_id, folder)

    def finish(self, status: Status) -> None:
        """Set the study status (study/keys.py) and end the MLflow run with the matching run status."""
        self.set_tags({TAG_STATUS: status})
        retry(lambda: self.client.set_terminated(self.run_id, status=MLFLOW_RUN_STATUS[status]))


def load_run_arrays(client: MlflowClient, run_id: str, folder: str) -> dict[str, dict[str, np.ndarray]]:
    """{file name: arrays} of a run's ``.npz`` artifacts under ``folder``, read once into memory."""
    files = [f for f in retry(lambda: client.list_artifacts(run_id, folder)) if f.path.endswith(".npz")]
    if not files:
        return {}
    out = {}
    with tempfile.TemporaryDirectory() as d:
        local = Path(retry(lambda: client.download_artifacts(run_id, folder, d)))
        for f in files:
            with np.load(local / Path(f.path).name) as z:
                out[Path(f.path).name] = {k: z[k] for k in z.files}
    return out
