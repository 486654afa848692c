"""Closed forms and coverage for study/statistics/stats.py: IS from logits, bootstrap and paired intervals,
IS-infinity."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch_fidelity.metric_isc import isc_features_to_metric

from study.statistics.stats import bootstrap_is, inception_score, is_infinity, split_std_to_se

CLASSES = 10


def mixture(rng: np.random.Generator, types: int = 30, alpha: float = 0.3) -> tuple[np.ndarray, np.ndarray]:
    """A population of image types, each with a fixed p(y|x): (type weights, log p(y|x) per type)."""
    weights = rng.dirichlet(np.ones(types))
    logp = np.log(rng.dirichlet(np.full(CLASSES, alpha), size=types) + 1e-12)
    return weights, logp


def population_is(weights: np.ndarray, logp: np.ndarray) -> float:
    """exp(H(sum_m w_m P_m) - sum_m w_m H(P_m)): the IS of infinitely many images, in closed form."""
    p = np.exp(logp)
    marginal = weights @ p
    return math.exp(-(marginal * np.log(marginal)).sum() + (weights * (p * logp).sum(1)).sum())


def draw(weights: np.ndarray, logp: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    return logp[rng.choice(len(weights), size=n, p=weights)]


@pytest.mark.parametrize("shuffle", [True, False])
def test_inception_score_is_torch_fidelitys(shuffle: bool) -> None:
    z = np.random.default_rng(1).normal(size=(400, CLASSES)) * 3
    ref = isc_features_to_metric(torch.tensor(z), splits=10, shuffle=shuffle)
    mean, std = inception_score(z, 10, shuffle)
    assert mean == pytest.approx(ref["inception_score_mean"], rel=1e-12)
    assert std == pytest.approx(ref["inception_score_std"], rel=1e-9)


def test_bootstrap_interval_covers_the_expected_score() -> None:
    """Over 150 independent sample sets, the 95 % interval covers E[IS_N] (Monte Carlo) about 95 % of the time."""
    rng = np.random.default_rng(0)
    weights, logp = mixture(rng)
    truth = np.mean([inception_score(draw(weights, logp, 400, rng))[0] for _ in range(2000)])
    hits = []
    for i in range(150):
        boot = bootstrap_is(draw(weights, logp, 400, rng), replicates=300, seed=i)
        lo, hi = boot.ci()
        hits.append(lo[0] <= truth <= hi[0])
    assert 0.88 <= np.mean(hits) <= 1.0, np.mean(hits)


def test_split_std_converts_to_the_standard_error_of_the_mean() -> None:
    rng = np.random.default_rng(2)
    weights, logp = mixture(rng)
    runs = [inception_score(draw(weights, logp, 500, rng)) for _ in range(800)]
    observed_se = np.std([m for m, _ in runs], ddof=1)
    predicted_se = np.mean([split_std_to_se(s, 10) for _, s in runs])
    assert predicted_se == pytest.approx(observed_se, rel=0.15)
    assert math.isnan(split_std_to_se(0.3, 1))


def test_paired_difference_of_identical_evaluations_is_exactly_zero() -> None:
    z = np.random.default_rng(3).normal(size=(200, CLASSES))
    assert bootstrap_is([z, z.copy()], replicates=100).diff_ci(0, 1) == (0.0, 0.0, 0.0)


def test_paired_interval_is_narrower_than_unpaired() -> None:
    """Two evaluations of the same noise (image i coupled) versus two independent sets of images."""
    rng = np.random.default_rng(4)
    weights, logp = mixture(rng)
    a = draw(weights, logp, 400, rng)
    b = a + rng.normal(size=a.shape) * 0.2  # the same images, slightly changed
    paired = bootstrap_is([a, b], replicates=400)
    _, lo, hi = paired.diff_ci(0, 1)
    se_a, se_b = bootstrap_is(a, replicates=400).se()[0], bootstrap_is(b, replicates=400, seed=9).se()[0]
    assert (hi - lo) < 0.5 * 2 * 1.96 * math.hypot(se_a, se_b)


def test_bootstrap_is_deterministic_and_checks_pairing() -> None:
    z = np.random.default_rng(5).normal(size=(100, CLASSES))
    assert np.array_equal(bootstrap_is(z, replicates=50, seed=1).replicates,
                          bootstrap_is(z, replicates=50, seed=1).replicates)  # fmt: skip
    with pytest.raises(ValueError, match="same number of images"):
        bootstrap_is([z, z[:50]])


def test_is_infinity_recovers_the_population_score() -> None:
    """IS-infinity from 1000 images of 2000 confident types is far closer to the closed-form population IS than
    IS with 10 splits of 100 images (biased low: about -0.17 here)."""
    rng = np.random.default_rng(6)
    weights, logp = mixture(rng, types=2000, alpha=0.05)
    truth = population_is(weights, logp)
    errs_inf, errs_split = [], []
    for i in range(20):
        z = draw(weights, logp, 1000, rng)
        errs_inf.append(is_infinity(z, seed=i).value - truth)
        errs_split.append(inception_score(z, 10)[0] - truth)
    assert abs(np.mean(errs_inf)) < 0.25 * abs(np.mean(errs_split))
    assert abs(np.mean(errs_inf)) < 0.02 * truth
    fit = is_infinity(draw(weights, logp, 1000, rng))
    assert fit.at(1e12) == pytest.approx(fit.value) and fit.sizes[0] == 100 and fit.sizes[-1] == 1000


def test_bootstraps_of_single_evaluations_stack_into_the_paired_bootstrap() -> None:
    """The stopper draws each epoch's replicates once, when the epoch is added: with one seed they are the
    columns of the joint paired bootstrap, bit for bit (the same image indices for every evaluation)."""
    from study.statistics.stats import PairedBootstrap

    rng = np.random.default_rng(0)
    mats = [rng.normal(size=(300, 10)) * s for s in (1.0, 1.5, 2.0)]
    joint = bootstrap_is(mats, 10, True, 200, 7)
    stacked = PairedBootstrap.stack([bootstrap_is([m], 10, True, 200, 7) for m in mats])
    assert np.array_equal(joint.replicates, stacked.replicates) and np.array_equal(joint.estimates, stacked.estimates)


def test_is_infinity_interval_covers_its_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(1)
    small = is_infinity(rng.normal(size=(200, 10)) * 2, replicates=100)
    large = is_infinity(rng.normal(size=(3200, 10)) * 2, replicates=100)
    assert small.low < small.value < small.high and large.low < large.value < large.high
    assert large.high - large.low < (small.high - small.low) / 2
