"""The report's generalization window (issue 21 item 3): per trial that logged a memorization score, IS and the
memorized fraction on one time axis and a table of the IS plateau epoch beside the memorization-onset epoch, from
a study logged to the in-memory tracker (the tracking contract, no MLflow), with the most-copied images the trials
logged (issue 21 item 1); a study without memorization scores gets neither."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.convergence import onset_verdicts
from analysis.report import COPIES_FIGURE, WINDOW_FIGURE, render_report
from analysis.runs import load_study
from study.contract import keys
from study.contract.memory_backend import MemoryTracker
from study.contract.tracking import MetricPoint

EPOCHS = list(range(5, 125, 5))
N = 400


def _is(e: int, until: int) -> float:
    return 3.0 + 0.25 * min(e, until) / 5


def _log_trial(t: MemoryTracker, exp: str, trial: str, label: str, onset: int | None, memorization: bool) -> None:
    run = t.create_run(exp, trial, {keys.TAG_STUDY: "window", keys.TAG_ROLE: "trial", keys.TAG_TRIAL: trial,
                                    keys.TAG_AXES: '["size"]', keys.axis_tag("size"): label,
                                    keys.TAG_STATUS: "finished"})  # fmt: skip
    points = []
    for e in EPOCHS:
        values = {keys.score_key("is", "digits-cnn", N, "ddim-3", "mean"): _is(e, 40),
                  keys.score_key("is", "digits-cnn", N, "ddim-3", "se"): 0.02,
                  keys.score_key("is", "digits-cnn", N, "ddim-3", "ci_low"): _is(e, 40) - 0.04,
                  keys.score_key("is", "digits-cnn", N, "ddim-3", "ci_high"): _is(e, 40) + 0.04,
                  keys.TRAIN_LOSS: 1 / e}  # fmt: skip
        if memorization:
            f = 0.01 if onset is None or e < onset else min(0.01 + 0.3 * (e - onset + 5) / 20, 0.4)
            se = math.sqrt(f * (1 - f) / N)
            for stat, v in (("mean", f), ("se", se), ("ci_low", f - 2 * se), ("ci_high", f + 2 * se),
                            ("held_out", 0.01), ("held_out_se", 0.005)):  # fmt: skip
                values[keys.score_key("memorization_feature", "digits-cnn", N, "ddim-3", stat)] = v
        points += [MetricPoint(k, float(v), e, 1000 * e) for k, v in values.items()]
    params = {"training.epochs": "120", "evaluation.onset.margin": "0.05", "evaluation.onset.persistence": "2",
              "evaluation.onset.score": "memorization_feature", "evaluation.plateau.margin": "0.25"}  # fmt: skip
    t.log_batch(run, points, params, {})
    if memorization:  # the copies image (2 rows of 4 images of 8x8, 1-px padding) and the distances, every 20 epochs
        for e in EPOCHS[3::4]:
            shade = 50 + e  # each epoch's image its own grey, to tell them apart in the figure
            t.log_image(run, np.full((19, 37, 3), shade, np.uint8),
                        keys.score_image_key("memorization_feature", "copies", "ddim-3"), e)  # fmt: skip
            nn1, nn2 = np.array([0.5, 0.0, 2.0, 1.0, 3.0]), np.array([1.0, 4.0, 4.0, 5.0, 3.5])
            with tempfile.TemporaryDirectory() as d:
                path = Path(d) / keys.evaluation_file(e)
                np.savez(path, **{keys.score_array("memorization_feature", "nn1"): nn1,
                                  keys.score_array("memorization_feature", "nn2"): nn2})  # fmt: skip
                t.log_artifact(run, path, keys.evaluation_dir("ddim-3"))
    t.set_status(run, "FINISHED")


def _study(memorization: bool) -> tuple[MemoryTracker, str]:
    t = MemoryTracker()
    name = f"window-{memorization}"
    exp = t.create_experiment(name, None, {})
    t.create_run(exp, "parent", {keys.TAG_STUDY: name, keys.TAG_ROLE: "parent"})
    _log_trial(t, exp, "t0_size=64", "64", 70, memorization)
    _log_trial(t, exp, "t1_size=1437", "1437", None, memorization)
    for r in t.runs(exp):
        r.tags[keys.TAG_STUDY] = name
    return t, name


def test_the_report_states_the_generalization_window_per_trial(tmp_path: Path) -> None:
    tracker, name = _study(memorization=True)
    study = load_study("memory:", name, with_logits=False, tracker=tracker)
    found, _ = onset_verdicts(study)
    assert {k[0]: v.state for k, v in found.items()} == {"t0_size=64": "onset", "t1_size=1437": "no onset"}
    report = render_report(study, tmp_path)
    window = pd.read_csv(tmp_path / "generalization_window.csv")
    rows = window.set_index("trial")
    t0, t1 = rows.loc["t0_size=64"], rows.loc["t1_size=1437"]
    assert t0["plateau_epoch"] == t1["plateau_epoch"] and 35 <= t0["plateau_epoch"] <= 40  # IS flat from 40 in both
    assert t0["onset_state"] == "onset" and t0["onset_epoch_low"] <= 70 <= t0["onset_epoch_high"]
    assert 60 <= t0["onset_epoch"] <= 75 and t0["onset_detected"] >= t0["onset_epoch"]
    assert t1["onset_state"] == "no onset" and pd.isna(t1["onset_epoch"]) and t1["size"] == 1437
    assert (tmp_path / WINDOW_FIGURE).stat().st_size > 10_000
    text = report.read_text()
    assert "## Generalization window" in text and f"![Generalization window]({WINDOW_FIGURE})" in text
    assert f"t0_size=64 under ddim-3: IS plateau at epoch {t0['plateau_epoch']}" in text
    assert f"t1_size=1437 under ddim-3: IS plateau at epoch {t1['plateau_epoch']}" in text
    assert "memorization onset at epoch" in text and "no memorization onset by epoch 120" in text
    assert "Generalization window" in (tmp_path / "index.html").read_text()
    # the most-copied images: t0 at its onset (the first logged at or after ~70) and latest, t1 latest only
    assert f"![Generalization window]({COPIES_FIGURE})" in text and "most-copied generated images" in text
    assert (tmp_path / COPIES_FIGURE).stat().st_size > 5_000
    assert text.index(f"({WINDOW_FIGURE})") < text.index(f"({COPIES_FIGURE})") < text.index("## Paired differences")


def test_the_copies_figure_shows_the_onset_and_latest_evaluations(tmp_path: Path, monkeypatch) -> None:
    import analysis.report as report_module

    shown: dict = {}
    plot = report_module.plot_copies
    monkeypatch.setattr(report_module, "plot_copies", lambda rows, path, title: shown.update(rows) or plot(
        rows, path, title=title))  # fmt: skip
    tracker, name = _study(memorization=True)
    study = load_study("memory:", name, with_logits=False, tracker=tracker)
    render_report(study, tmp_path)
    t0, t1 = shown["t0_size=64\nddim-3, feature"], shown["t1_size=1437\nddim-3, feature"]
    onset = pd.read_csv(tmp_path / "generalization_window.csv").set_index("trial").loc["t0_size=64", "onset_epoch"]
    first = min(e for e in EPOCHS[3::4] if e >= onset)
    assert list(t0) == [f"epoch {first} (onset)", "epoch 120 (latest)"] and list(t1) == ["epoch 120 (latest)"]
    img, caption = t0["epoch 120 (latest)"]
    assert img.shape[:2] == (19, 37) and caption == "d1/d2: 0.00 0.20 0.50 0.50"  # 4 columns: the 4 smallest
    assert np.allclose(img[..., 0], (50 + 120) / 255, atol=0.01)
    assert np.allclose(t0[f"epoch {first} (onset)"][0][..., 0], (50 + first) / 255, atol=0.01)


def test_a_study_without_memorization_scores_has_no_window(tmp_path: Path) -> None:
    tracker, name = _study(memorization=False)
    study = load_study("memory:", name, with_logits=False, tracker=tracker)
    report = render_report(study, tmp_path)
    assert not (tmp_path / "generalization_window.csv").exists() and not (tmp_path / WINDOW_FIGURE).exists()
    assert "Generalization window" not in report.read_text()
