"""Exact resume under kills: after SIGKILLs of the driver, or of a trial's worker process, at random moments, every
metric key of every trial holds exactly one point per step, no step is missing, and the trial's run says how many
times its process started.

Checkpoints come every 3 epochs while evaluations come every 2, so most kills land after epochs that were logged
but not checkpointed: those epochs are replayed on resume, and the tracking seam must not log them twice.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from conftest import micro_spec, write_spec
from mlflow import MlflowClient

from study.runner import run_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]
EPOCHS = 16


def _spec(name: str) -> dict:
    return micro_spec(name, **{"training.epochs": EPOCHS, "training.eval_every": 2, "training.checkpoint_every": 3,
                               "resources.max_failures": 6, "evaluation.samplers": [{"kind": "ddim", "steps": 3}],
                               "evaluation.inception_score": {"bootstrap": 50, "infinity_points": 3}})  # fmt: skip


def _trial_runs(client: MlflowClient, experiment: str) -> list:
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    return [r for r in client.search_runs([exp.experiment_id]) if r.data.tags.get("study.role") == "trial"]


def _points(client: MlflowClient, experiment: str) -> int:
    try:
        return sum(len(client.get_metric_history(r.info.run_id, "train/loss")) for r in _trial_runs(client, experiment))
    except Exception:  # noqa: BLE001 - the store may not exist yet
        return 0


def _start_driver(tmp_path: Path, spec: Path) -> subprocess.Popen:
    code = f"from study.runner import run_study; run_study({str(spec)!r}, storage={str(tmp_path / 'studies')!r})"
    return subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "driver.log").open("a"),
                            env=os.environ.copy())  # fmt: skip


def _wait_for_points(client: MlflowClient, experiment: str, more_than: int, proc: subprocess.Popen) -> int:
    deadline = time.time() + 900  # only stops a stuck driver; wide for a busy machine
    while time.time() < deadline and proc.poll() is None:
        n = _points(client, experiment)
        if n > more_than:
            return n
        time.sleep(0.2)
    raise AssertionError(f"the driver made no progress (exit {proc.poll()}); see driver.log")


def _assert_exact(client: MlflowClient, experiment: str) -> dict[str, int]:
    """Every key of every trial run: one point per step; train/loss at every epoch. Returns starts by trial."""
    runs = _trial_runs(client, experiment)
    assert len(runs) == 2, "one run per trial: continued, never forked"
    starts = {}
    for run in runs:
        for key in run.data.metrics:
            steps = Counter(m.step for m in client.get_metric_history(run.info.run_id, key))
            assert max(steps.values()) == 1, (run.data.tags["study.trial"], key, steps)
        loss = sorted(m.step for m in client.get_metric_history(run.info.run_id, "train/loss"))
        assert loss == list(range(1, EPOCHS + 1)), loss
        is_steps = sorted(m.step for m in client.get_metric_history(run.info.run_id, "is/digits-cnn/n40/ddim-3/mean"))
        assert is_steps == list(range(2, EPOCHS + 1, 2)), is_steps
        starts[run.data.tags["study.trial"]] = int(run.data.tags["study.starts"])
    return starts


def test_driver_killed_three_times_at_random_moments(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(tmp_path / "kills.yaml", _spec("kills"))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    rng = random.Random(7)
    seen = 0
    for _ in range(3):
        proc = _start_driver(tmp_path, spec)
        try:
            seen = _wait_for_points(client, "kills", seen, proc)
            time.sleep(rng.uniform(0.2, 1.5))  # somewhere in an epoch, an evaluation or a checkpoint
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=120)
        seen = _points(client, "kills")
        assert seen < 2 * EPOCHS, "the study finished before the kill: kill sooner"
    outcome = run_study(spec, storage=tmp_path / "studies")
    assert sorted(outcome.finished) == ["t0_schedule=linear", "t1_schedule=cosine"]
    starts = _assert_exact(client, "kills")
    assert max(starts.values()) >= 3, starts  # the kills landed on running trials
    compute = (tmp_path / "studies" / "kills" / "report" / "compute.csv").read_text()
    assert "starts" in compute.splitlines()[0]


def _trial_workers(driver: int) -> list[psutil.Process]:
    """This test's trial workers: descendants of its own driver only (never another study's on the machine)."""
    out = []
    for p in psutil.Process(driver).children(recursive=True):
        try:
            cmd = " ".join(p.cmdline())
        except psutil.Error:
            continue
        if cmd.startswith("ray::ImplicitFunc") and ".train" in cmd:
            out.append(p)
    return out


def test_trial_processes_killed_three_times_are_retried_from_their_checkpoints(
    tmp_path: Path, monkeypatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(tmp_path / "crash.yaml", _spec("crash"))
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    rng = random.Random(11)
    proc = _start_driver(tmp_path, spec)
    kills = 0
    try:
        seen = 0
        while kills < 3:
            seen = _wait_for_points(client, "crash", seen, proc)
            time.sleep(rng.uniform(0.2, 2.0))
            workers = _trial_workers(proc.pid)
            if workers and _points(client, "crash") < 2 * EPOCHS - 2:
                rng.choice(workers).kill()
                kills += 1
        assert proc.wait(timeout=1800) == 0, (tmp_path / "driver.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    starts = _assert_exact(client, "crash")
    assert sum(starts.values()) == 2 + kills, starts  # every retry is visible on its run
