"""The ``memorizes_later`` claim: a's memorization onset after b's, resolved from the onset epochs' ranges, with a
curve free of an onset censored at its last evaluation and an undetermined one unknown (not late)."""

from __future__ import annotations

import math

import pandas as pd

from analysis.claims import check_claims, onset_range
from analysis.runs import StudyRuns
from study.contract.spec.claims import ClaimSpec
from study.statistics.onset import Onset

EPOCHS = [10, 20, 30, 40, 50, 60]


def _study(sizes: list[str]) -> StudyRuns:
    trials = [f"t{i}_size={s}" for i, s in enumerate(sizes)]
    scores = pd.DataFrame([{"trial": t, "size": s, "evaluation": "ddim-20", "extractor": "digits-cnn",
                            "n_samples": 200, "epoch": e, "is_mean": 5.0}
                           for t, s in zip(trials, sizes, strict=True) for e in EPOCHS])  # fmt: skip
    table = pd.DataFrame({"trial": trials, "size": sizes, "status": "finished"})
    return StudyRuns("mem", "memory:", "0", None, ["size"], scores, pd.DataFrame(), table)


CLAIM = ClaimSpec.model_validate({"text": "onset grows with size", "kind": "memorizes_later",
                                  "a": {"axes": {"size": "256"}}, "b": {"axes": {"size": "64"}}})  # fmt: skip


def _judge(a: Onset, b: Onset) -> str:
    study = _study(["64", "256"])
    onsets = {("t0_size=64", "ddim-20", "digits-cnn", 200): b, ("t1_size=256", "ddim-20", "digits-cnn", 200): a}
    return check_claims(study, {}, [CLAIM], onsets)[0].verdict


def test_onset_ranges_censor_a_resolved_absence_and_leave_an_undetermined_curve_unknown() -> None:
    assert onset_range(Onset("onset", epoch=30, epoch_low=20, epoch_high=40), 10, 60) == (20.0, 40.0)
    assert onset_range(Onset("no onset"), 10, 60) == (60.5, math.inf)
    assert onset_range(Onset("undetermined"), 10, 60) == (10.0, math.inf)


def test_the_claim_is_supported_only_when_the_ranges_are_ordered() -> None:
    early = Onset("onset", epoch=20, epoch_low=10, epoch_high=30)
    late = Onset("onset", epoch=50, epoch_low=40, epoch_high=60)
    assert _judge(a=late, b=early) == "supported"
    assert _judge(a=Onset("no onset"), b=early) == "supported"  # censored after epoch 60
    assert _judge(a=early, b=late) == "contradicted"
    assert _judge(a=Onset("onset", epoch=30, epoch_low=20, epoch_high=40), b=early) == "unresolved"  # overlap
    # an undetermined curve may already be copying: it supports nothing
    assert _judge(a=Onset("undetermined"), b=early) == "unresolved"
    assert _judge(a=late, b=Onset("undetermined")) == "unresolved"


def test_a_study_without_a_memorization_score_has_no_data() -> None:
    assert check_claims(_study(["64", "256"]), {}, [CLAIM])[0].verdict == "no data"
