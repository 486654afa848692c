"""The tracking seam: one contract, two backends (in memory and a real MLflow SQLite store), exact resume, outages.

The same test functions run against ``MemoryTracker`` and ``MlflowTracker``; what the trial and analysis rely on
is written here once: runs found by tags, params that never change, full metric histories, artifacts by folder,
step-indexed images, each (key, step) logged once by a reopened ``TrialRun``, and writes spooled during an outage.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from study.contract import keys
from study.contract.experiment import ensure_experiment
from study.contract.keys import parse_image_file
from study.contract.memory_backend import MemoryTracker
from study.contract.runlog import Spool, TrialRun, load_run_arrays, replay_spools
from study.contract.store import connect
from study.contract.tracking import Tracker

AXES = {"schedule": "cosine"}


@pytest.fixture(params=["memory", "mlflow"])
def tracker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Tracker]:
    if request.param == "memory":
        yield MemoryTracker()
    else:
        yield connect(f"sqlite:///{tmp_path}/mlflow.db")


def _experiment(tracker: Tracker, tmp_path: Path) -> str:
    return ensure_experiment(tracker, "seam", str(tmp_path / "artifacts"))


def _open(tracker: Tracker, eid: str, run_id: str | None = None, spool: Path | None = None) -> TrialRun:
    params = {"training": {"lr": 0.001, "epochs": 3}, "evaluation": {"samplers": ["ddim"] * 100}}
    return TrialRun.open(tracker, eid, "parent", "inst", "seam", "t0", AXES, params, run_id, spool, attempts=2)


def test_experiments_runs_params_and_tags(tracker: Tracker, tmp_path: Path) -> None:
    eid = _experiment(tracker, tmp_path)
    assert ensure_experiment(tracker, "seam", None) == eid  # found, not created twice
    assert "seam" in tracker.experiment_names()
    run = _open(tracker, eid)
    record = tracker.run(run.run_id)
    assert record.params["training.lr"] == "0.001" and "evaluation.samplers" in record.tags  # long value: a tag
    assert record.tags["axis.schedule"] == "cosine" and record.tags["study.status"] == "running"
    assert tracker.find_runs(eid, {"study.instance": "inst", "study.trial": "t0"}) == [run.run_id]
    assert _open(tracker, eid).run_id == run.run_id  # the same instance and trial reuse their run
    run.finish("converged")
    record = tracker.run(run.run_id)
    assert record.status == "FINISHED" and record.tags["study.status"] == "converged"


def test_histories_artifacts_and_images(tracker: Tracker, tmp_path: Path) -> None:
    eid = _experiment(tracker, tmp_path)
    run = _open(tracker, eid)
    for epoch in (1, 2, 3):
        run.log_metrics({"train/loss": 1.0 / epoch, "is/x/n4/ddim-3/mean": float(epoch)}, epoch)
    history = tracker.history(run.run_id, "train/loss")
    assert sorted((p.step, p.value) for p in history) == [(1, 1.0), (2, 0.5), (3, 1 / 3)]
    assert tracker.run(run.run_id).metrics["is/x/n4/ddim-3/mean"] == 3.0
    run.log_arrays("evaluations/ddim-3/epoch-00002.npz", logits=np.arange(6.0).reshape(2, 3))
    run.log_json({"a": 1}, "guidance/ddim-3/targets.json")
    arrays = load_run_arrays(tracker, run.run_id, "evaluations/ddim-3")
    assert list(arrays) == ["epoch-00002.npz"] and arrays["epoch-00002.npz"]["logits"].shape == (2, 3)
    run.log_image(np.zeros((8, 8, 3), dtype=np.uint8), "samples/ddim-3", 2)
    images = [parse_image_file(p.rsplit("/", 1)[-1]) for p in tracker.list_artifacts(run.run_id, "images")]
    assert ("samples/ddim-3", 2) in images


def test_a_reopened_run_logs_each_step_once(tracker: Tracker, tmp_path: Path) -> None:
    """A trial restored from the checkpoint of epoch 1 replays epochs 2-3: their first points are kept, once."""
    eid = _experiment(tracker, tmp_path)
    first = _open(tracker, eid)
    for epoch in (1, 2, 3):
        first.log_metrics({"train/loss": float(epoch), "train/seconds": 10.0 * epoch}, epoch)
    copies = keys.score_image_key("memorization_pixel", "copies", "ddim-3:cfg-2.0")  # a score's image, guided
    for key in ("samples/ddim-3", copies):
        first.log_image(np.zeros((8, 8, 3), dtype=np.uint8), key, 2)
    replay = _open(tracker, eid, run_id=first.run_id)  # as after a kill: the checkpoint names the run
    for epoch in (2, 3, 4):
        replay.log_metrics({"train/loss": float(epoch), "train/seconds": 99.0}, epoch)
    for key in ("samples/ddim-3", copies):
        replay.log_image(np.zeros((8, 8, 3), dtype=np.uint8), key, 2)
    seconds = tracker.history(first.run_id, "train/seconds")
    assert sorted((p.step, p.value) for p in seconds) == [(1, 10.0), (2, 20.0), (3, 30.0), (4, 99.0)]
    assert sorted(p.step for p in tracker.history(first.run_id, "train/loss")) == [1, 2, 3, 4]
    images = [parse_image_file(p.rsplit("/", 1)[-1]) for p in tracker.list_artifacts(first.run_id, "images")]
    assert sorted(i for i in images if i) == [(copies, 2), ("samples/ddim-3", 2)]
    assert keys.parse_score_image_key(copies) == ("memorization_pixel", "copies", "ddim-3:cfg-2.0")
    assert keys.parse_score_image_key("samples/ddim-3") is None


def test_an_outage_is_spooled_and_replayed_without_duplicates(tmp_path: Path) -> None:
    store = MemoryTracker()
    eid = _experiment(store, tmp_path)
    spool = tmp_path / "spool" / "t0.jsonl"
    run = _open(store, eid, spool=spool)
    run.log_metrics({"train/loss": 1.0}, 1)
    store.fail()
    run.log_metrics({"train/loss": 0.5}, 2)  # retried (attempts=2 here), then spooled: the trial goes on
    run.log_arrays("evaluations/ddim-3/epoch-00002.npz", logits=np.ones((2, 3)))
    run.log_image(np.zeros((8, 8, 3), dtype=np.uint8), "samples/ddim-3", 2)
    run.set_tags({"study.device": "cpu"})
    assert run.unlogged() == 4 and Spool(spool).count() == 4
    store.fail(False)
    run.log_metrics({"train/loss": 0.25}, 3)  # the next write replays the spool first
    assert run.unlogged() == 0 and not spool.exists()
    assert sorted(p.step for p in store.history(run.run_id, "train/loss")) == [1, 2, 3]
    assert load_run_arrays(store, run.run_id, "evaluations/ddim-3")
    assert store.run(run.run_id).tags["study.device"] == "cpu"


def test_the_driver_replays_what_a_finished_trial_left_in_its_spool(tmp_path: Path) -> None:
    store = MemoryTracker()
    eid = _experiment(store, tmp_path)
    run = _open(store, eid, spool=tmp_path / "spool" / "t0.jsonl")
    store.fail()
    run.finish("finished")
    assert replay_spools(store, tmp_path / "spool") == {"t0": 2}  # still down: reported, kept
    store.fail(False)
    assert replay_spools(store, tmp_path / "spool") == {}
    assert store.run(run.run_id).status == "FINISHED" and store.run(run.run_id).tags["study.status"] == "finished"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connect_opens_mlflow_and_refuses_a_memory_uri(tmp_path: Path) -> None:
    """Every store a study names is an MLflow one; an in-memory store is handed over as an object, never by URI."""
    assert type(connect(f"sqlite:///{tmp_path}/m.db")).__name__ == "MlflowTracker"
    with pytest.raises(ValueError, match="pass the MemoryTracker itself"):
        connect(MemoryTracker().uri)


def test_a_tracking_server_that_is_down_is_refused(tmp_path: Path) -> None:
    """One short /health request, not MLflow's minutes of retries (how long it takes is a bench row, not a test)."""
    uri = f"http://127.0.0.1:{_free_port()}"
    problem = connect(uri).check(timeout=3.0)
    assert problem is not None and uri in problem and "not reachable" in problem
    (tmp_path / "a-file").write_text("")
    assert "a-file" in (connect(f"sqlite:///{tmp_path}/a-file/mlflow.db").check() or "")
    assert connect(f"sqlite:///{tmp_path}/mlflow.db").check() is None


def test_study_run_refuses_a_tracking_outage_before_anything_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from conftest import micro_spec, write_spec

    from study.cli import main

    uri = f"http://127.0.0.1:{_free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    spec = write_spec(tmp_path / "s.yaml", micro_spec("outage"))
    assert main(["run", str(spec), "--storage", str(tmp_path / "studies")]) == 2
    err = capsys.readouterr().err
    assert uri in err and "not reachable" in err and "Traceback" not in err
    assert not (tmp_path / "studies" / "outage").exists()  # nothing was started


@pytest.mark.integration
def test_a_real_server_outage_mid_trial_is_spooled_then_logged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real ``mlflow server`` stopped between two epochs and started again on the same port and store."""
    from conftest import free_port, serve_mlflow

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "3")
    port = free_port()
    args = ["--backend-store-uri", f"sqlite:///{tmp_path}/server.db", "--artifacts-destination", str(tmp_path / "a")]
    spool = tmp_path / "spool" / "t0.jsonl"
    with serve_mlflow("server", args, cwd=tmp_path, port=port) as base:
        tracker = connect(base)
        eid = _experiment(tracker, tmp_path)
        run = _open(tracker, eid, spool=spool)
        run.log_metrics({"train/loss": 1.0}, 1)
    run.log_metrics({"train/loss": 0.5}, 2)  # the server is down: spooled, the trial goes on
    run.log_arrays("evaluations/ddim-3/epoch-00002.npz", logits=np.ones((2, 3)))
    assert run.unlogged() == 2
    with serve_mlflow("server", args, cwd=tmp_path, port=port):
        run.log_metrics({"train/loss": 0.25}, 3)
        assert run.unlogged() == 0
        assert sorted(p.step for p in tracker.history(run.run_id, "train/loss")) == [1, 2, 3]
        assert load_run_arrays(tracker, run.run_id, "evaluations/ddim-3")


# --------------------------------------------------------------------------------------------- the chart view
def _decoded_view(tag: str) -> dict:
    """The UI state a saved-view tag holds, read the way MLflow's UI reads it (envelope, then ``deflate;``)."""
    import base64
    import json
    import zlib

    value = json.loads(tag) if tag.startswith("{") else {"state": tag}
    state = value["state"]
    if state.startswith("deflate;"):
        state = zlib.decompress(base64.b64decode(state[len("deflate;") :])).decode()
    return json.loads(state) | ({"name": value["name"]} if "name" in value else {})


def test_the_chart_view_is_the_ui_s_own_saved_view(tracker: Tracker, tmp_path: Path) -> None:
    """A chart per curve (IS mean, ci_low, ci_high) of this instance's trials against step; the primary metric set;
    rewritten in place (one view per study); a link that names it."""
    from study.contract.experiment import chart_view, logged_chart_view, save_chart_view, view_link
    from study.contract.keys import TAG_PRIMARY_METRIC, TAG_SAVED_VIEW_PREFIX

    eid = _experiment(tracker, tmp_path)
    curves = [("digits-cnn", 400, "ancestral-40"), ("digits-cnn", 400, "ddim-20")]
    view = chart_view("quickstart", "inst", curves)
    save_chart_view(tracker, eid, view)
    save_chart_view(tracker, eid, view)  # a resumed run writes it again: still one view
    tags = tracker.experiment("seam").tags
    views = [k for k in tags if k.startswith(TAG_SAVED_VIEW_PREFIX)]
    assert views == [TAG_SAVED_VIEW_PREFIX + "quickstart.is-vs-epoch"]
    assert tags[TAG_PRIMARY_METRIC] == "is/digits-cnn/n400/ancestral-40/mean"
    assert view_link("sqlite:////x/mlflow.db", eid, view.view_id) == (
        f"http://127.0.0.1:5000/#/experiments/{eid}/runs?viewStateShareKey=quickstart.is-vs-epoch"
        "&compareRunsMode=CHART")  # fmt: skip
    assert view_link("http://mlflow:5000/", eid, "v").startswith("http://mlflow:5000/#/experiments/")
    if isinstance(tracker, MemoryTracker):
        return
    tag = tags[views[0]]
    assert len(tag) <= 5000
    state = _decoded_view(tag)
    assert state.get("name", "quickstart: IS vs epoch") == "quickstart: IS vs epoch"
    assert state["searchFilter"] == "tags.`study.role` = 'trial' and tags.`study.instance` = 'inst'"
    charts = state["compareRunCharts"]
    assert [c["selectedMetricKeys"] for c in charts] == [
        [f"is/digits-cnn/n400/{ev}/{s}" for s in ("mean", "ci_low", "ci_high")] for ev in ("ancestral-40", "ddim-20")
    ]
    assert {c["type"] for c in charts} == {"LINE"} and {c["xAxisKey"] for c in charts} == {"step"}
    assert {c["metricSectionId"] for c in charts} == {s["uuid"] for s in state["compareRunSections"]}

    # the report rebuilds it from what the trials logged, for the latest study instance
    parent = tracker.create_run(eid, "quickstart (study)", {"study.role": "parent", "study.instance": "inst2",
                                                            "study.name": "quickstart"})
    run = TrialRun.open(tracker, eid, parent, "inst2", "quickstart", "t0", AXES, {}, attempts=2)
    run.log_metrics({"is/digits-cnn/n40/ddim-3/mean": 4.0, "is/digits-cnn/n40/ddim-3/ci_low": 3.5}, step=1)
    logged = logged_chart_view(tracker, eid, "quickstart")
    assert logged is not None and logged.run_tags["study.instance"] == "inst2"
    assert logged.charts == [[f"is/digits-cnn/n40/ddim-3/{s}" for s in ("mean", "ci_low", "ci_high")]]


def test_a_chart_view_too_large_for_one_tag_keeps_its_first_charts(tmp_path: Path) -> None:
    from study.contract.experiment import chart_view, save_chart_view
    from study.contract.keys import TAG_SAVED_VIEW_PREFIX

    tracker = connect(f"sqlite:///{tmp_path}/mlflow.db")
    eid = _experiment(tracker, tmp_path)
    curves = [("inception-v3-compat", 50000, f"sampler-{i:03d}:classifier-{i}.5") for i in range(400)]
    save_chart_view(tracker, eid, chart_view("big", "inst", curves))
    tag = tracker.experiment("seam").tags[TAG_SAVED_VIEW_PREFIX + "big.is-vs-epoch"]
    charts = _decoded_view(tag)["compareRunCharts"]
    assert len(tag) <= 5000 and 1 <= len(charts) < 400
    assert charts[0]["metricKey"] == "is/inception-v3-compat/n50000/sampler-000:classifier-0.5/mean"
