"""Plateau rule v2: has a score-vs-epoch curve stopped improving, since when, and how sure are we?

One implementation decides in the trial (early stopping, ``trainables/stopping.py``) and in the report, from the
same logged data, so the report never contradicts the stopper (shared/STATISTICS.md section 3).

Input: a ``Curve`` — the evaluated epochs e_1 < ... < e_K, the score estimates s_k (higher is better), and the
covariance of their sampling errors. For evaluations that share their initial noise (every epoch of a trial),
the covariance comes from the *paired* bootstrap over the generated images (``Curve.from_logits``): contrasts
between epochs are then measured with the small paired variance. Curves known only by summary statistics
(older runs, numbers imported from papers) enter with ``Curve.from_summary``: independent errors with the given
standard errors (a split std converts with ``analysis.stats.split_std_to_se``: SE = std / sqrt(S - 1)).

The rule
--------
Evaluations at ``epoch <= warmup_epochs`` or with a non-finite estimate are dropped. z is the one-sided normal
quantile of ``confidence`` (1.645 at 0.95).

0. **Checkpoint noise.** The bootstrap covariance describes the measurement of each checkpoint; consecutive
   checkpoints also differ by training noise (the EMA weights wander), which no paired interval sees. Its variance
   tau^2 is estimated from the curve's second differences (``checkpoint_noise``: robust to a bend or a kink) and,
   when it is clearly present (the second differences vary more than ``NOISE_RATIO`` = 4 times what measurement
   explains), added to the covariance as tau^2 I, with z replaced by the Student-t quantile on K - 2 degrees of
   freedom. ``checkpoint_noise=False`` turns this off.
1. For an evaluation i and a later j, SE_ij is the standard error of s_j - s_i under that covariance, and the
   *margin* of i is ``m_i = max(min_delta, margin_se * SE_iK)``: a rise smaller than ``margin_se`` standard errors
   of a difference between two evaluated checkpoints counts as flat at this curve's precision. Evaluation i is a
   **plateau start** when
   a. at least ``patience`` evaluations follow it and the curve was observed after it for at least
      ``tail_fraction * e_i`` epochs (with 1/3, i is in the first three quarters of training, so its tail holds
      the whole last quarter);
   b. the tail's rise is bounded: with r_i = (least-squares slope of s over e_i..e_K) * (e_K - e_i),
      ``r_i + z * SE(r_i) <= m_i`` (an equivalence test: we are confident the tail rose by less than the margin);
   c. no later evaluation is a resolved improvement beyond the margin: ``s_j - s_i - z * SE_ij <= m_i``.
2. The **plateau epoch** is the earliest plateau start.
3. The curve **peaked** when, after its best evaluation p (at least one later evaluation), it declined by more
   than the margin with confidence: ``s_p - s_K - z * SE_pK > m_p`` (NCSNv2's rise and fall, the paper's A.6).
4. **State**: ``peaked`` (3), else ``plateaued`` (a plateau epoch exists), else ``rising``; ``undetermined`` when
   fewer than ``patience + 1`` evaluations are left after warm-up.
5. **The plateau epoch's uncertainty**: the rule is re-run on draws of the estimates (centred bootstrap
   replicates for paired curves, Gaussian draws with the covariance otherwise); the interval is the 2.5-97.5 %
   range of the plateau epochs found, and ``support`` the share of draws that found one.

Noise model and measured error rates (``tests/test_plateau_calibration.py`` asserts and prints them)
--------------------------------------------------------------------------------------------------
s_k = f(e_k) + m_k + eps_k. eps ~ N(0, sigma^2 [(1 - rho) I + rho J]) is the measurement error, with equal
correlation rho between evaluations (the pairing) and se_meas = sigma sqrt(2 (1 - rho)) for a paired difference;
the rule receives its covariance. m_k ~ N(0, (j se_meas)^2), independent between evaluations, is checkpoint
jitter the rule does not receive (j = 0, 1, 2). SE_d = se_meas sqrt(1 + 2 j^2) is the SE of a difference between
two evaluated checkpoints; shapes are sized in SE_d. E = 100 epochs, K in {8, 12, 20} evenly spaced evaluations,
sigma in {0.05, 0.1, 0.2}, rho in {0, 0.6}, 4,000 curves per cell. Shapes: linear and concave (square-root)
rises, saturating (exponential, time constant 8 or 15 epochs, total rise 15 or 30 SE_d), peak then decline, flat.
Rates at the defaults:

* false plateaus on curves whose true rise over the last quarter exceeds 3 SE_d (linear and concave rises of
  3.25, 5 and 10 SE_d over the last quarter): worst cell 4.75 % without jitter (K = 8, linear, 3.25 SE_d),
  4.98 % with j = 1, 5.65 % with j = 2 (concave, 3.25 SE_d); 1.3-1.6 % over all cells;
* saturating curves: plateau detected in >= 95.3 % of curves in every cell without jitter (>= 92.2 % with);
  without jitter the plateau epoch lies inside [flattening - 1 evaluation interval, flattening + E/4 + 1
  interval], flattening being the epoch where the remaining rise falls to the margin, in >= 90.6 % (K = 8),
  95.2 % (K = 12), 97.9 % (K = 20); with jitter in >= 82-91 % (later: the margin has to be estimated);
* flat curves: plateau found in >= 98.6 %; a false ``peaked`` verdict in 0 % (no jitter) to 4.1 % (j = 2);
* a decline of 10 SE_d after a peak at mid-training: ``peaked`` in >= 86 %.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np

__all__ = ["Curve", "PlateauRule", "Verdict", "assess", "decide", "decide_batch", "State", "STATES"]

NOISE_RATIO = 4.0  # second differences must vary this many times more than measured before tau^2 counts
State = Literal["rising", "plateaued", "peaked", "undetermined"]
STATES: tuple[str, ...] = ("rising", "plateaued", "peaked", "undetermined")


@dataclass(frozen=True)
class PlateauRule:
    """Parameters of the rule in the module docstring (the defaults are the calibrated ones)."""

    warmup_epochs: int = 2
    patience: int = 2
    tail_fraction: float = 1 / 3
    margin_se: float = 3.0
    min_delta: float = 0.0
    confidence: float = 0.95
    checkpoint_noise: bool = True

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if min(self.warmup_epochs, self.tail_fraction, self.margin_se, self.min_delta) < 0:
            raise ValueError(f"plateau rule parameters must be non-negative: {self}")
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")

    @property
    def z(self) -> float:
        return NormalDist().inv_cdf(self.confidence)

    def describe(self) -> str:
        """One-line statement of the rule with its parameters (goes into reports)."""
        return (
            f"evaluations after epoch {self.warmup_epochs}; a plateau starts at the earliest evaluation e followed by "
            f">= {self.patience} evaluations and >= {self.tail_fraction:.2g}*e epochs whose tail rise (least-squares "
            f"slope x tail length) is below the margin with {self.confidence:.0%} confidence and after which no "
            f"evaluation is a resolved improvement beyond the margin; margin = max({self.min_delta:g}, "
            f"{self.margin_se:g} x SE of the difference e -> last: paired bootstrap"
            + (" plus the checkpoint-to-checkpoint noise estimated from the curve when clearly present"
               if self.checkpoint_noise else "")
            + "); peaked = a resolved decline beyond the margin after the best evaluation; intervals from paired "
            "bootstrap draws"
        )


@dataclass(frozen=True)
class Curve:
    """One score curve and the covariance of its estimates' errors (see module docstring)."""

    epochs: np.ndarray
    estimates: np.ndarray
    cov: np.ndarray
    draws: np.ndarray | None = None  # (B, K) draws of the estimates around them (centred replicates)
    paired: bool = False
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None

    def __post_init__(self) -> None:
        k = len(self.epochs)
        if np.shape(self.estimates) != (k,) or np.shape(self.cov) != (k, k):
            raise ValueError(f"a curve of {k} epochs needs {k} estimates and a {k}x{k} covariance")

    @classmethod
    def from_summary(cls, epochs: np.ndarray, estimates: np.ndarray, ses: np.ndarray) -> Curve:
        """Independent errors with the given standard errors (no pairing known). NaN SEs count as 0."""
        se = np.nan_to_num(np.asarray(ses, dtype=float), nan=0.0)
        mu = np.asarray(estimates, dtype=float)
        return cls(np.asarray(epochs, dtype=float), mu, np.diag(se**2), None, False, mu - 1.96 * se, mu + 1.96 * se)

    @classmethod
    def from_logits(
        cls, epochs: np.ndarray, logits: list[np.ndarray], splits: int = 10, shuffle: bool = True,
        replicates: int = 1000, seed: int = 0,
    ) -> Curve:  # fmt: skip
        """The IS curve of evaluations that share their initial noise, with the paired bootstrap covariance."""
        from analysis.stats import bootstrap_is

        boot = bootstrap_is(logits, splits, shuffle, replicates, seed)
        lo, hi = boot.ci()
        return cls(np.asarray(epochs, dtype=float), boot.estimates, boot.cov(), boot.centred(), True, lo, hi)

    def select(self, mask: np.ndarray) -> Curve:
        idx = np.flatnonzero(mask)
        pick = (lambda a: None if a is None else a[idx])  # noqa: E731
        draws = None if self.draws is None else self.draws[:, idx]
        cov = self.cov[np.ix_(idx, idx)]
        return Curve(self.epochs[idx], self.estimates[idx], cov, draws, self.paired, pick(self.ci_low),
                     pick(self.ci_high))  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """What the rule says about one curve. ``epoch``/``value``: the plateau start (None while rising)."""

    state: State
    epoch: int | None
    value: float | None
    epoch_low: int | None = None
    epoch_high: int | None = None
    support: float = math.nan
    peak_epoch: int | None = None
    reason: str = ""
    paired: bool = False
    margin: float = math.nan  # the equivalence margin (score units) at the plateau start, or the last candidate
    rule: str = field(default="", repr=False)

    @property
    def converged(self) -> bool:
        """The curve stopped improving: it plateaued or peaked."""
        return self.state in ("plateaued", "peaked")


def _var(cov: np.ndarray, c: np.ndarray) -> float:
    return max(float(c @ cov @ c), 0.0)


def _diff(k: int, i: int, j: int) -> np.ndarray:
    c = np.zeros(k)
    c[j], c[i] = 1.0, -1.0
    return c


def student_t(confidence: float, df: int) -> float:
    """One-sided Student-t quantile (scipy)."""
    from scipy.stats import t

    return float(t.ppf(confidence, max(df, 1)))


def checkpoint_noise(s: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """tau^2 per curve: the variance of checkpoint-to-checkpoint fluctuation beyond the measurement covariance.

    Second differences d_k = s_{k-1} - 2 s_k + s_{k+1} cancel a locally linear trend; with checkpoint noise of
    variance tau^2 (independent between evaluated epochs) E[d_k^2] = 6 tau^2 + (measurement variance of d_k). The
    median of d_k^2 / 0.455 (the median of a chi-square with one degree of freedom) estimates E[d_k^2] robustly:
    the curvature of a rise's bend or a peak's kink, a few large d_k, does not pass for noise. So
    tau^2 = max(0, (median d_k^2 / 0.455 - mean measurement variance) / 6). Zero with fewer than three evaluations.
    """
    s = np.atleast_2d(s)
    k = s.shape[1]
    if k < 3:
        return np.zeros(s.shape[0])
    d = s[:, :-2] - 2 * s[:, 1:-1] + s[:, 2:]
    c = np.zeros((k - 2, k))
    idx = np.arange(k - 2)
    c[idx, idx], c[idx, idx + 1], c[idx, idx + 2] = 1.0, -2.0, 1.0
    measured = np.einsum("ij,jk,ik->i", c, cov, c).mean()
    ratio = np.median(d**2, axis=1) / 0.4549 / max(measured, 1e-300)
    return np.where(ratio > NOISE_RATIO, (ratio - 1) * measured / 6, 0.0)


def decide_batch(epochs: np.ndarray, s: np.ndarray, cov: np.ndarray, rule: PlateauRule) -> tuple[np.ndarray, ...]:
    """The rule on B curves that share epochs and covariance (clean inputs: warm-up and non-finite values removed).

    ``s``: (B, K) estimates. Returns per curve: the plateau index (-1: none), peaked (bool), the last candidate
    index considered (shared), and the margins (B, K) in score units.
    With ``rule.checkpoint_noise`` each curve's covariance is ``cov + tau^2 I`` (``checkpoint_noise``).
    """
    s = np.atleast_2d(s)
    b, k = s.shape
    z = rule.z
    start = np.full(b, -1)
    if k < rule.patience + 1:
        return start, np.zeros(b, dtype=bool), -1, np.full((b, k), np.nan)
    tau2 = checkpoint_noise(s, cov) if rule.checkpoint_noise else np.zeros(b)  # (B,)
    # an estimated variance widens the quantile: Student t with the K - 2 second differences it came from
    z = np.where(tau2 > 0, student_t(rule.confidence, k - 2), z)
    base = np.diag(cov)[:, None] + np.diag(cov)[None, :] - 2 * cov  # measured variance of s_j - s_i
    off = 1.0 - np.eye(k)
    se = np.sqrt(np.maximum(base[None] + 2 * tau2[:, None, None] * off[None], 0.0))  # (B, K, K)
    # a float tolerance: with zero uncertainty a flat curve's rounding noise must not count as a rise
    eps = 1e-9 * max(1.0, float(np.abs(s).max()))
    margins = np.maximum(rule.min_delta, rule.margin_se * se[:, :, k - 1]) + eps  # (B, K)
    rows = np.arange(b)
    last = -1
    for i in range(k - rule.patience):
        if epochs[-1] - epochs[i] < rule.tail_fraction * epochs[i]:
            break
        last = i
        open_ = start < 0
        if not open_.any():
            break
        x = epochs[i:] - epochs[i:].mean()
        c = np.zeros(k)
        c[i:] = x / (x @ x) * (epochs[-1] - epochs[i])  # least-squares slope x tail length, as a contrast
        rise_se = np.sqrt(_var(cov, c) + tau2 * (c @ c))
        ok = s @ c + z * rise_se <= margins[:, i]
        jumps = s[:, i + 1 :] - s[:, [i]] - z[:, None] * se[:, i, i + 1 :]
        ok &= (jumps <= margins[:, [i]]).all(axis=1)
        start[open_ & ok] = i
    p = np.argmax(s, axis=1)
    decline = s[rows, p] - s[:, -1] - z * se[rows, p, k - 1]
    peaked = (p < k - 1) & (decline > margins[rows, p])
    return start, peaked, last, margins


def decide(
    epochs: np.ndarray, s: np.ndarray, cov: np.ndarray, rule: PlateauRule
) -> tuple[State, int | None, str, float]:
    """The rule on one clean curve: (state, plateau index, reason, margin at the plateau start or the last one)."""
    k = len(s)
    if k < rule.patience + 1:
        return "undetermined", None, f"{k} evaluation(s) after warm-up; need {rule.patience + 1}", math.nan
    start, peaked, last, margins = decide_batch(epochs, s[None], cov, rule)
    i = int(start[0])
    if peaked[0]:
        p = int(np.argmax(s))
        j = i if 0 <= i <= p else p
        return "peaked", j, "declined after its best evaluation", float(margins[0, j])
    if i >= 0:
        return "plateaued", i, "", float(margins[0, i])
    if last < 0:
        return "rising", None, "too little training observed after the first candidate plateau start", math.nan
    return "rising", None, "still rising: the tail's rise is not bounded below the margin", float(margins[0, last])


def assess(curve: Curve, rule: PlateauRule | None = None, draws: int = 200, seed: int = 0) -> Verdict:
    """The rule's verdict on ``curve`` with the plateau epoch's interval over ``draws`` perturbed estimates."""
    rule = rule or PlateauRule()
    text = rule.describe()
    keep = np.isfinite(curve.estimates) & np.isfinite(curve.epochs) & (curve.epochs > rule.warmup_epochs)
    c = curve.select(keep)
    if len(c.epochs) == 0:
        return Verdict("undetermined", None, None, reason="no finite score after warm-up", paired=c.paired, rule=text)
    state, idx, reason, margin = decide(c.epochs, c.estimates, c.cov, rule)
    peak = int(c.epochs[int(np.argmax(c.estimates))])
    if idx is None:
        return Verdict(state, None, None, peak_epoch=peak, reason=reason, paired=c.paired, margin=margin, rule=text)
    found = _draw_epochs(c, rule, draws, seed)
    lo, hi = (int(np.quantile(found, 0.025, method="lower")), int(np.quantile(found, 0.975, method="higher"))) \
        if found.size else (None, None)  # fmt: skip
    support = found.size / draws if draws else math.nan
    return Verdict(state, int(c.epochs[idx]), float(c.estimates[idx]), lo, hi, support, peak, reason, c.paired,
                   margin, text)  # fmt: skip


def _draw_epochs(c: Curve, rule: PlateauRule, draws: int, seed: int) -> np.ndarray:
    """Plateau epochs found by the rule on ``draws`` perturbations of the estimates (none where it finds none)."""
    if draws <= 0:
        return np.empty(0)
    if c.draws is not None:
        rows = c.draws[np.random.default_rng(seed).integers(0, len(c.draws), draws)]
    else:
        rows = np.random.default_rng(seed).multivariate_normal(c.estimates, c.cov, size=draws, method="eigh") \
            if np.any(c.cov) else np.repeat(c.estimates[None], draws, axis=0)  # fmt: skip
    start = decide_batch(c.epochs, rows, c.cov, rule)[0]
    return c.epochs[start[start >= 0]]
