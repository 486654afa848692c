"""Whole studies through a real local Ray and real MLflow stores (SQLite file, and an `mlflow server`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import free_port, micro_spec, write_spec
from mlflow import MlflowClient

from study.runner import run_study

pytestmark = pytest.mark.integration


def _children(client: MlflowClient, experiment: str) -> tuple[list, list]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("study.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("study.role") == "trial"]
    return parents, children


def test_micro_study_end_to_end_then_resume(tmp_path: Path, cache_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(tmp_path / "micro.yaml", micro_spec("e2e"))
    outcome = run_study(spec, storage=tmp_path / "studies")
    assert sorted(outcome.finished) == ["t0_schedule=linear", "t1_schedule=cosine"]
    assert outcome.exit_code == 0 and not outcome.errored

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")  # mlflow.yaml default, made absolute
    parents, children = _children(client, "e2e")
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.metrics["reference/is/digits-cnn/n40/real/mean"] > parent.data.metrics[
        "reference/is/digits-cnn/n40/noise/mean"]  # fmt: skip
    for child in children:
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        for sampler in ("ancestral-5", "ddim-3"):
            hist = client.get_metric_history(child.info.run_id, f"is/digits-cnn/n40/{sampler}/mean")
            assert [m.step for m in hist] == [1, 2] and all(m.value >= 1.0 for m in hist)
    artifacts = [a.path for a in client.list_artifacts(parent.info.run_id)]
    assert {"spec", "report", "environment.json"} <= set(artifacts)

    report = tmp_path / "studies" / "e2e" / "report"
    assert (report / "index.html").is_file() and (report / "figures" / "is_vs_epoch.png").stat().st_size > 10_000
    convergence = (report / "convergence.csv").read_text()
    assert "ancestral-5" in convergence and "t1_schedule=cosine" in convergence

    # Running the same spec again resumes (here: finds every trial done) and creates no new runs.
    again = run_study(spec, storage=tmp_path / "studies", write_report=False)
    assert sorted(again.finished) == sorted(outcome.finished)
    parents2, children2 = _children(client, "e2e")
    assert {r.info.run_id for r in children2} == {r.info.run_id for r in children} and len(parents2) == 1


def test_diverging_trial_is_marked_and_the_study_goes_on(tmp_path: Path, cache_dir: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = micro_spec(
        "diverge", grid={"training.lr": [2e-3, 1e30]}, **{"training.epochs": 1, "training.grad_clip": None}
    )
    outcome = run_study(write_spec(tmp_path / "d.yaml", spec), storage=tmp_path / "studies", write_report=False)
    assert outcome.finished == ["t0_lr=0.002"] and outcome.diverged == ["t1_lr=1e+30"]
    assert outcome.exit_code == 0
    _, children = _children(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), "diverge")
    status = {r.data.tags["study.trial"]: r.data.tags["study.status"] for r in children}
    assert status == {"t0_lr=0.002": "finished", "t1_lr=1e+30": "diverged"}


def _rest(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def mlflow_server(tmp_path: Path):
    """A real `mlflow server` on 127.0.0.1 in its lean mode (1 worker, no job runner), stopped afterwards."""
    port = free_port()
    env = os.environ | {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{tmp_path}/server.db",
         "--artifacts-destination", str(tmp_path / "server-artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            try:
                with urllib.request.urlopen(base + "/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("mlflow server did not come up") from None
                time.sleep(0.5)
        yield base
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)


def test_micro_study_against_an_mlflow_server(tmp_path: Path, cache_dir: Path, mlflow_server: str, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server)
    spec = micro_spec("served", grid={"dynamics.schedule": [{"kind": "cosine"}]}, **{"training.epochs": 2})
    outcome = run_study(write_spec(tmp_path / "s.yaml", spec), storage=tmp_path / "studies")
    assert outcome.finished == ["t0_schedule=cosine"]
    assert not (tmp_path / "mlflow.db").exists()  # everything went to the server

    exps = _rest(mlflow_server, "/api/2.0/mlflow/experiments/search", {"max_results": 50})["experiments"]
    (exp,) = [e for e in exps if e["name"] == "served"]
    runs = _rest(mlflow_server, "/api/2.0/mlflow/runs/search", {"experiment_ids": [exp["experiment_id"]]})["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"]["tags"]} for r in runs]
    assert sorted(t["study.role"] for t in tags) == ["parent", "trial"]
    child = next(r for r, t in zip(runs, tags, strict=True) if t["study.role"] == "trial")
    key = "is/digits-cnn/n40/ddim-3/mean"
    hist = _rest(
        mlflow_server, f"/api/2.0/mlflow/metrics/get-history?run_id={child['info']['run_id']}&metric_key={key}"
    )
    assert [m["step"] for m in hist["metrics"]] == [1, 2]
    arts = _rest(mlflow_server, f"/api/2.0/mlflow/artifacts/list?run_id={child['info']['run_id']}")
    assert any(f["path"] == "images" for f in arts.get("files", []))
