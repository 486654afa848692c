"""Whole studies through a real local Ray and real MLflow stores (SQLite file, and an `mlflow server`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import micro_spec, serve_mlflow, write_spec
from mlflow import MlflowClient

from study.runner import run_study

pytestmark = pytest.mark.integration


def _children(client: MlflowClient, experiment: str) -> tuple[list, list]:
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if r.data.tags.get("study.role") == "parent"]
    children = [r for r in runs if r.data.tags.get("study.role") == "trial"]
    return parents, children


def test_micro_study_end_to_end_then_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
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


def test_diverging_trial_is_marked_and_the_study_goes_on(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = micro_spec(
        "diverge", grid={"training.lr": [2e-3, 10.0]}, **{"training.epochs": 1, "training.grad_clip": None}
    )
    outcome = run_study(write_spec(tmp_path / "d.yaml", spec), storage=tmp_path / "studies", write_report=False)
    assert outcome.finished == ["t0_lr=0.002"] and outcome.diverged == ["t1_lr=10"]
    assert outcome.exit_code == 0
    _, children = _children(MlflowClient(f"sqlite:///{tmp_path}/mlflow.db"), "diverge")
    status = {r.data.tags["study.trial"]: r.data.tags["study.status"] for r in children}
    assert status == {"t0_lr=0.002": "finished", "t1_lr=10": "diverged"}


def _rest(base: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(base + path, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


@pytest.fixture
def mlflow_server(tmp_path: Path) -> Iterator[str]:
    """A real `mlflow server` on 127.0.0.1 in its lean mode, stopped afterwards."""
    args = ["--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination",
            str(tmp_path / "server-artifacts")]  # fmt: skip
    with serve_mlflow("server", args) as base:
        yield base


def test_micro_study_against_an_mlflow_server(tmp_path: Path, mlflow_server: str, monkeypatch) -> None:
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


def _stop_spec(name: str) -> dict:
    """Two flat trials (lr 1e-9): t0 may stop as soon as the rule allows (plateaued from epoch 3, three looks in a
    row: epoch 5), t1 not before epoch 6."""
    return micro_spec(
        name, grid={"training.stop.min_epochs": [0, 6]},
        **{"training.lr": 1e-9, "training.epochs": 10, "training.stop": {},
           "evaluation.samplers": [{"kind": "ddim", "steps": 3}],
           "evaluation.inception_score": {"bootstrap": 100, "infinity_points": 5}},
    )  # fmt: skip


def _loss_steps(client: MlflowClient, experiment: str, trial: str) -> list[int]:
    _, children = _children(client, experiment)
    runs = [r for r in children if r.data.tags["study.trial"] == trial]
    return sorted({m.step for r in runs for m in client.get_metric_history(r.info.run_id, "train/loss")})


@pytest.mark.slow
def test_killed_study_resumes_with_its_stopping_decisions(tmp_path: Path, monkeypatch) -> None:
    """A real Ray Tune study whose driver is SIGKILLed mid-run: t0 has converged (stopped at epoch 5), t1 is
    running. Resumed, t0 stays converged and is not retrained; t1 continues from its checkpoint and, deciding from
    the evaluations it logged before the kill, stops at epoch 6 exactly as an uninterrupted run does."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = write_spec(tmp_path / "stop.yaml", _stop_spec("stopping"))
    code = f"from study.runner import run_study; run_study({str(spec)!r}, storage={str(tmp_path / 'studies')!r})"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=(tmp_path / "driver.log").open("w"),
                            env=os.environ.copy())  # fmt: skip
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    t0, t1 = "t0_min_epochs=0", "t1_min_epochs=6"
    deadline = time.time() + 900  # only stops a stuck driver; wide for a busy machine
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.3)
            try:
                steps = _loss_steps(client, "stopping", t1)
                _, children = _children(client, "stopping")
            except Exception:  # noqa: BLE001 - the store may not exist yet
                continue
            done = {r.data.tags["study.trial"]: r.data.tags["study.status"] for r in children}
            if done.get(t0) == "converged" and 3 <= len(steps) <= 5:
                break
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "driver.log").read_text()[-3000:]
    assert _loss_steps(client, "stopping", t1)[-1] < 6, "the driver was not killed before t1 could stop"

    outcome = run_study(spec, storage=tmp_path / "studies")
    assert outcome.converged == [t0, t1] or sorted(outcome.converged) == sorted([t0, t1])
    _, children = _children(client, "stopping")
    tags = {r.data.tags["study.trial"]: r.data.tags for r in children}
    assert len(children) == 2  # continued, not forked
    assert tags[t0]["study.stop.epoch"] == "5" and tags[t1]["study.stop.epoch"] == "6"
    assert _loss_steps(client, "stopping", t0) == [1, 2, 3, 4, 5]
    assert _loss_steps(client, "stopping", t1) == list(range(1, 7))

    saved = (tmp_path / "studies" / "stopping" / "report" / "early_stopping.csv").read_text().splitlines()
    assert saved[0].startswith("trial,status,epoch_budget,epochs_trained,stopped_by,epochs_saved")
    assert any(line.startswith(f"{t0},converged,10,5,plateau,5,5,") for line in saved), saved
    assert any(line.startswith(f"{t1},converged,10,6,plateau,4,4,") for line in saved), saved
    html = (tmp_path / "studies" / "stopping" / "report" / "index.html").read_text()
    assert "Early stopping" in html and "plateaued" in html


def test_every_cached_artefact_lands_under_the_documented_cache(tmp_path: Path, monkeypatch) -> None:
    """With STUDY_CACHE_DIR unset, the FID reference features (trials) go to <storage>/.cache (README), none to
    <storage>/.data, and no IS classifier is trained; the driver's environment is left as it was."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("STUDY_CACHE_DIR", raising=False)
    spec = micro_spec("cached", grid={"dynamics.schedule": [{"kind": "cosine"}]},
                      **{"training.epochs": 1, "evaluation.inception_score": {"extra_metrics": ["fid"]}})  # fmt: skip
    outcome = run_study(write_spec(tmp_path / "c.yaml", spec), storage=tmp_path / "studies", write_report=False)
    assert outcome.finished == ["t0_schedule=cosine"]
    cache = tmp_path / "studies" / ".cache"
    assert list((cache / "reference").glob("digits-*-128.pt"))
    assert not list(cache.glob("digits-cnn-*.pt"))  # digits-cnn is the shipped classifier: no study trains one
    data = tmp_path / "studies" / ".data"
    assert not data.exists() or not any(p.is_file() for p in data.rglob("*"))
    assert "STUDY_CACHE_DIR" not in os.environ
