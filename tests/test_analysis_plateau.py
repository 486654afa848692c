"""Plateau detection on synthetic IS curves with known plateau epochs (pure, no MLflow)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from analysis.plateau import Plateau, PlateauRule, detect_plateau

STD = 0.3  # typical split std at n=500 on digits; tolerance k*sqrt(2)*0.3 = 0.424


def saturating(epochs: np.ndarray, top: float = 7.5, rise: float = 3.5, tau: float = 20.0) -> np.ndarray:
    return top - rise * np.exp(-epochs / tau)


EXP_EPOCHS = np.arange(5, 151, 5)
# Noise free: IS(150) - IS(40) = 0.472 > 0.424 >= IS(150) - IS(45) = 0.367, so the plateau is epoch 45.
EXP_PLATEAU = 45


def test_saturating_exponential_noise_free() -> None:
    p = detect_plateau(EXP_EPOCHS, saturating(EXP_EPOCHS), np.full(EXP_EPOCHS.size, STD))
    assert p.converged and p.epoch == EXP_PLATEAU
    assert p.is_mean == pytest.approx(saturating(np.array([45.0]))[0])
    assert p.is_std == pytest.approx(STD)
    assert p.reason == ""
    assert "epoch <= 2" in p.rule


@pytest.mark.parametrize("seed", range(5))
def test_saturating_exponential_with_noise(seed: int) -> None:
    rng = np.random.default_rng(seed)
    means = saturating(EXP_EPOCHS) + rng.normal(0, 0.05, EXP_EPOCHS.size)
    stds = STD + rng.uniform(-0.1, 0.2, EXP_EPOCHS.size)
    p = detect_plateau(EXP_EPOCHS, means, stds)
    assert p.converged
    assert abs(p.epoch - EXP_PLATEAU) <= 10


def test_std_widens_tolerance() -> None:
    """Noisier IS (bigger split std) means an earlier plateau; a tight std a later one."""
    means = saturating(EXP_EPOCHS)
    early = detect_plateau(EXP_EPOCHS, means, np.full(EXP_EPOCHS.size, 0.6))
    late = detect_plateau(EXP_EPOCHS, means, np.full(EXP_EPOCHS.size, 0.1))
    assert early.epoch < EXP_PLATEAU < late.epoch


def test_still_rising_linear_is_not_converged() -> None:
    epochs = np.arange(1, 31)
    p = detect_plateau(epochs, 3.0 + 0.1 * epochs, np.full(epochs.size, STD))
    assert not p.converged
    assert p.epoch is None and p.is_mean is None and p.is_std is None
    assert p.reason == "still improving"


def test_linear_rise_within_noise_counts_as_flat() -> None:
    """A rise of 0.29 over the whole curve is below the 0.42 tolerance: flat from the first epoch."""
    epochs = np.arange(1, 31)
    p = detect_plateau(epochs, 5.0 + 0.01 * epochs, np.full(epochs.size, STD))
    assert p.converged and p.epoch == 3  # first epoch after the 2-epoch warm-up


def test_flat_curve_converges_at_first_epoch_after_warmup() -> None:
    rng = np.random.default_rng(0)
    epochs = np.arange(1, 21)
    p = detect_plateau(epochs, 6.0 + rng.normal(0, 0.05, epochs.size), np.full(epochs.size, STD))
    assert p.converged and p.epoch == 3


def test_flat_curve_with_zero_std() -> None:
    epochs = np.arange(1, 11)
    p = detect_plateau(epochs, np.full(10, 5.0), np.zeros(10))
    assert p.converged and p.epoch == 3


def test_early_dip_then_rise_then_plateau() -> None:
    """Epochs 1-2 score high (blobs), dip to 4.0, rise 0.3/epoch to 7.0 at epoch 15, then flat.

    IS(14) = 6.7 is within 0.42 of 7.0; IS(13) = 6.4 is not: the plateau is epoch 14.
    """
    epochs = np.arange(1, 41)
    means = np.concatenate([[4.5, 4.2, 4.0, 4.0], 4.0 + 0.3 * (np.arange(5, 16) - 5), np.full(25, 7.0)])
    assert means.size == epochs.size and means[14] == pytest.approx(7.0)
    p = detect_plateau(epochs, means, np.full(epochs.size, STD))
    assert p.converged and p.epoch == 14


def test_warmup_ignores_early_blob_scores() -> None:
    """A short curve whose epoch-1 blob score is never beaten by more than the noise.

    Without warm-up epoch 1 would be taken as the plateau; with it the dip and the rise are seen:
    IS(3..5) are beaten by the last two evaluations, IS(6) = 4.2 is within noise of everything after.
    """
    epochs = np.arange(1, 11)
    means = np.array([4.6, 4.3, 4.0, 4.0, 4.1, 4.2, 4.3, 4.4, 4.5, 4.6])
    stds = np.full(epochs.size, STD)
    assert detect_plateau(epochs, means, stds, PlateauRule(warmup_epochs=0)).epoch == 1
    p = detect_plateau(epochs, means, stds)
    assert p.converged and p.epoch == 6


def test_single_spike_after_plateau_is_ignored() -> None:
    means = saturating(EXP_EPOCHS)
    spike_at = int(np.flatnonzero(EXP_EPOCHS == 100)[0])
    means[spike_at] += 1.5
    stds = np.full(EXP_EPOCHS.size, STD)
    assert detect_plateau(EXP_EPOCHS, means, stds).epoch == EXP_PLATEAU
    # without spike tolerance the spike itself becomes the plateau
    assert detect_plateau(EXP_EPOCHS, means, stds, PlateauRule(max_spikes=0)).epoch == 100


def test_two_consecutive_high_values_are_a_real_rise() -> None:
    epochs = np.arange(1, 31)
    means = np.full(30, 6.0)
    means[[20, 21]] = 7.0  # epochs 21 and 22 jump and the curve stays there
    means[22:] = 7.0
    p = detect_plateau(epochs, means, np.full(30, STD))
    assert p.epoch == 21


def test_spike_at_last_evaluation_is_not_forgiven() -> None:
    epochs = np.arange(1, 21)
    means = np.full(20, 6.0)
    means[-1] = 7.5
    p = detect_plateau(epochs, means, np.full(20, STD))
    assert not p.converged and p.reason == "still improving"


def test_nan_and_inf_values_are_dropped() -> None:
    """A trial that diverged after epoch 100: NaN / inf IS afterwards; NaN std counts as 0."""
    means = saturating(EXP_EPOCHS)
    means[EXP_EPOCHS > 100] = np.nan
    means[EXP_EPOCHS == 100] = np.inf
    stds = np.full(EXP_EPOCHS.size, STD)
    stds[EXP_EPOCHS > 100] = np.nan
    p = detect_plateau(EXP_EPOCHS, means, stds)
    assert p.converged
    # last finite epoch is 95: IS(95) - IS(40) = 0.464 > 0.424 >= IS(95) - IS(45) = 0.36
    assert p.epoch == EXP_PLATEAU


def test_all_nan_is_not_converged() -> None:
    p = detect_plateau([1, 2, 3, 4, 5], [math.nan] * 5, [math.nan] * 5)
    assert not p.converged and p.reason == "no finite IS after warm-up"


def test_collapse_after_plateau_keeps_plateau() -> None:
    epochs = np.arange(1, 21)
    means = np.concatenate([np.full(12, 7.0), np.full(8, 1.0)])
    p = detect_plateau(epochs, means, np.full(20, STD))
    assert p.converged and p.epoch == 3


@pytest.mark.parametrize(
    ("epochs", "means"),
    [([], []), ([3], [5.0]), ([3, 4], [5.0, 5.0]), ([1, 2, 3, 4], [5.0, 5.0, 5.0, 5.0])],
)
def test_too_short_curves(epochs: list[int], means: list[float]) -> None:
    p = detect_plateau(epochs, means, [0.3] * len(means))
    assert not p.converged and p.epoch is None
    assert p.reason.startswith(("too short", "no finite"))


def test_unsorted_and_duplicated_epochs() -> None:
    """Order does not matter; a re-logged epoch keeps its last value."""
    means = saturating(EXP_EPOCHS)
    order = np.random.default_rng(1).permutation(EXP_EPOCHS.size)
    stds = np.full(EXP_EPOCHS.size, STD)
    assert detect_plateau(EXP_EPOCHS[order], means[order], stds[order]).epoch == EXP_PLATEAU
    ep = np.concatenate([[45], EXP_EPOCHS])
    mu = np.concatenate([[0.0], means])  # the stale first value of epoch 45 is overridden
    assert detect_plateau(ep, mu, np.full(ep.size, STD)).epoch == EXP_PLATEAU


def test_without_std_uses_min_delta() -> None:
    epochs = np.arange(1, 21)
    means = 6.0 + 0.02 * epochs
    assert not detect_plateau(epochs, means).converged
    assert detect_plateau(epochs, means, rule=PlateauRule(min_delta=0.5)).epoch == 3


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="equal length"):
        detect_plateau([1, 2, 3], [1.0, 2.0], [0.1, 0.1, 0.1])
    with pytest.raises(ValueError, match="patience"):
        PlateauRule(patience=0)


def test_plateau_is_frozen() -> None:
    p = detect_plateau(EXP_EPOCHS, saturating(EXP_EPOCHS), np.full(EXP_EPOCHS.size, STD))
    assert isinstance(p, Plateau)
    with pytest.raises(AttributeError):
        p.epoch = 3  # type: ignore[misc]


@pytest.mark.parametrize(("std", "expected"), [(0.2, 200), (0.3, 160), (0.5, 120)])
def test_measured_digits_curve(std: float, expected: int) -> None:
    """The clean n=500 DDPM curve of MEASURED-CPU.md section 3 (plateau ~7.5 from about epoch 200)."""
    epochs = [5, 10, 20, 40, 60, 80, 100, 120, 140, 160, 180, 200, 220, 240, 260, 280, 300]
    means = [3.92, 4.14, 4.54, 5.36, 6.13, 6.55, 6.84, 6.93, 7.19, 7.26, 7.32, 7.40, 7.45, 7.54, 7.65, 7.63, 7.56]
    assert detect_plateau(epochs, means, [std] * len(epochs)).epoch == expected
