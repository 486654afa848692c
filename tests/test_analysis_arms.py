"""Seeds group trials into arms: the report's mean curve over seeds with a t-interval, and plateau epochs across
seeds (a real SQLite MLflow store, no mocks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from analysis import load_study, write_report
from analysis.convergence import arm_curve, arms

EPOCHS = list(range(5, 105, 5))
STUDY = "seeds"


def _curve(rise_until: int, seed: int) -> dict[int, float]:
    off = 0.05 * seed  # seeds differ by a constant offset
    return {e: 4.0 + off + 0.5 * min(e, rise_until) / 5 for e in EPOCHS}  # steps of 0.5 > the margin 0.21


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    tmp = tmp_path_factory.mktemp("arms")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment(STUDY, artifact_location=(tmp / "artifacts").as_uri())
    client.create_run(exp, tags={"study.name": STUDY, "study.role": "parent"})
    for i, (schedule, until) in enumerate([(s, u) for s, u in (("linear", 45), ("cosine", 30))]):
        for seed in range(3):
            trial = f"t{3 * i + seed}_schedule={schedule}_seed={seed}"
            tags = {"study.name": STUDY, "study.role": "trial", "study.trial": trial, "study.status": "finished",
                    "study.axes": json.dumps(["schedule", "seed"]), "axis.schedule": schedule, "axis.seed": str(seed)}
            run = client.create_run(exp, tags=tags).info.run_id
            curve = _curve(until, seed)
            metrics = [Metric("is/digits-cnn/n400/ddim-20/mean", v, 0, e) for e, v in curve.items()]
            metrics += [Metric("is/digits-cnn/n400/ddim-20/std", 0.15, 0, e) for e in curve]
            metrics += [Metric("train/loss", 0.1, 0, e) for e in range(1, 101)]
            client.log_batch(run, metrics=metrics)
            client.set_terminated(run)
    return uri, tmp


def test_trials_differing_only_in_seed_form_arms(store) -> None:
    study = load_study(store[0], STUDY)
    groups = arms(study)
    assert sorted(groups) == ["schedule=cosine", "schedule=linear"] and all(len(t) == 3 for t in groups.values())
    c = arm_curve(study.scores[study.scores["evaluation"] == "ddim-20"], groups["schedule=linear"])
    # mean over seeds = the seed-0 curve + 0.05; t-interval half width = t(0.975, 2) * sd / sqrt(3), sd = 0.05
    assert c.mean[-1] == pytest.approx(4.0 + 0.05 + 0.5 * 9)
    assert c.high[-1] - c.mean[-1] == pytest.approx(4.302653 * 0.05 / math.sqrt(3), rel=1e-5)
    assert list(c.seeds) == [3] * len(EPOCHS)


def test_report_shows_arms_with_plateau_epochs_across_seeds(store) -> None:
    report = write_report(store[0], STUDY, store[1] / "report", log_to_mlflow=False)
    table = pd.read_csv(report.parent / "arms.csv").set_index("arm")
    assert table.loc["schedule=cosine", "converged_seeds"] == 3 and table.loc["schedule=linear", "seeds"] == 3
    # each seed's noise-free curve flattens at 30 (45); the plateau start is located on a 3-point running mean, so
    # a sharp corner lands at most one evaluation late
    assert 30 <= table.loc["schedule=cosine", "plateau_epoch_median"] <= 35
    assert 45 <= table.loc["schedule=linear", "plateau_epoch_median"] <= 50
    assert (report.parent / "figures" / "arms.png").stat().st_size > 10_000
    md = report.read_text()
    assert "## Arms (mean over seeds)" in md and "3/3" in md
    assert np.isfinite(table["final_is_low"]).all()
