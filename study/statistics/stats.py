"""What a score's numbers mean: the Inception Score from per-image logits, bootstrap and paired confidence
intervals over the generated images, and IS-infinity (shared/STATISTICS.md sections 1-2).

Everything here reads the per-image logits an evaluation keeps (``evaluations/<id>/epoch-*.npz``), so any
statistic can be recomputed later without sampling again.

* **IS with splits** (torch-fidelity ``isc_features_to_metric``, original improved-gan code): shuffle the N images
  with ``RandomState(2020)`` (unless ``shuffle`` is off), cut them into S parts ``[i N // S, (i+1) N // S)``, and
  on each part compute ``IS = exp(E_x KL(p(y|x) || p(y))) = exp(H(p(y)) - E_x H(p(y|x)))`` with that part's own
  marginal p(y); report the mean and the (ddof 0) std of the S values.
* **The split std is not the standard error of the mean.** If the parts are independent, the standard error of
  their mean is ``split_std / sqrt(S - 1)`` (ddof-0 std; with S = 10 that is std / 3). ``split_std_to_se``.
* **Bootstrap over images**: a replicate draws N images with replacement and recomputes IS *with the same split
  procedure* (each part draws its ``n_s`` images uniformly from the N; the shuffle is moot for i.i.d. draws).
  B replicates give percentile intervals and a standard error.
* **Paired** (common random numbers): evaluations that start from the same initial noise (every epoch of a
  trial; trials and samplers that share ``evaluation.seed``) couple image i across evaluations. Replicates then
  reuse the *same* drawn indices for every evaluation, so ``replicates[:, j] - replicates[:, i]`` is the
  bootstrap distribution of the difference, far narrower than either interval alone. Unpaired evaluations
  (different initial noise, e.g. two studies with different seeds or sample counts) must not be bootstrapped
  together: their difference's variance is the sum of their variances.
* **IS-infinity** (Chong & Forsyth 2020, "Effectively Unbiased FID and Inception Score and where to find them",
  arXiv 1911.07023): IS computed on random subsets of ``num_points`` sizes from ``min_fraction * N`` to N (one
  split each), fitted by least squares against 1/n and read off at 1/n = 0. The bias of IS_n is close to linear
  in 1/n, so IS-infinity is comparable across sample counts (not across extractors).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "PairedBootstrap", "BootstrapSettings", "ISInfinity", "inception_score", "bootstrap_is", "is_infinity",
    "split_std_to_se", "probabilities",
]  # fmt: skip

DEFAULT_REPLICATES = 1000
TORCH_FIDELITY_SEED = 2020


def split_std_to_se(split_std: float, splits: int) -> float:
    """Standard error of the mean of ``splits`` independent split scores from their ddof-0 std (``std / sqrt(S-1)``).

    For curves known only by summary statistics (older runs, numbers from papers). With one split there is no
    spread to convert: NaN.
    """
    return split_std / math.sqrt(splits - 1) if splits > 1 else math.nan


def probabilities(logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(p(y|x) [N, C], entropy H(p(y|x)) [N]) in float64 from logits (a float64 log-softmax, as torch-fidelity)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    return p, -(p * log_p).sum(axis=1)


def _entropy(q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return -np.where(q > 0, q * np.log(q), 0.0).sum(axis=-1)


def _split_bounds(n: int, splits: int) -> list[tuple[int, int]]:
    return [(i * n // splits, (i + 1) * n // splits) for i in range(splits)]


def inception_score(
    logits: np.ndarray, splits: int = 10, shuffle: bool = True, seed: int = TORCH_FIDELITY_SEED
) -> tuple[float, float]:
    """(mean, split std) of the IS of N images from their logits: torch-fidelity's procedure (module docstring)."""
    p, h = probabilities(logits)
    if shuffle:
        order = np.random.RandomState(seed).permutation(p.shape[0])
        p, h = p[order], h[order]
    scores = [math.exp(_entropy(p[lo:hi].mean(0)) - h[lo:hi].mean()) for lo, hi in _split_bounds(p.shape[0], splits)]
    return float(np.mean(scores)), float(np.std(scores))


@dataclass(frozen=True)
class PairedBootstrap:
    """IS of K evaluations on the same N coupled images and B paired bootstrap replicates.

    ``estimates[k]`` is the split-procedure IS of evaluation k; ``replicates[b, k]`` its value on replicate b (the
    same resampled image indices for every k).
    """

    estimates: np.ndarray  # (K,)
    replicates: np.ndarray  # (B, K)
    splits: int

    def se(self) -> np.ndarray:
        """Bootstrap standard error of each estimate (K,)."""
        return self.replicates.std(axis=0, ddof=1)

    def cov(self) -> np.ndarray:
        """Bootstrap covariance of the K estimates (K, K): what a paired contrast's variance is made of."""
        return np.atleast_2d(np.cov(self.replicates, rowvar=False))

    def ci(self, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
        """Percentile intervals of the centred replicates (low (K,), high (K,)).

        Resampling with replacement duplicates images (about 63 % distinct), which lowers IS by roughly half a
        standard error at n = 400; the plain percentile interval would then sit below the estimate. Centring
        (``centred``) removes that shift: the interval is ``estimate + percentiles of (replicate - mean)``.
        """
        a = (1 - level) / 2
        c = self.centred()
        return np.quantile(c, a, axis=0), np.quantile(c, 1 - a, axis=0)

    def diff_ci(self, i: int, j: int, level: float = 0.95) -> tuple[float, float, float]:
        """(IS_j - IS_i, low, high): the paired percentile interval of a difference."""
        d = self.replicates[:, j] - self.replicates[:, i]
        a = (1 - level) / 2
        return float(self.estimates[j] - self.estimates[i]), float(np.quantile(d, a)), float(np.quantile(d, 1 - a))

    @classmethod
    def stack(cls, parts: Sequence[PairedBootstrap]) -> PairedBootstrap:
        """Evaluations bootstrapped one at a time with the same seed and settings drew the same image indices:
        their columns side by side are the paired bootstrap of all of them (``bootstrap_is`` on the list)."""
        return cls(np.concatenate([p.estimates for p in parts]), np.hstack([p.replicates for p in parts]),
                   parts[0].splits)  # fmt: skip

    def centred(self) -> np.ndarray:
        """Replicates shifted so that their mean is the estimate: draws of the estimate's sampling error around it.

        Resampling with replacement duplicates images, which lowers IS a little; centring removes that bias for
        uses that perturb the point estimates (the plateau epoch's interval).
        """
        return self.replicates - self.replicates.mean(axis=0) + self.estimates


def bootstrap_is(
    logits: Sequence[np.ndarray] | np.ndarray,
    splits: int = 10,
    shuffle: bool = True,
    replicates: int = DEFAULT_REPLICATES,
    seed: int = 0,
) -> PairedBootstrap:
    """Paired bootstrap of the IS of K evaluations whose image i shares its initial noise (module docstring).

    ``logits``: one [N, C] array per evaluation (all the same N), or a single array. The estimates use
    torch-fidelity's split procedure (with its shuffle); each replicate's parts draw their images uniformly from
    all N, the same draws for every evaluation. Deterministic for a given ``seed``.
    """
    mats = [logits] if isinstance(logits, np.ndarray) else list(logits)
    n = mats[0].shape[0]
    if any(m.shape[0] != n for m in mats):
        raise ValueError(f"paired evaluations need the same number of images, got {[m.shape[0] for m in mats]}")
    probs = [probabilities(m) for m in mats]
    est = np.array([inception_score(m, splits, shuffle)[0] for m in mats])
    sizes = [hi - lo for lo, hi in _split_bounds(n, splits)]
    rng = np.random.default_rng(seed)
    width = max(sizes) * mats[0].shape[1]
    chunk = max(1, min(replicates, 8_000_000 // max(width, 1)))  # bounds the gathered (b, n_s, C) block
    out = np.empty((replicates, len(mats)))
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        total = np.zeros((b, len(mats)))
        for size in sizes:
            idx = rng.integers(0, n, size=(b, size))
            for k, (p, h) in enumerate(probs):
                total[:, k] += np.exp(_entropy(p[idx].mean(axis=1)) - h[idx].mean(axis=1))
        out[start : start + b] = total / splits
    return PairedBootstrap(est, out, splits)


@dataclass(frozen=True)
class BootstrapSettings:
    """How a study bootstraps its IS curves: the same in the trial (stopper) and in the report."""

    splits: int = 10
    shuffle: bool = True
    replicates: int = DEFAULT_REPLICATES
    seed: int = 0

    @classmethod
    def of(cls, evaluation: Any) -> BootstrapSettings:
        """The bootstrap behind a trial's decisions (and its report's): an ``EvaluationSpec``'s IS settings and
        evaluation seed."""
        isc = evaluation.inception_score
        return cls(isc.splits, isc.shuffle, isc.decision_replicates, evaluation.seed)

    def bootstrap(self, logits: Sequence[np.ndarray]) -> PairedBootstrap:
        return bootstrap_is(logits, self.splits, self.shuffle, self.replicates, self.seed)


@dataclass(frozen=True)
class ISInfinity:
    """IS-infinity: the intercept of IS_n against 1/n (Chong & Forsyth 2020), with the points it was fitted to."""

    value: float
    slope: float
    sizes: np.ndarray
    scores: np.ndarray
    low: float = math.nan  # 95 % percentile interval over bootstrap resamples of the images (``replicates``)
    high: float = math.nan

    def at(self, n: float) -> float:
        """The fitted line at sample count n."""
        return self.value + self.slope / n


def is_infinity(
    logits: np.ndarray, num_points: int = 15, min_fraction: float = 0.1, seed: int = 0, replicates: int = 0
) -> ISInfinity:  # fmt: skip
    """IS-infinity of N images: IS (one split) on random subsets of ``num_points`` sizes, linear fit in 1/n.

    With ``replicates`` > 0 the whole procedure is repeated on that many bootstrap resamples of the N images (the
    same subset sizes), and ``low``/``high`` are the centred 2.5-97.5 % percentiles: the interval covers the
    sampling noise of the images and of the subsets behind the fit.
    """
    p, h = probabilities(logits)
    n = p.shape[0]
    lo = max(2, int(round(min_fraction * n)))
    sizes = np.unique(np.linspace(lo, n, num_points).round().astype(int))
    if sizes.size < 2:
        raise ValueError(f"IS-infinity needs at least two subset sizes; N={n} is too small")
    rng = np.random.default_rng(seed)

    def fit(pool: np.ndarray) -> tuple[float, float, np.ndarray]:
        scores = np.empty(sizes.size)
        for i, size in enumerate(sizes):
            sub = pool[rng.permutation(n)[:size]]
            scores[i] = math.exp(_entropy(p[sub].mean(0)) - h[sub].mean())
        slope, intercept = np.polyfit(1.0 / sizes, scores, 1)
        return float(intercept), float(slope), scores

    value, slope, scores = fit(np.arange(n))
    low = high = math.nan
    if replicates > 0:
        reps = np.array([fit(rng.integers(0, n, size=n))[0] for _ in range(replicates)])
        centred = reps - reps.mean() + value  # resampling duplicates images, which biases IS down (as ``ci``)
        low, high = float(np.quantile(centred, 0.025)), float(np.quantile(centred, 0.975))
    return ISInfinity(value, slope, sizes, scores, low, high)
