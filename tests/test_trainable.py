"""One trial without Ray (LocalSession) against a real SQLite MLflow store: logging, resume, divergence."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import micro_spec
from mlflow import MlflowClient

from study.contract.spec.load import Trial, expand
from trainables.trainable import CHECKPOINT_FILE, LocalSession, Runtime, run_trial


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str, str]:
    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root}/mlflow.db"
    client = MlflowClient(uri)
    eid = client.create_experiment("trainable", artifact_location=str(root / "artifacts"))
    parent = client.create_run(eid, tags={"study.role": "parent"}).info.run_id
    return uri, eid, parent


def _trial(**overrides: object) -> Trial:
    _, trials = expand(micro_spec(**overrides))
    return trials[1]


def _runtime(store: tuple[str, str, str], weights: Path, tmp_path: Path) -> Runtime:
    uri, eid, parent = store
    return Runtime(uri, eid, parent, uuid.uuid4().hex[:8], "micro", str(tmp_path), str(tmp_path / "cache"),
                   extractor_weights=str(weights), log_images=True)  # fmt: skip


def test_logs_metrics_images_and_params(store, classifier_r8, tmp_path: Path) -> None:
    runtime = _runtime(store, classifier_r8[0], tmp_path)
    session = LocalSession(tmp_path / "ckpt")
    assert run_trial(_trial(), runtime, session) == "finished"
    assert [r["epoch"] for r in session.reports] == [1, 2]
    client = MlflowClient(store[0])
    (run,) = client.search_runs([store[1]], f"tags.`study.instance` = '{runtime.instance}'")
    assert run.info.status == "FINISHED" and run.data.tags["study.status"] == "finished"
    assert run.data.tags["mlflow.parentRunId"] == store[2] and run.data.tags["axis.schedule"] == "cosine"
    assert run.data.params["training.lr"] == "0.002" and run.data.params["dynamics.schedule.kind"] == "cosine"
    for key in ("is/digits-cnn/n40/ancestral-5/mean", "is/digits-cnn/n40/ddim-3/std", "train/loss"):
        assert [m.step for m in client.get_metric_history(run.info.run_id, key)] == [1, 2]
    assert client.get_metric_history(run.info.run_id, "sample/ancestral-5/nfe")[0].value == 5
    images = [a.path for a in client.list_artifacts(run.info.run_id, "images")]
    assert any("samples" in p and "ancestral-5" in p for p in images)


def test_restored_trial_continues_the_same_run_with_the_same_results(store, classifier_r8, tmp_path: Path) -> None:
    runtime = _runtime(store, classifier_r8[0], tmp_path)
    straight = LocalSession(tmp_path / "a")
    run_trial(_trial(**{"training.epochs": 3}), runtime, straight)

    # Same trial, interrupted after epoch 2 (as if the process died), then restored from its checkpoint.
    runtime2 = _runtime(store, classifier_r8[0], tmp_path)
    first = LocalSession(tmp_path / "b")
    run_trial(_trial(**{"training.epochs": 2}), runtime2, first)
    ckpt = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=False)
    resumed = LocalSession(tmp_path / "b")
    run_trial(_trial(**{"training.epochs": 3}), runtime2, resumed)
    assert [r["epoch"] for r in resumed.reports] == [3]

    final_a = torch.load(tmp_path / "a" / CHECKPOINT_FILE, weights_only=False)
    final_b = torch.load(tmp_path / "b" / CHECKPOINT_FILE, weights_only=False)
    for k, v in final_a["net"].items():
        assert torch.equal(v, final_b["net"][k]), k
    assert straight.reports[-1]["loss"] == resumed.reports[-1]["loss"]
    assert straight.reports[-1]["is/ddim-3"] == resumed.reports[-1]["is/ddim-3"]
    client = MlflowClient(store[0])
    runs = client.search_runs([store[1]], f"tags.`study.instance` = '{runtime2.instance}'")
    assert [r.info.run_id for r in runs] == [ckpt["run_id"]]  # continued, not forked
    assert [m.step for m in client.get_metric_history(ckpt["run_id"], "train/loss")] == [1, 2, 3]


def test_non_finite_loss_marks_the_trial_diverged(store, classifier_r8, tmp_path: Path) -> None:
    runtime = _runtime(store, classifier_r8[0], tmp_path)
    session = LocalSession(tmp_path / "d")
    # Adam moves each weight by ~lr per step whatever the gradient: lr=10 (the spec's largest) blows up in an epoch.
    status = run_trial(_trial(**{"training.lr": 10.0, "training.grad_clip": None}), runtime, session)
    assert status == "diverged" and session.reports[-1]["status"] == "diverged"
    client = MlflowClient(store[0])
    (run,) = client.search_runs([store[1]], f"tags.`study.instance` = '{runtime.instance}'")
    assert run.data.tags["study.status"] == "diverged" and run.info.status == "FAILED"


def _flat(**overrides: object) -> Trial:
    """A trial whose curves are flat: lr 1e-9 leaves the weights (and so every evaluation) unchanged."""
    return _trial(**{"training.lr": 1e-9, "training.epochs": 8, "training.stop": {},
                     "evaluation.inception_score": {"bootstrap": 100, "infinity_points": 5}} | overrides)  # fmt: skip


def test_converged_trial_stops_early_and_says_why(store, classifier_r8, tmp_path: Path) -> None:
    runtime = _runtime(store, classifier_r8[0], tmp_path)
    session = LocalSession(tmp_path / "c")
    assert run_trial(_flat(), runtime, session) == "converged"
    # three evaluations (epochs 1-3) are the fewest the rule decides on (min_tail), and the stopper needs three
    # plateaued looks in a row (persistence): epochs 3, 4 and 5
    assert [r["epoch"] for r in session.reports] == [1, 2, 3, 4, 5] and session.reports[-1]["status"] == "converged"
    assert session.reports[-1]["state/ddim-3"] == "plateaued"
    client = MlflowClient(store[0])
    (run,) = client.search_runs([store[1]], f"tags.`study.instance` = '{runtime.instance}'")
    tags = run.data.tags
    assert run.info.status == "FINISHED" and tags["study.status"] == "converged"
    assert tags["study.stop.rule"] == "plateau" and tags["study.stop.epoch"] == "5"
    assert "ancestral-5 plateaued since epoch 1 (3 evaluations in a row)" in tags["study.stop.reason"]
    states = client.get_metric_history(run.info.run_id, "convergence/ddim-3/state")
    # undetermined, then plateaued
    assert [(m.step, m.value) for m in states] == [(1, 3.0), (2, 3.0), (3, 1.0), (4, 1.0), (5, 1.0)]
    files = [a.path for a in client.list_artifacts(run.info.run_id, "evaluations/ddim-3")]
    assert files == [f"evaluations/ddim-3/epoch-0000{e}.npz" for e in (1, 2, 3, 4, 5)]


def test_resumed_trial_decides_from_its_logged_history(store, classifier_r8, tmp_path: Path) -> None:
    """Killed after epoch 4, resumed: the decision at epoch 5 reads epochs 1-4 back from MLflow (its streak of
    plateaued looks included), so it stops at 5 like the uninterrupted trial."""
    runtime = _runtime(store, classifier_r8[0], tmp_path)
    first = LocalSession(tmp_path / "r")
    run_trial(_flat(**{"training.epochs": 4}), runtime, first)  # stands in for the process that died
    resumed = LocalSession(tmp_path / "r")
    assert run_trial(_flat(), runtime, resumed) == "converged"
    assert [r["epoch"] for r in resumed.reports] == [5]
    client = MlflowClient(store[0])
    (run,) = client.search_runs([store[1]], f"tags.`study.instance` = '{runtime.instance}'")
    assert run.data.tags["study.stop.epoch"] == "5" and run.data.tags["study.status"] == "converged"


def test_trial_restored_where_it_had_stopped_stops_again(store, classifier_r8, tmp_path: Path) -> None:
    """The driver died after the trial converged but before Tune recorded it: restored from its last checkpoint,
    the trial re-decides from its logged history and ends at once, training nothing more."""
    runtime = _runtime(store, classifier_r8[0], tmp_path)
    assert run_trial(_flat(), runtime, LocalSession(tmp_path / "s")) == "converged"
    again = LocalSession(tmp_path / "s")
    assert run_trial(_flat(), runtime, again) == "converged"
    assert [(r["epoch"], r["status"]) for r in again.reports] == [(5, "converged")]
    client = MlflowClient(store[0])
    (run,) = client.search_runs([store[1]], f"tags.`study.instance` = '{runtime.instance}'")
    assert run.data.tags["study.stop.epoch"] == "5"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2, 3, 4, 5]


def test_report_differences_are_paired_from_kept_logits(classifier_r8, tmp_path: Path) -> None:
    """Two samplers on one checkpoint share their initial noise: the report's difference is a paired bootstrap
    interval, narrower than the unpaired one built from the two standard errors."""
    from analysis import load_study
    from analysis.convergence import difference
    from analysis.tables import differences_table

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    eid = client.create_experiment("pairs", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(eid, tags={"study.role": "parent", "study.name": "pairs"}).info.run_id
    runtime = Runtime(uri, eid, parent, uuid.uuid4().hex[:8], "pairs", str(tmp_path), str(tmp_path / "cache"),
                      extractor_weights=str(classifier_r8[0]), log_images=True)  # fmt: skip
    run_trial(_trial(), runtime, LocalSession(tmp_path / "p"))
    study = load_study(uri, "pairs")
    trial = study.trials["trial"].item()
    assert sorted(study.logits) == [(trial, "ancestral-5"), (trial, "ddim-3")]
    d = difference(study, (trial, "ancestral-5"), (trial, "ddim-3"), 2)
    row = study.scores.set_index(["evaluation", "epoch"])
    se = np.hypot(row.loc[("ancestral-5", 2), "is_se"], row.loc[("ddim-3", 2), "is_se"])
    assert d.paired and d.low <= d.estimate <= d.high and (d.high - d.low) < 2 * 1.96 * se
    assert d.estimate == pytest.approx(row.loc[("ddim-3", 2), "is_mean"] - row.loc[("ancestral-5", 2), "is_mean"],
                                       abs=2e-3)  # the logged means vs the float16 logits  # fmt: skip
    table = differences_table(study)
    assert list(table["comparison"]) == ["samplers, same checkpoint"] and table["paired"].item() == "yes"
    from analysis import write_report

    md = write_report(uri, "pairs", tmp_path / "report", log_to_mlflow=False).read_text()
    assert "## Samples" in md and (tmp_path / "report" / "figures" / "samples_0.png").stat().st_size > 5_000
    compute = (tmp_path / "report" / "compute.csv").read_text()
    assert "cpu: " in compute and "train_minutes_per_90_epochs" in compute  # the device is named


def test_a_trials_cache_is_the_one_its_runtime_names(store, classifier_r8, tmp_path: Path, monkeypatch) -> None:
    """The cache travels as a value: two runtimes with different cache directories write their FID reference
    features each into its own, with no environment variable set, and nothing lands next to the data."""
    for var in ("STUDY_CACHE_DIR", "STUDY_DATA_DIR"):
        monkeypatch.delenv(var, raising=False)
    trial = _trial(**{"training.epochs": 1, "evaluation.inception_score": {"extra_metrics": ["fid"]}})
    uri, eid, parent = store
    for name in ("a", "b"):
        runtime = Runtime(uri, eid, parent, uuid.uuid4().hex[:8], "micro", str(tmp_path / "data"),
                          str(tmp_path / f"cache-{name}"), extractor_weights=str(classifier_r8[0]),
                          log_images=False)  # fmt: skip
        assert run_trial(trial, runtime, LocalSession(tmp_path / f"ckpt-{name}")) == "finished"
        assert list((tmp_path / f"cache-{name}" / "reference").glob("digits-*.pt"))
    assert "STUDY_CACHE_DIR" not in os.environ
    assert not (tmp_path / "data").exists() or not any(p.is_file() for p in (tmp_path / "data").rglob("*"))
