"""Ctrl-C at any moment of ``python -m study run`` ends it cleanly: one line saying what was saved and how to resume,
exit status 130, no traceback, no Ray process left behind; running the same command again resumes to completion
with exactly one point per (metric, step).

Ctrl-C is sent as a terminal sends it: SIGINT to the driver's whole process group. Each driver gets its own Ray
temporary directory (``RAY_TMPDIR``), so the Ray processes it started are told apart from any other Ray on the
machine by that variable in their environment.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from conftest import write_spec
from mlflow import MlflowClient
from test_resume_kills import _assert_exact, _points, _spec

from study.sample_size import trial_directory

pytestmark = [pytest.mark.integration, pytest.mark.slow]
HANG_S = 900  # only stops a driver that never ends; wide for a busy machine, never a measure of speed
GRACE_S = 60  # Ray processes get this long to be gone after the driver exited
STAGES = ("pre-flight checks", "data", "IS extractor", "reference scores", "guidance classifiers", "tracking",
          "Ray start-up")  # fmt: skip


def _ray_processes(ray_tmp: str) -> list[str]:
    """Processes started with this test's RAY_TMPDIR (the driver, Ray's GCS server, raylet and workers)."""
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        try:
            if p.environ().get("RAY_TMPDIR") == ray_tmp:
                found.append(f"{p.pid} {' '.join(p.info['cmdline'] or [])[:160]}")
        except psutil.Error:
            continue
    return found


def _start(tmp_path: Path, spec: Path, ray_tmp: str, n: int, merged: bool = False) -> subprocess.Popen:
    """The real CLI; ``merged``: stdout and stderr in one file (``out<n>.log``), in the order they were written."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"} | {"RAY_TMPDIR": ray_tmp}
    out = (tmp_path / f"out{n}.log").open("w")
    return subprocess.Popen([sys.executable, "-u", "-m", "study", "run", str(spec)], cwd=tmp_path, env=env,
                            start_new_session=True, stdout=out,
                            stderr=subprocess.STDOUT if merged else (tmp_path / f"err{n}.log").open("w"))  # fmt: skip


def _wait_until(condition, proc: subprocess.Popen, what: str) -> None:
    deadline = time.monotonic() + HANG_S
    while not condition():
        assert proc.poll() is None, f"the driver exited ({proc.returncode}) before {what}"
        if time.monotonic() > deadline:  # a hang guard, not a timing check
            pytest.fail(f"no {what} (stuck?)")
        time.sleep(0.1)


def _ctrl_c_and_check(tmp_path: Path, proc: subprocess.Popen, ray_tmp: str, n: int) -> str:
    os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    try:
        code = proc.wait(timeout=HANG_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    out, err = (tmp_path / f"out{n}.log").read_text(), (tmp_path / f"err{n}.log").read_text()
    assert code == 130, (code, out[-2000:], err[-3000:])
    assert "Traceback" not in err and "Traceback" not in out, err[-3000:]
    assert "interrupted during " in err and "Resume with: python -m study run " in err, err[-3000:]
    assert "finished: " not in out  # never reported as a study that ended
    deadline = time.monotonic() + GRACE_S
    while (left := _ray_processes(ray_tmp)) and time.monotonic() < deadline:
        time.sleep(1)
    assert not left, f"Ray processes outlived the driver: {left}"
    return err


def test_ctrl_c_during_ray_start_up_and_during_trials_then_resume(tmp_path: Path) -> None:
    # a trial name with parentheses, as the quickstart's: Ray Tune spells its folder differently
    spec = write_spec(tmp_path / "ctrlc.yaml", _spec("ctrlc") | {
        "grid": {"dynamics.schedule": [{"kind": "linear", "scale": 1.0}, {"kind": "cosine"}]}})  # fmt: skip
    ray_tmp = tempfile.mkdtemp(prefix="r", dir="/tmp")  # short: Ray's socket paths must fit in 107 bytes
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")

    # 1. during Ray's start-up: its GCS server exists, the trials do not
    proc = _start(tmp_path, spec, ray_tmp, 1)
    _wait_until(lambda: any("gcs_server" in p for p in _ray_processes(ray_tmp)), proc, "Ray start-up")
    err = _ctrl_c_and_check(tmp_path, proc, ray_tmp, 1)
    assert "interrupted during Ray start-up" in err or "interrupted during trials" in err, err[-2000:]

    # 2. during the trials: some epochs are logged
    proc = _start(tmp_path, spec, ray_tmp, 2)
    _wait_until(lambda: _points(client, "ctrlc") >= 2, proc, "logged epoch")
    err = _ctrl_c_and_check(tmp_path, proc, ray_tmp, 2)
    assert "interrupted during trials" in err and "checkpoints" in err, err[-2000:]

    # 3. the same command again resumes to the end; every start-up stage said how long it took before the first epoch
    proc = _start(tmp_path, spec, ray_tmp, 3, merged=True)
    assert proc.wait(timeout=HANG_S * 2) == 0, (tmp_path / "out3.log").read_text()[-3000:]
    lines = (tmp_path / "out3.log").read_text().splitlines()
    assert not any("Traceback" in line for line in lines)
    first_epoch = next(i for i, line in enumerate(lines) if " epoch " in line)
    for stage in STAGES:
        (at,) = [i for i, line in enumerate(lines) if re.search(rf"stage {stage} done in \d+\.\d s$", line)]
        assert at < first_epoch, (stage, lines[: first_epoch + 1])
    _assert_exact(client, "ctrlc")
    tune = tmp_path / "studies" / "ctrlc" / "tune"
    folder = trial_directory(tune, "t0_schedule=linear(scale=1)")
    assert folder.name == "t0_schedule=linear_scale=1_" and any(folder.glob("checkpoint_*/state.pt"))
