"""load_study and write_report against a real temporary SQLite MLflow store (no mocks).

The store follows the tracking contract: two parent runs (the study was resumed), trials with
``study.*`` / ``axis.*`` tags and step = epoch metrics, one trial split over two runs (restored as a
new run from a checkpoint at epoch 7), one diverged trial and one trial with no IS yet.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from analysis import load_study, write_report
from analysis.runs import SCORE_COLUMNS, StudyRuns

STUDY = "digits-schedules"
EXTRACTOR = "digits-cnn"
T0 = 1_700_000_000_000  # ms
STD = 0.2  # tolerance sqrt(2) * 0.2 = 0.283
IS_EPOCHS = list(range(2, 31, 2))
SAMPLING = {"ancestral": (3.0, 1000.0), "ddim-50": (0.5, 50.0)}


def ramp_then_flat(start: float, step: float, until: int) -> dict[int, float]:
    """IS rising by ``step`` per evaluation up to epoch ``until`` then flat: the plateau is ``until``."""
    return {e: start + step * (min(e, until) // 2 - 1) for e in IS_EPOCHS}


# (trial, evaluation) -> {epoch: IS mean}, and the plateau epoch the rule must find (None: not converged)
CURVES: dict[tuple[str, str], dict[int, float]] = {
    ("t0_schedule=linear", "ancestral"): ramp_then_flat(4.0, 0.5, 12),
    ("t0_schedule=linear", "ddim-50"): {e: 4.0 + 0.3 * (e // 2 - 1) for e in IS_EPOCHS},  # still rising
    ("t1_schedule=cosine", "ancestral"): ramp_then_flat(4.0, 0.5, 8),
    ("t1_schedule=cosine", "ddim-50"): ramp_then_flat(4.0, 0.6, 10),
}
PLATEAUS = {
    ("t0_schedule=linear", "ancestral"): 12,
    ("t0_schedule=linear", "ddim-50"): None,
    ("t1_schedule=cosine", "ancestral"): 8,
    ("t1_schedule=cosine", "ddim-50"): 10,
}
T0_N1000 = {10: 5.0, 20: 5.1, 30: 5.05}
RESTORE_EPOCH = 8  # first epoch logged by the second run of t1


@dataclass(frozen=True)
class Store:
    uri: str
    client: MlflowClient
    experiment_id: str
    parent_old: str
    parent_new: str
    t1_old: str
    t1_new: str
    tmp: Path


def _trial_tags(trial: str, schedule: str, status: str, parent: str) -> dict[str, str]:
    return {
        "mlflow.parentRunId": parent,
        "study.name": STUDY,
        "study.role": "trial",
        "study.trial": trial,
        "study.axes": json.dumps(["schedule"]),
        "axis.schedule": schedule,
        "study.status": status,
    }


def _metrics(series: dict[str, dict[int, float]]) -> list[Metric]:
    return [Metric(key, float(v), T0 + 1000 * step, step) for key, hist in series.items() for step, v in hist.items()]


def _is_series(trial: str, epochs: range | list[int], std: float = STD) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for ev in ("ancestral", "ddim-50"):
        curve = CURVES[(trial, ev)]
        pre = f"is/{EXTRACTOR}/n500/{ev}"
        out[f"{pre}/mean"] = {e: curve[e] for e in epochs}
        out[f"{pre}/std"] = {e: std for e in epochs}
        out[f"sample/{ev}/seconds"] = {e: SAMPLING[ev][0] for e in epochs}
        out[f"sample/{ev}/nfe"] = {e: SAMPLING[ev][1] for e in epochs}
    return out


def _train_series(epochs: range) -> dict[str, dict[int, float]]:
    return {
        "train/loss": {e: 1.0 / e for e in epochs},
        "train/seconds": {e: 2.0 * e for e in epochs},
        "train/epoch_seconds": {e: 2.0 for e in epochs},
    }


def _log(client: MlflowClient, run_id: str, series: dict[str, dict[int, float]], status: str = "FINISHED") -> None:
    metrics = _metrics(series)
    np.random.default_rng(0).shuffle(metrics)  # logging order must not matter
    for i in range(0, len(metrics), 900):
        client.log_batch(run_id, metrics=metrics[i : i + 900])
    if status != "RUNNING":
        client.set_terminated(run_id, status)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Store:
    tmp = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(STUDY, artifact_location=(tmp / "artifacts").as_uri())
    client.create_experiment("other-study", artifact_location=(tmp / "artifacts-other").as_uri())
    parent_tags = {"study.name": STUDY, "study.role": "parent"}
    p_old = client.create_run(exp, start_time=T0, tags=parent_tags, run_name="parent-1").info.run_id
    p_new = client.create_run(
        exp,
        start_time=T0 + 50_000,
        run_name="parent-2",
        tags={**parent_tags, "study.description": "Linear vs cosine vs sigmoid noise schedule on digits."},
    ).info.run_id

    # t0: finished; n=500 for both evaluations plus a second sample count for ddim-50, and an unknown key
    t0 = client.create_run(
        exp, start_time=T0 + 1000, tags=_trial_tags("t0_schedule=linear", "linear", "finished", p_old)
    ).info.run_id
    series = {**_train_series(range(1, 31)), **_is_series("t0_schedule=linear", IS_EPOCHS)}
    series[f"is/{EXTRACTOR}/n1000/ddim-50/mean"] = T0_N1000
    series[f"is/{EXTRACTOR}/n1000/ddim-50/std"] = {e: 0.25 for e in T0_N1000}
    series["system/cpu_utilization_percentage"] = {1: 50.0}
    series["fid/digits-cnn/n500/ancestral"] = {2: 12.0}
    _log(client, t0, series)

    # t1: crashed in run 1 after epoch 11, restored from the epoch-7 checkpoint as run 2
    t1_old = client.create_run(
        exp, start_time=T0 + 2000, tags=_trial_tags("t1_schedule=cosine", "cosine", "running", p_old)
    ).info.run_id
    stale = _is_series("t1_schedule=cosine", [2, 4, 6, 8, 10])
    for key in stale:
        if key.endswith("/mean"):
            stale[key][8], stale[key][10] = 99.0, 99.0  # the discarded future, must not appear
    _log(client, t1_old, {**_train_series(range(1, 12)), **stale}, status="FAILED")
    t1_new = client.create_run(
        exp, start_time=T0 + 60_000, tags=_trial_tags("t1_schedule=cosine", "cosine", "finished", p_new)
    ).info.run_id
    _log(
        client,
        t1_new,
        {**_train_series(range(RESTORE_EPOCH, 31)), **_is_series("t1_schedule=cosine", range(RESTORE_EPOCH, 31, 2))},
    )

    # t2: diverged at epoch 5: NaN loss, NaN IS
    t2 = client.create_run(
        exp, start_time=T0 + 3000, tags=_trial_tags("t2_schedule=sigmoid", "sigmoid", "diverged", p_old)
    ).info.run_id
    _log(
        client,
        t2,
        {
            "train/loss": {1: 0.5, 2: 0.4, 3: 0.3, 4: 0.6, 5: math.nan},
            "train/seconds": {e: 2.0 * e for e in range(1, 6)},
            f"is/{EXTRACTOR}/n500/ancestral/mean": {2: 4.0, 4: 4.3, 6: math.nan},
            f"is/{EXTRACTOR}/n500/ancestral/std": {2: 0.2, 4: 0.2},
            "sample/ancestral/seconds": {2: 3.1, 4: 3.2, 6: 3.3},
            "sample/ancestral/nfe": {2: 1000.0, 4: 1000.0, 6: 1000.0},
        },
        status="FAILED",
    )

    client.log_param(t2, "performance.batch_evaluations", "True")  # its evaluations were generated in lockstep

    # t3: just started, no IS yet
    t3 = client.create_run(
        exp, start_time=T0 + 70_000, tags=_trial_tags("t3_schedule=quad", "quad", "running", p_new)
    ).info.run_id
    _log(client, t3, {"train/loss": {1: 0.9}, "train/seconds": {1: 2.5}}, status="RUNNING")
    return Store(uri, client, exp, p_old, p_new, t1_old, t1_new, tmp)


@pytest.fixture(scope="module")
def study(store: Store) -> StudyRuns:
    return load_study(store.uri, STUDY)


@pytest.fixture(scope="module")
def report(store: Store) -> Path:
    return write_report(store.uri, STUDY, store.tmp / "report")


def _curve(scores: pd.DataFrame, trial: str, evaluation: str, n: int = 500) -> pd.DataFrame:
    sel = (scores["trial"] == trial) & (scores["evaluation"] == evaluation) & (scores["n_samples"] == n)
    return scores[sel]


# ---------------------------------------------------------------- load_study


def test_study_metadata(study: StudyRuns, store: Store) -> None:
    assert study.experiment_id == store.experiment_id
    assert study.parent_run_id == store.parent_new  # the latest started parent
    assert study.axes == ["schedule"]
    assert study.description.startswith("Linear vs cosine")
    assert list(study.scores.columns) == SCORE_COLUMNS[:3] + ["schedule"] + SCORE_COLUMNS[3:]
    assert list(study.losses.columns) == ["trial", "schedule", "epoch", "loss", "train_seconds", "epoch_seconds"]
    assert study.trials.set_index("trial")["status"].to_dict() == {
        "t0_schedule=linear": "finished",
        "t1_schedule=cosine": "finished",
        "t2_schedule=sigmoid": "diverged",
        "t3_schedule=quad": "running",
    }
    assert study.trials.set_index("trial")["n_runs"]["t1_schedule=cosine"] == 2


def test_scores_round_trip_exactly(study: StudyRuns) -> None:
    c = _curve(study.scores, "t0_schedule=linear", "ancestral")
    assert c["epoch"].tolist() == IS_EPOCHS
    assert c["is_mean"].tolist() == [CURVES[("t0_schedule=linear", "ancestral")][e] for e in IS_EPOCHS]
    assert c["is_std"].tolist() == [STD] * len(IS_EPOCHS)
    assert c["sampling_seconds"].tolist() == [3.0] * len(IS_EPOCHS)
    assert c["nfe"].tolist() == [1000.0] * len(IS_EPOCHS)
    assert c["train_seconds"].tolist() == [2.0 * e for e in IS_EPOCHS]
    assert set(c["schedule"]) == {"linear"} and set(c["extractor"]) == {EXTRACTOR}
    assert set(c["status"]) == {"finished"}
    assert study.scores["epoch"].dtype == np.int64 and study.scores["n_samples"].dtype == np.int64


def test_sample_counts_are_separate_rows(study: StudyRuns) -> None:
    assert set(study.scores["n_samples"]) == {500, 1000}
    c = _curve(study.scores, "t0_schedule=linear", "ddim-50", n=1000)
    assert dict(zip(c["epoch"], c["is_mean"], strict=True)) == T0_N1000
    assert len(_curve(study.scores, "t0_schedule=linear", "ddim-50", n=500)) == len(IS_EPOCHS)


def test_unknown_keys_ignored(study: StudyRuns) -> None:
    assert set(study.scores["evaluation"]) == {"ancestral", "ddim-50"}
    assert set(study.scores["extractor"]) == {EXTRACTOR}


def test_epochs_sorted_and_unique(study: StudyRuns) -> None:
    for _, g in study.scores.groupby(["trial", "evaluation", "extractor", "n_samples"]):
        assert g["epoch"].is_monotonic_increasing and g["epoch"].is_unique
    for _, g in study.losses.groupby("trial"):
        assert g["epoch"].is_monotonic_increasing and g["epoch"].is_unique


def test_restored_trial_merges_runs(study: StudyRuns, store: Store) -> None:
    c = _curve(study.scores, "t1_schedule=cosine", "ancestral")
    assert c["epoch"].tolist() == IS_EPOCHS
    assert c["is_mean"].tolist() == [CURVES[("t1_schedule=cosine", "ancestral")][e] for e in IS_EPOCHS]
    assert 99.0 not in set(study.scores["is_mean"])
    assert set(c.loc[c["epoch"] < RESTORE_EPOCH, "run_id"]) == {store.t1_old}
    assert set(c.loc[c["epoch"] >= RESTORE_EPOCH, "run_id"]) == {store.t1_new}
    loss = study.losses[study.losses["trial"] == "t1_schedule=cosine"]
    assert loss["epoch"].tolist() == list(range(1, 31))


def test_diverged_and_empty_trials(study: StudyRuns) -> None:
    c = _curve(study.scores, "t2_schedule=sigmoid", "ancestral")
    assert c["epoch"].tolist() == [2, 4, 6]
    assert c["is_mean"].iloc[:2].tolist() == [4.0, 4.3] and math.isnan(c["is_mean"].iloc[2])
    assert math.isnan(c["is_std"].iloc[2])
    assert "t3_schedule=quad" not in set(study.scores["trial"])
    loss = study.losses[study.losses["trial"] == "t3_schedule=quad"]
    assert loss[["epoch", "loss", "train_seconds"]].values.tolist() == [[1, 0.9, 2.5]]
    assert loss["schedule"].tolist() == ["quad"]


def test_missing_study_is_a_clear_error(store: Store) -> None:
    with pytest.raises(ValueError, match="no-such-study") as err:
        load_study(store.uri, "no-such-study")
    assert store.uri in str(err.value)
    assert "'other-study'" in str(err.value) and f"'{STUDY}'" in str(err.value)


def test_empty_study(store: Store) -> None:
    empty = load_study(store.uri, "other-study")
    assert empty.parent_run_id is None and empty.axes == [] and empty.scores.empty
    report = write_report(store.uri, "other-study", store.tmp / "empty-report")
    assert report.is_file() and (report.parent / "figures" / "is_vs_epoch.png").is_file()


# ---------------------------------------------------------------- write_report


def test_report_files(report: Path) -> None:
    out = report.parent
    for name in (
        "report.md",
        "index.html",
        "convergence.csv",
        "compute.csv",
        "figures/is_vs_epoch.png",
        "figures/loss.png",
    ):
        assert (out / name).is_file(), name
    for fig in ("is_vs_epoch.png", "loss.png"):
        img = matplotlib.image.imread(out / "figures" / fig)
        assert img.shape[0] > 200 and img.shape[1] > 400


def test_plateaus_in_convergence_table(report: Path) -> None:
    conv = pd.read_csv(report.parent / "convergence.csv")
    n500 = conv[conv["n_samples"] == 500].set_index(["trial", "evaluation"])
    for (trial, ev), epoch in PLATEAUS.items():
        row = n500.loc[(trial, ev)]
        # summary statistics only (no kept logits): SE = split std / 3, the curves are noise-free steps
        assert row["paired"] == "no"
        if epoch is None:
            assert math.isnan(row["plateau_epoch"]) and row["stopped_changing"] == "no" and row["state"] == "rising"
            assert row["note"].endswith("a rise beyond delta") and row["tail_change_low"] > row["margin"]
        else:
            # the plateau start is located on a 3-point running mean: a noise-free corner lands at most one
            # evaluation late, and the range holds the true corner
            assert epoch <= row["plateau_epoch"] <= epoch + 2 and row["stopped_changing"] == "yes"
            assert row["state"] == "plateaued"
            assert row["plateau_is"] == CURVES[(trial, ev)][int(row["plateau_epoch"])]
            assert row["plateau_epoch_low"] <= epoch <= row["plateau_epoch_high"]
            assert row["plateau_is_low"] < row["plateau_is"] < row["plateau_is_high"]
        assert row["final_epoch"] == 30 and row["final_is_mean"] == CURVES[(trial, ev)][30]
        assert row["best_is_mean"] == max(CURVES[(trial, ev)].values())
        assert row["schedule"] == trial.split("=")[1]


def test_diverged_and_empty_trials_in_report(report: Path) -> None:
    conv = pd.read_csv(report.parent / "convergence.csv")
    t2 = conv[conv["trial"] == "t2_schedule=sigmoid"]
    assert len(t2) == 1
    assert t2["status"].item() == "diverged" and t2["stopped_changing"].item() == "no"
    assert t2["final_epoch"].item() == 4 and t2["final_is_mean"].item() == 4.3
    assert "diverged" in t2["note"].item()
    t3 = conv[conv["trial"] == "t3_schedule=quad"]
    assert t3["status"].item() == "running" and t3["stopped_changing"].item() == "no"
    assert "no IS" in t3["note"].item()


def test_compute_table(report: Path) -> None:
    comp = pd.read_csv(report.parent / "compute.csv", dtype={"n_samples": str})
    t0 = comp[comp["trial"] == "t0_schedule=linear"].set_index("evaluation")
    assert t0.loc["ancestral", "train_seconds_total"] == 60.0
    assert t0.loc["ancestral", "seconds_per_epoch"] == 2.0
    assert t0.loc["ancestral", "sampling_seconds_mean"] == 3.0 and t0.loc["ancestral", "nfe"] == 1000
    assert t0.loc["ddim-50", "sampling_seconds_mean"] == 0.5 and t0.loc["ddim-50", "nfe"] == 50
    assert t0.loc["ddim-50", "n_samples"] == "500, 1000"
    t2 = comp[comp["trial"] == "t2_schedule=sigmoid"]
    assert t2["sampling_seconds_mean"].item() == pytest.approx(3.2)
    assert t2["seconds_per_epoch"].item() == 2.0  # train/seconds 10 over 5 epochs (no epoch_seconds)
    assert bool(t2["lockstep"].item()) and not t0["lockstep"].any()
    assert "| 3.20‡ |" in report.read_text() and "‡ generated in lockstep" in report.read_text()
    t3 = comp[comp["trial"] == "t3_schedule=quad"]
    assert t3["epochs_trained"].item() == 1 and t3["train_seconds_total"].item() == 2.5


def test_report_markdown_and_html(report: Path) -> None:
    md = report.read_text()
    assert md.startswith(f"# Study report: {STUDY}")
    assert "Linear vs cosine vs sigmoid" in md
    assert "![Inception Score vs epoch](figures/is_vs_epoch.png)" in md and "(figures/loss.png)" in md
    assert "Plateau rule: margin delta = " in md and "paired bootstrap" in md
    assert "| t0_schedule=linear | ancestral |" in md  # key columns first: trial, evaluation, state
    page = (report.parent / "index.html").read_text()
    assert page.count('src="data:image/png;base64,') == 3  # IS, other scores (the FID of t0), loss
    assert "src=\"http" not in page  # self-contained: the only addresses are links to the MLflow UI
    assert not [u for u in re.findall(r'https?://[^"<> ]+', page) if not u.startswith("http://127.0.0.1:5000/#/")]
    assert re.search(r'<a href="http://127.0.0.1:5000/#/experiments/\d+/runs/[0-9a-f]{32}">[0-9a-f]{32}</a>', page)
    assert re.search(r'<a href="[^"]+/runs/[0-9a-f]{32}">t0_schedule=linear</a>', page)  # each trial's run
    assert "viewStateShareKey=" in page
    # markdown rendered: emphasis, code; no literal asterisk pairs left in the text
    assert "<em>paired</em>" in page and "*paired*" not in page and "<code>paired</code>" in page
    assert "<table>" in page and "t2_schedule=sigmoid" in page


def test_report_logged_to_latest_parent(report: Path, store: Store) -> None:
    names = {a.path for a in store.client.list_artifacts(store.parent_new, "report")}
    assert {
        "report/report.md",
        "report/index.html",
        "report/convergence.csv",
        "report/compute.csv",
        "report/figures",
    } <= names
    figs = {a.path for a in store.client.list_artifacts(store.parent_new, "report/figures")}
    assert figs == {"report/figures/is_vs_epoch.png", "report/figures/loss.png", "report/figures/scores.png"}
    assert store.client.list_artifacts(store.parent_old) == []


# ---------------------------------------------------------------- findings and claims


def _claims() -> list:
    from study.contract.spec.claims import ClaimSpec

    return [ClaimSpec.model_validate(c) for c in (
        {"text": "linear beats cosine", "kind": "better", "a": {"axes": {"schedule": "linear"}},
         "b": {"axes": {"schedule": "cosine"}}},
        {"text": "cosine converges earlier", "kind": "converges_earlier", "a": {"axes": {"schedule": "cosine"}},
         "b": {"axes": {"schedule": "linear"}}},
        {"text": "samplers are equivalent", "kind": "equivalent", "margin": 0.1,
         "a": {"axes": {"schedule": "linear"}, "evaluation": "ancestral"},
         "b": {"axes": {"schedule": "linear"}, "evaluation": "ddim-50"}},
        {"text": "sigmoid stays below 5", "kind": "below", "value": 5.0, "a": {"axes": {"schedule": "sigmoid"}}},
        {"text": "cosine beats quad (no common epoch)", "kind": "better", "a": {"axes": {"schedule": "cosine"}},
         "b": {"axes": {"schedule": "quad"}}},
    )]  # fmt: skip


@pytest.fixture(scope="module")
def judged(store: Store) -> Path:
    return write_report(store.uri, STUDY, store.tmp / "judged", claims=_claims(), log_to_mlflow=False)


def test_claims_are_checked_with_their_measurements(judged: Path) -> None:
    table = pd.read_csv(judged.parent / "claims.csv").set_index("claim")
    assert table.loc["linear beats cosine", "verdict"] == "supported"  # -1.0 (ancestral), -1.8 (ddim) at epoch 30
    assert "ancestral: +1.00" in table.loc["linear beats cosine", "our measurement (95% CI)"]
    assert table.loc["cosine converges earlier", "verdict"] == "supported"  # 8 vs 12; 10 vs never (censored)
    assert table.loc["samplers are equivalent", "verdict"] == "contradicted"  # 6.5 vs 8.2 at epoch 30
    assert table.loc["sigmoid stays below 5", "verdict"] == "supported"
    assert table.loc["cosine beats quad (no common epoch)", "verdict"] == "no data"


def test_findings_state_each_comparison_in_one_sentence(judged: Path) -> None:
    found = pd.read_csv(judged.parent / "findings.csv")
    row = found[(found["family"] == "axis schedule") & (found["under"] == "ancestral") & (found["a"] == "linear")
                & (found["b"] == "cosine")].iloc[0]  # fmt: skip
    assert row["epoch"] == 30 and row["difference"] == pytest.approx(-1.0) and bool(row["resolved"])
    assert row["sentence"].startswith("linear beats cosine under ancestral at epoch 30: IS(cosine) - IS(linear)")
    # the ranges widen by one evaluation at the low end (the true flattening lies between two evaluations)
    assert "linear plateaued at epoch 14 [10-14], cosine plateaued at epoch 10 [6-10]" in row["plateau"]
    assert row["plateau"].endswith("the plateau-epoch ranges overlap")
    within = found[(found["family"] == "evaluations") & (found["under"] == "t0_schedule=linear")]
    assert within["difference"].item() == pytest.approx(8.2 - 6.5)
    md = judged.read_text()
    first = md[: md.index("## Findings")]
    assert "## Verdicts" in first and "## Claims" in first and "linear beats cosine under ancestral" in first
    # Findings never repeats a Verdicts sentence word for word
    verdicts = [line for line in md[md.index("## Verdicts") : md.index("## Claims")].splitlines()[1:] if line]
    findings_text = md[md.index("## Findings") : md.index("## Inception Score vs epoch")]
    assert verdicts and not [v for v in verdicts if v in findings_text]
    assert "| claim | verdict | our measurement (95% CI) | source | kind |" in md


def test_state_labels_are_spread_so_that_none_overlap() -> None:
    from analysis.figures import spread

    ends = [5.02, 5.00, 3.0, 5.01]  # three curves ending within 0.02 IS of each other, one far below
    ys = spread(ends, gap=0.2)
    ordered = sorted(ys)
    assert all(b - a >= 0.2 - 1e-12 for a, b in zip(ordered, ordered[1:], strict=False))
    assert sorted(range(4), key=lambda i: ys[i]) == sorted(range(4), key=lambda i: ends[i])  # order kept
    assert abs(sum(ys) - sum(ends)) < 1e-9  # centred on the curves, not pushed off the panel
    assert spread([1.0, 2.0], gap=0.5) == [1.0, 2.0]  # labels already apart stay where they are
