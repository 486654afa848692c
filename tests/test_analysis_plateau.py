"""Plateau rule v2 (analysis/plateau.py) on curves with a known answer; its calibration is in
test_plateau_calibration.py."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.plateau import Curve, PlateauRule, assess, decide

EPOCHS = np.arange(5, 105, 5, dtype=float)  # 20 evaluations


def summary(means, se: float = 0.05, epochs=EPOCHS) -> Curve:
    return Curve.from_summary(np.asarray(epochs, float), np.asarray(means, float), np.full(len(means), se))


def test_saturating_curve_plateaus_where_it_flattens() -> None:
    means = 7.5 - 3.5 * np.exp(-EPOCHS / 12)  # remaining rise 3.5 exp(-e/12) falls below the margin near e = 42
    v = assess(summary(means))
    assert v.state == "plateaued" and v.converged
    assert 35 <= v.epoch <= 50, v
    assert v.value == pytest.approx(means[list(EPOCHS).index(v.epoch)])
    assert v.epoch_low <= v.epoch <= v.epoch_high and 0 < v.support <= 1


def test_linear_rise_is_rising() -> None:
    v = assess(summary(4 + 0.02 * EPOCHS))  # 0.5 over the last quarter = 7 SE_d
    assert v.state == "rising" and v.epoch is None and not v.converged and "rising" in v.reason


def test_rise_within_the_margin_counts_as_flat() -> None:
    v = assess(summary(4 + 0.0005 * EPOCHS))  # 0.0125 over the last quarter: far below 3 SE_d = 0.21
    assert v.state == "plateaued" and v.epoch == 5


def test_flat_curve_plateaus_at_the_first_evaluation_after_warmup() -> None:
    epochs = np.arange(1, 21, dtype=float)
    v = assess(summary(np.full(20, 5.0), epochs=epochs))
    assert v.state == "plateaued" and v.epoch == 3  # epochs 1-2 are the warm-up


def test_zero_uncertainty_flat_curve() -> None:
    assert assess(summary(np.full(20, 5.0), se=0.0)).epoch == 5


def test_peak_then_decline_is_peaked() -> None:
    means = np.where(EPOCHS <= 50, 4 + 0.06 * EPOCHS, 7 - 0.04 * (EPOCHS - 50))  # NCSNv2's rise and fall
    v = assess(summary(means))
    assert v.state == "peaked" and v.converged and v.peak_epoch == 50 and v.epoch <= 50


def test_a_small_decline_is_still_a_plateau() -> None:
    means = np.where(EPOCHS <= 30, 4 + 0.1 * EPOCHS, 7 - 0.001 * (EPOCHS - 30))
    assert assess(summary(means)).state == "plateaued"


def test_one_noisy_high_evaluation_at_the_end_is_not_a_resolved_rise() -> None:
    means = np.full(20, 5.0)
    means[-1] += 0.1  # 1.4 SE_d: within noise
    assert assess(summary(means)).state == "plateaued"


def test_a_jump_at_the_end_is_a_rise() -> None:
    means = np.full(20, 5.0)
    means[-2:] += 1.0  # a resolved improvement beyond the margin after every candidate start
    assert assess(summary(means)).state == "rising"


def test_pairing_resolves_what_independent_errors_cannot() -> None:
    """The same estimates rising by 0.2 per quarter: unpaired (SE 0.1, SE_d 0.14, margin 0.42) that is flat at
    this precision; paired (rho 0.95, SE_d 0.03, margin 0.09) it is a resolved rise."""
    means = 5 + 0.008 * EPOCHS
    k = len(EPOCHS)
    unpaired = Curve(EPOCHS, means, 0.01 * np.eye(k))
    paired = Curve(EPOCHS, means, 0.01 * (0.05 * np.eye(k) + 0.95 * np.ones((k, k))))
    assert assess(unpaired).state == "plateaued"
    assert assess(paired).state == "rising"


def test_too_short_and_empty_curves_are_undetermined() -> None:
    assert assess(summary([4.0, 5.0], epochs=[5, 10])).state == "undetermined"
    v = assess(summary([math.nan, math.nan, math.nan], epochs=[5, 10, 15]))
    assert v.state == "undetermined" and "no finite" in v.reason


def test_non_finite_and_warmup_evaluations_are_dropped() -> None:
    means = np.full(20, 5.0)
    means[3] = math.nan
    epochs = EPOCHS.copy()
    epochs[0] = 1  # inside the warm-up
    v = assess(summary(means, epochs=epochs))
    assert v.state == "plateaued" and v.epoch == 10


def test_decide_is_the_same_rule_on_clean_inputs() -> None:
    means = 7.5 - 3.5 * np.exp(-EPOCHS / 12)
    state, idx, _, margin = decide(EPOCHS, means, 0.05**2 * np.eye(20), PlateauRule())
    assert margin == pytest.approx(3 * 0.05 * np.sqrt(2), rel=1e-6)  # 3 SE of a difference (no checkpoint noise)
    assert state == "plateaued" and EPOCHS[idx] == assess(summary(means)).epoch


def test_rule_parameters_are_validated_and_described() -> None:
    with pytest.raises(ValueError):
        PlateauRule(patience=0)
    with pytest.raises(ValueError):
        PlateauRule(margin_se=-1)
    assert "3 x SE of the difference e -> last: paired bootstrap plus" in PlateauRule().describe()


def test_curve_from_shared_noise_logits_is_paired() -> None:
    """Logits that share per-image noise across epochs (the evaluation seed) give correlated estimates."""
    rng = np.random.default_rng(0)
    base = rng.normal(size=(300, 10)) * 2
    mats = [base * (1 + 0.05 * k) + rng.normal(size=base.shape) * 0.1 for k in range(6)]
    c = Curve.from_logits(np.arange(5, 35, 5, dtype=float), mats, splits=10, replicates=300)
    corr = c.cov[0, 1] / math.sqrt(c.cov[0, 0] * c.cov[1, 1])
    assert c.paired and corr > 0.8
    assert np.all(c.ci_low < c.estimates) and np.all(c.estimates < c.ci_high)
    assert assess(c).state == "rising"  # sharper class probabilities each epoch: IS rises steadily
