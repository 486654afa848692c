"""Shared fixtures: quiet Ray defaults, a micro study spec, one cached digits classifier per session."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("RAY_TRAIN_ENABLE_V2_MIGRATION_WARNINGS", "0")
os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

REPO = Path(__file__).resolve().parents[1]


def micro_spec(name: str = "micro", **overrides: Any) -> dict[str, Any]:
    """A study that trains in seconds: 8x8 digits, T=50, a 16-channel U-Net, 2 epochs, 40 samples."""
    spec: dict[str, Any] = {
        "name": name,
        "dataset": {"kind": "digits", "resolution": 8},
        "dynamics": {"kind": "ddpm", "timesteps": 50},
        "network": {
            "kind": "ddpm_unet", "channels": 16, "channel_mult": [1, 2], "num_res_blocks": 1,
            "attention_resolutions": [], "dropout": 0.0, "norm_groups": 8,
        },
        "training": {"epochs": 2, "batch_size": 256, "lr": 2e-3, "eval_every": 1},
        "evaluation": {
            "num_samples": 40, "batch_size": 40, "grid_images": 16,
            "samplers": [{"kind": "ancestral", "steps": 5}, {"kind": "ddim", "steps": 3}],
        },
        "grid": {"dynamics.schedule": [{"kind": "linear"}, {"kind": "cosine"}]},
    }  # fmt: skip
    for dotted, value in overrides.items():
        node = spec
        *parents, last = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[last] = value
    return spec


def sqlite_trial_runtime(tmp_path: Path, name: str, weights: Path) -> tuple[Any, Any, str]:
    """A trial's ``Runtime`` logging into a fresh SQLite MLflow store under ``tmp_path`` (a parent run made for it),
    with the client and the trial's experiment id."""
    import uuid

    from mlflow import MlflowClient

    from trainables.trainable import Runtime

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    eid = client.create_experiment(name, artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(eid, tags={"study.role": "parent"}).info.run_id
    runtime = Runtime(uri, eid, parent, uuid.uuid4().hex[:8], name, str(tmp_path), str(tmp_path / "cache"),
                      extractor_weights=str(weights), log_images=False)  # fmt: skip
    return runtime, client, eid


def write_spec(path: Path, spec: dict[str, Any]) -> Path:
    import json

    path.write_text(json.dumps(spec))  # JSON is YAML 1.2
    return path


@pytest.fixture(scope="session")
def classifier_r8() -> tuple[Path, float]:
    """The shipped digits-cnn weights at 8x8 (what every digits study scores with)."""
    from trainables.digits_classifier import shipped_digits_classifier

    return shipped_digits_classifier(8)


@pytest.fixture
def one_thread():
    """Small tensors: on 2 cores, threading overhead dominates, so these tests run single-threaded."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve_mlflow(command: str, args: list[str], cwd: Path | None = None, port: int | None = None) -> Iterator[str]:
    """A real ``mlflow server`` / ``mlflow ui`` on 127.0.0.1 and a free port, in its lean mode (1 worker, no job
    runner), up when /health answers and stopped (its whole process group) afterwards; yields its base URL."""
    port = port or free_port()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", command, *args, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600  # only stops a server that never answers; wide for a busy machine
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"mlflow {command} did not come up") from None
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
