"""The ``memorization`` stopping rule (trainables/stopping.py) on the memorization-onset rule
(study/statistics/onset.py): declared in the spec (``evaluation.onset``, ``training.stop.memorization``), fed by
the scores the trial computed, rebuilt identically from the logged distances on restore, and logged per evaluation
by a trial."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import micro_spec, sqlite_trial_runtime

from study.contract import keys
from study.contract.spec.load import expand
from study.contract.spec.study import OnsetSpec, StudySpec
from study.statistics.onset import OnsetRule, assess_onset
from trainables.scores import ScoreSettings, TrainingSet, compute_scores
from trainables.stopping import (
    STOPPING_RULES,
    EpochOutcome,
    EvaluationHistory,
    first_stop,
    onset_metrics,
    onset_rule,
    onsets,
)  # fmt: skip
from trainables.trainable import LocalSession, run_trial


def _spec(**over: object) -> StudySpec:
    return StudySpec.model_validate(micro_spec(**{"grid": {}, "training.epochs": 100, **over}))


def test_the_spec_declares_the_rule_once_and_the_stop_is_opt_in() -> None:
    assert OnsetRule.of(OnsetSpec()) == OnsetRule()  # the spec's defaults are the rule's
    spec = _spec()
    assert spec.training.stop is None and onset_rule(spec) == OnsetRule()
    assert list(STOPPING_RULES) == ["diverged", "plateau", "memorization", "budget"]
    with pytest.raises(ValueError, match="extra_metrics"):
        _spec(**{"training.stop": {"memorization": True}})
    with pytest.raises(ValueError, match="stops on nothing"):
        _spec(**{"training.stop": {"plateau": False}})
    ok = _spec(**{"training.stop": {"memorization": True, "plateau": False},
                  "evaluation.inception_score": {"extra_metrics": ["memorization_pixel"]},
                  "evaluation.onset": {"score": "memorization_pixel", "margin": 0.1}})  # fmt: skip
    assert onset_rule(ok).margin == 0.1 and ok.training.stop.memorization  # type: ignore[union-attr]


def _history(fractions: list[float], held_out: float = 0.01) -> EvaluationHistory:
    h = EvaluationHistory()
    for i, f in enumerate(fractions):
        se = math.sqrt(f * (1 - f) / 400)
        h.add_scores(
            "ddim-3",
            5 * (i + 1),
            {
                "memorization_feature": {"mean": f, "se": se, "held_out": held_out, "held_out_se": 0.005},
                "is": {"mean": 3.0},
            },
        )
    return h


def test_the_stopper_ends_a_trial_at_the_onset_and_only_when_asked() -> None:
    spec = _spec(**{"training.stop": {"memorization": True, "plateau": False},
                    "evaluation.inception_score": {"extra_metrics": ["memorization_feature"]}})  # fmt: skip
    flat = _history([0.01] * 12)
    rising = _history([0.01] * 8 + [0.3] * 4)
    assert onsets(spec, flat)["ddim-3"].state == "no onset"
    assert first_stop(EpochOutcome(60, 0.1, {}, onsets(spec, flat)), spec) is None
    found = onsets(spec, rising)
    stop = first_stop(EpochOutcome(60, 0.1, {}, found), spec)
    assert stop is not None and stop.rule == "memorization" and stop.status == "converged"
    assert "onset at epoch 45" in stop.reason, stop.reason
    # the curve the stopper looked at is logged: state, onset epoch, rise
    m = onset_metrics(found)
    assert m[keys.onset_key("ddim-3", "state")] == keys.ONSET_STATES.index("onset")
    assert m[keys.onset_key("ddim-3", "epoch")] == 45 and m[keys.onset_key("ddim-3", "rise")] == pytest.approx(0.29)
    # not opted in: the same curve does not stop the trial; no memorization score logged: no verdicts
    plain = _spec(**{"evaluation.inception_score": {"extra_metrics": ["memorization_feature"]},
                     "training.stop": {}})  # fmt: skip
    assert first_stop(EpochOutcome(60, 0.1, {}, found), plain) is None
    assert onsets(spec, EvaluationHistory()) == {}


def test_a_restored_history_recomputes_the_same_fractions_from_the_logged_distances() -> None:
    """The trial adds the scores it computed; a restored trial recomputes them from the npz distances with the
    same bootstrap: the same numbers, so the same decision."""
    g = torch.Generator().manual_seed(0)
    train, held = torch.randn(60, 6, generator=g), torch.randn(30, 6, generator=g)
    cfg = ScoreSettings(bootstrap=300, seed=7, training=TrainingSet(train, train, held, held))
    live, restored = EvaluationHistory(), EvaluationHistory()
    for epoch, copies in ((5, 2), (10, 10), (15, 25)):
        gen = torch.cat([train[:copies] + 1e-4, torch.randn(40 - copies, 6, generator=g)])
        res = compute_scores({"f": gen}, {"fid": "f"}, ["memorization_feature"], cfg)
        live.add_scores("ddim-3", epoch, res.scores)
        restored.add_arrays("ddim-3", epoch, res.arrays | {"logits": np.zeros((40, 10))}, cfg.bootstrap, cfg.seed)
    assert restored.fractions == live.fractions
    a, b = (assess_onset(h.fraction_curve("memorization_feature", "ddim-3")) for h in (live, restored))
    assert a == b and a.rise == pytest.approx(25 / 40 - live.fractions["memorization_feature"]["ddim-3"][5]["held_out"])


def test_a_trial_logs_the_onset_verdict_of_every_evaluation(classifier_r8, tmp_path: Path) -> None:
    runtime, client, eid = sqlite_trial_runtime(tmp_path, "onset", classifier_r8[0])
    spec = micro_spec(**{"training.epochs": 2, "evaluation.samplers": [{"kind": "ddim", "steps": 3}],
                         "evaluation.inception_score": {"extra_metrics": ["memorization_feature"], "bootstrap": 100},
                         "training.stop": {"memorization": True, "plateau": False},
                         "dataset.subset": {"size": 64, "seed": 0}, "grid": {}})  # fmt: skip
    trial = expand(spec)[1][0]
    assert run_trial(trial, runtime, LocalSession(tmp_path / "ckpt")) == "finished"  # 2 epochs: no onset yet
    (run,) = client.search_runs([eid], f"tags.`study.instance` = '{runtime.instance}'")
    logged = run.data.metrics
    assert keys.onset_key("ddim-3", "state") in logged and keys.onset_key("ddim-3", "rise") in logged
    assert keys.score_key("memorization_feature", "digits-cnn", 40, "ddim-3", "held_out_se") in logged
    history = client.get_metric_history(run.info.run_id, keys.onset_key("ddim-3", "state"))
    assert sorted(m.step for m in history) == [1, 2]
