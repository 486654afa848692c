"""Concurrent trials logging through the run-side tracking class lose and duplicate nothing.

``TRIALS`` processes (as Ray runs concurrent trials: separate processes, one client each) open their child runs with
``TrialRun.open`` and log ``STEPS`` steps of ``KEYS`` metrics each, one batch per step, into one store: a shared
SQLite file (one writer at a time: "database is locked" is retried) and a real ``mlflow server``. Every point is
then counted per run and key: each step exactly once with the value that was logged for it.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import serve_mlflow
from mlflow import MlflowClient

from study.contract.runlog import TrialRun
from study.contract.store import connect

TRIALS = 4
STEPS = 500
KEYS = ("train/loss", "train/grad_norm", "train/lr", "is/digits-cnn/n40/ddim-3/mean")


def _value(trial: int, key: int, step: int) -> float:
    """A distinct value per point, so a point logged under the wrong step or run would be caught too."""
    return trial * 1e6 + key * 1e4 + step


def _log_trial(tracking_uri: str, experiment_id: str, trial: int) -> str:
    """One trial process: open (create) its child run and log every step; returns the run id."""
    run = TrialRun.open(
        connect(tracking_uri), experiment_id, parent_run_id="parent", instance="concurrency", study="concurrency",
        trial=f"t{trial}", axes={"trial": str(trial)}, params={"trial": trial},
    )  # fmt: skip
    for step in range(STEPS):
        run.log_metrics({k: _value(trial, i, step) for i, k in enumerate(KEYS)}, step)
    run.finish("finished")
    return run.run_id


@pytest.fixture(params=["sqlite", "server"])
def tracking_uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/mlflow.db"
        return
    args = ["--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination",
            str(tmp_path / "server-artifacts")]  # fmt: skip
    with serve_mlflow("server", args) as base:
        yield base


@pytest.mark.integration
@pytest.mark.slow
def test_concurrent_trials_lose_and_duplicate_no_point(tracking_uri: str) -> None:
    client = MlflowClient(tracking_uri)
    experiment_id = client.create_experiment("concurrency")  # also creates the SQLite schema before the writers race
    # fork: the workers need nothing but this module's function and a fresh client each (created inside the child)
    with multiprocessing.get_context("fork").Pool(TRIALS) as pool:
        run_ids = pool.starmap(_log_trial, [(tracking_uri, experiment_id, t) for t in range(TRIALS)])

    runs = client.search_runs([experiment_id])
    assert sorted(r.info.run_id for r in runs) == sorted(run_ids) and len(set(run_ids)) == TRIALS
    total = 0
    for trial, run_id in enumerate(run_ids):
        assert client.get_run(run_id).info.status == "FINISHED"
        for i, key in enumerate(KEYS):
            history = client.get_metric_history(run_id, key)
            points = sorted((m.step, m.value) for m in history)
            assert points == [(s, _value(trial, i, s)) for s in range(STEPS)], (trial, key, len(points))
            total += len(history)
    assert total == TRIALS * STEPS * len(KEYS)
