"""Plateau rule v3 (study/statistics/plateau.py) on curves with a known answer, in score units; its calibration over all
the stopper's looks is in test_plateau_calibration.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from study.statistics.plateau import Curve, PlateauRule, assess, streak

EPOCHS = np.arange(10, 250, 10, dtype=float)  # 24 evaluations over a 240-epoch budget
RULE = PlateauRule(margin=0.15)


def summary(means, se: float = 0.02, epochs=EPOCHS, budget: float | None = 240.0) -> Curve:
    return Curve.from_summary(np.asarray(epochs, float), np.asarray(means, float), np.full(len(means), se),
                              budget=budget)  # fmt: skip


def test_saturating_curve_plateaus_where_it_flattens() -> None:
    """4 + 2 (1 - exp(-e / 20)): within 0.15 of its final value from epoch 52 on (first evaluation: 60)."""
    v = assess(summary(4 + 2 * (1 - np.exp(-EPOCHS / 20))), RULE)
    assert v.state == "plateaued" and v.stopped_changing
    assert 50 <= v.epoch <= 70 and v.epoch_low <= 60 <= v.epoch_high
    assert -0.15 < v.change_low and v.change_high < 0.15 and v.margin == 0.15


def test_steady_rise_beyond_the_margin_is_rising() -> None:
    v = assess(summary(4 + 0.01 * EPOCHS), RULE)  # 2.4 IS over the budget
    assert v.state == "rising" and v.epoch is None and not v.stopped_changing and "rise beyond delta" in v.reason


def test_a_rise_below_the_margin_is_a_plateau() -> None:
    v = assess(summary(4 + 0.0002 * EPOCHS), RULE)  # 0.05 IS over the budget, well inside +-0.15
    assert v.state == "plateaued" and v.epoch == 10


def test_the_margin_is_in_score_units_not_standard_errors() -> None:
    """More images never make the plateau later: the same curve with a 10x smaller SE plateaus no later."""
    means = 4 + 2 * (1 - np.exp(-EPOCHS / 30))
    coarse, fine = assess(summary(means, se=0.03), RULE), assess(summary(means, se=0.003), RULE)
    assert coarse.margin == fine.margin == 0.15
    assert fine.state == "plateaued" and (coarse.state != "plateaued" or fine.epoch <= coarse.epoch)


def test_a_decline_beyond_the_margin_is_peaked_never_plateaued() -> None:
    """The tail test is two-sided: a falling tail is not flat."""
    means = np.where(EPOCHS <= 120, 4 + EPOCHS / 120, 5 - (EPOCHS - 120) / 120)  # falls by 1.0 after epoch 120
    v = assess(summary(means), RULE)
    assert v.state == "peaked" and v.peak_epoch == 120 and v.epoch == 120


def test_e3_ve_euler_shape_is_peaked_or_undetermined() -> None:
    """The digits E3 VE Euler curve: up to 3.5 at epoch 50, back to 2.3, with checkpoint noise of +-0.6 that the
    rule is not told about (SE 0.12 per evaluation). The old rule called it flat from epoch 10."""
    e = np.arange(10, 90, 10, dtype=float)
    rng = np.random.default_rng(3)
    for _ in range(20):
        means = np.interp(e, [10, 50, 80], [2.6, 3.5, 2.3]) + rng.normal(size=e.size) * 0.3
        v = assess(summary(means, se=0.12, epochs=e), PlateauRule(margin=0.25))
        assert v.state in ("peaked", "undetermined"), (means, v)


def test_a_short_curve_is_undetermined_not_plateaued() -> None:
    """[5.0, 5.1, 5.2] with SE 0.12 was 'plateaued at 10 [10-10]' under the old rule."""
    v = assess(summary([5.0, 5.1, 5.2], se=0.12, epochs=[10, 20, 30]), RULE)
    assert v.state == "undetermined" and v.epoch is None
    assert "more evaluations" in v.reason or "straddles" in v.reason


def test_noisy_curve_is_undetermined_with_what_would_resolve_it() -> None:
    rng = np.random.default_rng(0)
    v = assess(summary(5 + rng.normal(size=EPOCHS.size) * 0.3, se=0.3), RULE)
    assert v.state == "undetermined" and "straddles delta" in v.reason
    assert "seeds" in v.reason or "more samples" in v.reason


def test_relative_margin_scales_with_the_score() -> None:
    rule = PlateauRule(margin=0.02, relative=True)
    v = assess(summary(np.full(EPOCHS.size, 10.0)), rule)
    assert v.margin == pytest.approx(0.2) and v.state == "plateaued"
    assert "2% of the latest score" in rule.describe()


def test_warmup_and_nonfinite_are_dropped() -> None:
    means = np.full(EPOCHS.size, 5.0)
    means[3] = math.nan
    v = assess(summary(means), PlateauRule(margin=0.15, warmup_epochs=20))
    assert v.state == "plateaued" and v.epoch == 30
    assert assess(summary([math.nan] * 3, epochs=[10, 20, 30]), RULE).state == "undetermined"


def test_streak_counts_consecutive_looks() -> None:
    """The stopper needs ``persistence`` consecutive plateaued looks: a flat curve's streak grows by one per look."""
    flat = summary(np.full(EPOCHS.size, 5.0), se=0.01)
    full = streak(flat, RULE)
    shorter = streak(flat.select(EPOCHS <= 200), RULE)
    assert full == shorter + 4 and shorter >= 1


def test_rule_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError):
        PlateauRule(margin=0)
    with pytest.raises(ValueError):
        PlateauRule(min_tail=2)
    assert "never derived from the noise" in PlateauRule().describe()


def test_curve_from_shared_noise_logits_is_paired() -> None:
    """Logits that share per-image noise across epochs (the evaluation seed) give correlated estimates."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 10)) * 2
    mats = [base * (1 + 0.05 * k) + rng.normal(size=base.shape) * 0.1 for k in range(6)]
    c = Curve.from_logits(np.arange(5, 35, 5, dtype=float), mats, splits=10, replicates=300)
    corr = c.cov[0, 1] / math.sqrt(c.cov[0, 0] * c.cov[1, 1])
    assert c.paired and corr > 0.8
    assert np.all(c.ci_low < c.estimates) and np.all(c.estimates < c.ci_high)
    assert assess(c, PlateauRule(margin=0.05)).state == "rising"  # sharper class probabilities: IS rises steadily
