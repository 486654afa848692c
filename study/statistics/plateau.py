"""Plateau rule v3: has a score-vs-epoch curve stopped changing by more than a stated margin, since when, and how
sure are we? (shared/STATISTICS.md section 3.)

One implementation decides in the trial (early stopping, ``trainables/stopping.py``) and in the report, from the
same logged data and the same bootstrap draws, so the report never contradicts the stopper.

Input: a ``Curve``: the evaluated epochs e_1 < ... < e_K, the score estimates s_k (higher is better), the
covariance of their measurement errors (the paired bootstrap over the generated images for the epochs of one
trial: they share their initial noise) and the training budget E in epochs (the stopper's horizon; the last
evaluated epoch when unknown).

The margin
----------
delta is stated by the user before looking, in score units (``margin: 0.15``) or relative to the curve's latest
score (``margin: 2%``). Standard errors and training noise never enter it: they only decide how *sure* the verdict
is. (A margin of k standard errors makes the plateau a property of the sample size: more images, later plateau.)

The rule
--------
Evaluations at ``epoch <= warmup_epochs`` or with a non-finite estimate are dropped.

0. **Training noise.** Consecutive checkpoints differ by more than their measurement: the EMA weights wander. In a
   tail test its variance tau^2 is estimated from the residuals around the tail's line beyond what the measurement
   covariance explains (``tail_noise``) and added as tau^2 I; the quantile is then Student t on the residual
   degrees of freedom (always, for tails of 3-4 evaluations). The decline-from-the-best and the direct-rise tests,
   and the noise a verdict reports and comparisons carry (``Verdict.noise``), use the whole curve's second
   differences (``checkpoint_noise``).
1. **The tails**: the last half of the observed curve, and the shortest allowed tail (``tail_share`` of the budget,
   ``min_tail`` evaluations) when shorter; each is tested at half the error rate (Bonferroni). The long tail
   measures an early plateau precisely, the short one sees a curve that flattened late. A tail's **projected
   change** D is its least-squares slope times (its length + the budget still to train): the change from the
   tail's start to the end of the budget if the recent trend went on. At the end of the budget D is the tail's own
   change; early in training the slope must be very nearly zero to pass.
   Projecting the recent slope is conservative for curves that decelerate (every saturating or concave rise) and
   blind to curves that will accelerate later, which no rule can foresee.
2. **States**, z the one-sided quantile of ``confidence`` (TOST at level 1 - confidence):
   * ``peaked``: after its best evaluation p the curve fell by more than delta with confidence,
     s_p - s_K - z' SE_pK > delta, with z' Bonferroni-corrected for the choice of the maximum among K - 1
     candidates; or a tail's projected change is resolved below -delta while the curve lies more than delta below
     its smoothed best.
   * ``plateaued``: |D| + z SE(D) <= delta on either tail: the change is resolved within +-delta (equivalence
     test, two-sided), unless the curve lies more than delta below its smoothed best (a decline not yet
     resolved is not called flat).
   * ``rising``: D - z SE(D) > delta on either tail, or the long tail's last minus first evaluation is resolved
     above delta (with the training noise from the second differences): a rise beyond delta is resolved.
   * ``undetermined``: the interval of D straddles +-delta, or the tail is not yet long enough; the reason says
     what would resolve it (more samples per evaluation, more evaluations, seeds).
3. **Since when** (plateaued): the plateau level L is the mean of the tail; the plateau epoch is the earliest
   evaluation from which every later evaluation, smoothed over its neighbours (3-point running mean), lies within
   delta of L. Its interval is the 2.5-97.5 % range of that epoch over draws of the whole curve: the bootstrap
   replicates (or Gaussian draws with the covariance) plus independent N(0, tau^2) training noise per checkpoint,
   widened by one evaluation interval at the low end (the true flattening lies between two evaluations).

The stopper looks at every evaluation: a trial ends once every (or any) curve is ``plateaued`` or ``peaked`` at
``persistence`` consecutive evaluations (``streak``; ``training.stop.min_epochs`` can add a floor).

Noise model and measured error rates (``tests/test_plateau_calibration.py`` asserts and prints them)
--------------------------------------------------------------------------------------------------
s_k = f(e_k) + m_k + eps_k in IS units. eps ~ N(0, se^2 [(1 - rho) I + rho J]) is the measurement error (rho = 0.6,
the pairing) with se = 0.12 sqrt(400 / n) (digits IS at n = 400), n in {100, 400, 1,600, 6,400, 25,600}; the rule
receives its covariance. m_k ~ N(0, (j se)^2), j in {0, 1, 2, 5}, is checkpoint jitter the rule does not receive.
Budget E = 240 epochs, K in {8, 12, 24} evaluations; delta = 0.15 IS; every look of the stopper is simulated;
1,000 curves per cell. Rates at the defaults (persistence 3):

* the stopper *ever* stops a run whose true change still to come exceeds delta (linear rises of 0.3, 0.6 and 2.4
  IS, concave rises of 0.5 and 1.0 IS over the budget; 300 cells): worst cell 3.1 % (concave 1.0 IS, K = 24,
  n = 100, jitter 5), mean 0.07 %. With persistence 1 the worst cell was 10 %, with 2 it was 8 % (one tail);
* a decline of 0.3 or 1.1 IS after a peak at mid-budget is called ``plateaued`` in at most 0.2 % of curves and
  ``peaked`` in a median 78 %;
* a flat curve is called ``rising`` in at most 4.5 % and ``peaked`` in at most 5.4 % (n = 100, jitter 5 SE);
* saturating rises (1 and 2 IS, time constants 20 and 40 epochs) where the precision allows (the long tail's
  true change plus twice its confidence half-width within delta): plateau found in >= 96.8 % (K >= 12) but only
  29 % with K = 8 (tails of 3-4 evaluations: too few residual degrees of freedom; the answer is then
  ``undetermined``); where the half-width alone exceeds delta: ``undetermined`` in >= 85 %, the rest saturated
  curves called plateaued. On the curves that allow it the stopper saves 10 % of the budget on average: the price
  of never stopping a run that still rises;
* on one fixed curve the median plateau epoch never moves later as n grows from 400 to 25,600 and lies within one
  evaluation interval of the true flattening (the first evaluation within delta of the final value);
* plateau-epoch ranges hold the true flattening evaluation in >= 99 % of plateaued curves, jitter up to 2 SE (too
  few plateau calls at 5 SE to measure).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np
from pydantic import Field

from study.contract.keys import PLATEAU_STATES, PlateauState
from study.contract.spec.study import PlateauParameters, PlateauSpec

__all__ = [
    "Curve", "PlateauRule", "Verdict", "assess", "decide_batch", "plateau_epochs", "checkpoint_noise",
    "checkpoint_noise_independent",
]  # fmt: skip

# the codes of decide_batch: indices into the contract's PLATEAU_STATES, in its order
RISING, PLATEAUED, PEAKED, UNDETERMINED = range(len(PLATEAU_STATES))
SMOOTH = 3  # evaluations in the running mean that locates the plateau's start


class PlateauRule(PlateauParameters):
    """The rule in the module docstring: the spec's parameters (``PlateauParameters``, declared once with their
    calibrated defaults) with the margin resolved, in score units or (``relative``) as a fraction of the latest
    score, and whether the SE carries the checkpoint noise estimated from the curve. A trial's rule is
    ``PlateauRule.of(spec.evaluation.plateau)``; ``margin``'s default serves runs that logged no margin and no
    known extractor."""

    margin: float = Field(0.15, gt=0.0, description="delta in score units, or a fraction of the latest score")
    relative: bool = False  # margin x |latest score| instead of score units
    checkpoint_noise: bool = True

    @classmethod
    def of(cls, spec: PlateauSpec) -> PlateauRule:
        """The rule ``evaluation.plateau`` states (its margin resolved by the spec)."""
        margin, relative = spec.resolved_margin()
        fields = spec.model_dump(include=set(PlateauParameters.model_fields))
        return cls(**fields, margin=margin, relative=relative)

    def delta(self, latest: float | np.ndarray) -> np.ndarray:
        """The margin in score units: fixed, or relative to the latest score."""
        return np.abs(np.asarray(latest, dtype=float)) * self.margin if self.relative else np.full(np.shape(latest),
                                                                                                     self.margin)

    def margin_text(self) -> str:
        return f"{self.margin:.0%} of the latest score" if self.relative else f"{self.margin:g} score units"

    def describe(self) -> str:
        """One-line statement of the rule with its parameters (goes into reports)."""
        return (
            f"margin delta = {self.margin_text()} (stated, never derived from the noise); the tail spans >= "
            f"{self.tail_share:.0%} of the budget and >= {self.min_tail} evaluations; its projected change D (slope x "
            f"(tail + budget left)) is tested two-sided at {self.confidence:.0%}: plateaued when |D| + z SE <= delta, "
            "rising when D - z SE > delta, peaked on a resolved decline beyond delta after the best evaluation; "
            "undetermined otherwise; SE includes the measurement (paired bootstrap)"
            + (" and the checkpoint-to-checkpoint training noise estimated from the curve" if self.checkpoint_noise
               else "")
            + f"; the stopper needs {self.persistence} consecutive plateaued or peaked evaluations"
        )


@dataclass(frozen=True)
class Curve:
    """One score curve, the covariance of its estimates' errors and the training budget (module docstring)."""

    epochs: np.ndarray
    estimates: np.ndarray
    cov: np.ndarray
    draws: np.ndarray | None = None  # (B, K) draws of the estimates around them (centred replicates)
    paired: bool = False
    ci_low: np.ndarray | None = None
    ci_high: np.ndarray | None = None
    budget: float | None = None  # the training budget in epochs (None: the last evaluated epoch)

    def __post_init__(self) -> None:
        k = len(self.epochs)
        if np.shape(self.estimates) != (k,) or np.shape(self.cov) != (k, k):
            raise ValueError(f"a curve of {k} epochs needs {k} estimates and a {k}x{k} covariance")

    @classmethod
    def from_summary(
        cls, epochs: np.ndarray, estimates: np.ndarray, ses: np.ndarray, df: int | None = None,
        budget: float | None = None,
    ) -> Curve:  # fmt: skip
        """Independent errors with the given standard errors (no pairing known). NaN SEs count as 0.

        ``df``: degrees of freedom of the SEs when they come from a split std (S - 1); the per-epoch intervals then
        use Student t instead of the normal quantile.
        """
        se = np.nan_to_num(np.asarray(ses, dtype=float), nan=0.0)
        mu = np.asarray(estimates, dtype=float)
        q = two_sided(0.95, df)
        return cls(np.asarray(epochs, dtype=float), mu, np.diag(se**2), None, False, mu - q * se, mu + q * se, budget)

    @classmethod
    def from_bootstrap(cls, epochs: np.ndarray, boot: object, budget: float | None = None) -> Curve:
        """The curve of evaluations that share their initial noise, from their paired bootstrap
        (``study.statistics.stats.PairedBootstrap``: the same replicates the stopper and the report use)."""
        lo, hi = boot.ci()  # type: ignore[attr-defined]
        return cls(np.asarray(epochs, dtype=float), boot.estimates, boot.cov(), boot.centred(), True, lo, hi,  # type: ignore[attr-defined]
                   budget)  # fmt: skip

    @classmethod
    def from_logits(
        cls, epochs: np.ndarray, logits: list[np.ndarray], splits: int = 10, shuffle: bool = True,
        replicates: int = 1000, seed: int = 0, budget: float | None = None,
    ) -> Curve:  # fmt: skip
        """The IS curve of evaluations that share their initial noise, with the paired bootstrap covariance."""
        from study.statistics.stats import bootstrap_is

        return cls.from_bootstrap(epochs, bootstrap_is(logits, splits, shuffle, replicates, seed), budget)

    @property
    def horizon(self) -> float:
        last = float(self.epochs[-1]) if len(self.epochs) else 0.0
        return max(float(self.budget), last) if self.budget is not None else last

    def select(self, mask: np.ndarray) -> Curve:
        idx = np.flatnonzero(mask)
        pick = (lambda a: None if a is None else a[idx])  # noqa: E731
        draws = None if self.draws is None else self.draws[:, idx]
        cov = self.cov[np.ix_(idx, idx)]
        return Curve(self.epochs[idx], self.estimates[idx], cov, draws, self.paired, pick(self.ci_low),
                     pick(self.ci_high), self.budget)  # fmt: skip


@dataclass(frozen=True)
class Verdict:
    """What the rule says about one curve. ``epoch``/``value``: the plateau start (None unless plateaued/peaked)."""

    state: PlateauState
    epoch: int | None
    value: float | None
    epoch_low: int | None = None
    epoch_high: int | None = None
    peak_epoch: int | None = None
    reason: str = ""
    paired: bool = False
    margin: float = math.nan  # delta in score units
    change: float = math.nan  # the tail's projected change D ...
    change_low: float = math.nan  # ... and its two-sided interval at the rule's confidence (1 - 2 alpha)
    change_high: float = math.nan
    noise: float = 0.0  # tau: the checkpoint-to-checkpoint training noise estimated from the curve (score units)
    streak: int = 0  # consecutive looks, ending with this one, at which the curve was plateaued or peaked
    rule: str = ""

    @property
    def stopped_changing(self) -> bool:
        """The curve stopped improving: it plateaued or peaked."""
        return self.state in ("plateaued", "peaked")


def two_sided(level: float, df: int | None) -> float:
    """The two-sided quantile of ``level``: normal, or Student t on ``df`` degrees of freedom."""
    return one_sided(0.5 + level / 2, df)


def one_sided(confidence: float, df: int | float | None) -> float:
    if df is None or not math.isfinite(df):
        return NormalDist().inv_cdf(confidence)
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
    return np.maximum((d**2).mean(axis=1) - measured, 0.0) / 6


def checkpoint_noise_independent(s: np.ndarray, var: np.ndarray) -> np.ndarray:
    """``checkpoint_noise`` of B curves whose measurement errors are independent, each curve with its own
    variances ``var`` (B, K) (binomial fractions, study/statistics/onset.py):
    Var d_k = var_{k-1} + 4 var_k + var_{k+1}."""
    s, var = np.atleast_2d(s), np.atleast_2d(var)
    if s.shape[1] < 3:
        return np.zeros(s.shape[0])
    d = s[:, :-2] - 2 * s[:, 1:-1] + s[:, 2:]
    measured = (var[:, :-2] + 4 * var[:, 1:-1] + var[:, 2:]).mean(axis=1)
    return np.maximum((d**2).mean(axis=1) - measured, 0.0) / 6


def tail_starts(epochs: np.ndarray, budget: float, rule: PlateauRule) -> list[int]:
    """First indices of the tails the rule tests: the last half of the observed curve, and the shortest allowed
    tail (tail_share x budget epochs, min_tail evaluations) when it is shorter; none while the curve is too short.
    The short tail sees a curve that flattened late in the budget, the long one measures an early plateau
    precisely; each is tested at half the error rate (Bonferroni)."""
    k = len(epochs)
    if k < rule.min_tail:
        return []

    def start(span: float) -> int:
        ok = np.flatnonzero(epochs[-1] - epochs >= span - 1e-9)
        ok = ok[ok <= k - rule.min_tail]
        return int(ok[-1]) if ok.size else -1

    short = start(rule.tail_share * budget)
    long = start(max(rule.tail_share * budget, (epochs[-1] - epochs[0]) / 2))
    return [i for i in dict.fromkeys((long, short)) if i >= 0]


@dataclass(frozen=True)
class Decision:
    """``decide_batch`` on B curves: state codes and the statistics of the tail behind each verdict."""

    state: np.ndarray  # (B,) codes into PLATEAU_STATES
    change: np.ndarray  # (B,) projected change D of the deciding tail
    se: np.ndarray  # (B,) its standard error (measurement and training noise)
    z: np.ndarray  # (B,) the one-sided quantile used
    delta: np.ndarray  # (B,) the margin in score units
    tau2: np.ndarray  # (B,) training-noise variance estimated from the deciding tail
    start: np.ndarray  # (B,) the deciding tail's first index (-1: too short)


def _tail(epochs: np.ndarray, s: np.ndarray, cov: np.ndarray, rule: PlateauRule, budget: float, i: int,
          confidence: float) -> tuple[np.ndarray, ...]:  # fmt: skip
    """(D, SE, z, tau^2) of the tail starting at index i."""
    k = len(epochs)
    x = epochs[i:] - epochs[i:].mean()
    c = np.zeros(k)
    c[i:] = x / (x @ x) * (epochs[-1] - epochs[i] + budget - epochs[-1])  # slope x (tail + budget left)
    tau2 = tail_noise(epochs[i:], s[:, i:], cov[i:, i:]) if rule.checkpoint_noise else np.zeros(len(s))
    # an estimated variance widens the quantile: Student t on the tail's residual degrees of freedom; with two or
    # fewer, an estimate of zero is too unreliable to drop it (a 3-point tail's residual has one)
    df = k - i - 2
    z = np.where((tau2 > 0) | (df <= 2), one_sided(confidence, df), one_sided(confidence, None))
    se = np.sqrt(max(float(c @ cov @ c), 0.0) + tau2 * (c @ c))
    return s @ c, se, z, tau2


def decide_batch(epochs: np.ndarray, s: np.ndarray, cov: np.ndarray, rule: PlateauRule, budget: float) -> Decision:
    """The rule's state on B curves that share epochs and covariance (clean: warm-up and non-finite removed).

    ``s``: (B, K) estimates; ``budget``: the training budget in epochs (>= the last epoch). Precedence: peaked,
    plateaued (on either tail), rising, undetermined.
    """
    s = np.atleast_2d(s)
    b, k = s.shape
    budget = max(float(budget), float(epochs[-1]) if k else 0.0)
    delta = rule.delta(s[:, -1]) if k else np.full(b, rule.margin)
    starts = tail_starts(epochs, budget, rule)
    nan = np.full(b, np.nan)
    if not starts:
        return Decision(np.full(b, UNDETERMINED), nan, nan, nan, delta, np.zeros(b), np.full(b, -1))
    eps = 1e-9 * max(1.0, float(np.abs(s).max()))  # with zero uncertainty, rounding must not decide
    confidence = 1 - (1 - rule.confidence) / len(starts)
    tails = [_tail(epochs, s, cov, rule, budget, i, confidence) for i in starts]
    flat = [np.abs(ch) + z * se <= delta + eps for ch, se, z, _ in tails]
    rise = [ch - z * se > delta + eps for ch, se, z, _ in tails]
    fall = [ch + z * se < -delta - eps for ch, se, z, _ in tails]
    # the deciding tail: the first (longest) that is flat, else the long one
    pick = np.zeros(b, dtype=int)
    for j in range(len(tails) - 1, -1, -1):
        pick[flat[j]] = j
    rows = np.arange(b)
    change, se, z, tau2 = (np.stack([t[m] for t in tails])[pick, rows] for m in range(4))
    state = np.full(b, UNDETERMINED)
    state[np.any(rise, axis=0) | _risen(s, cov, starts[0], delta + eps, rule)] = RISING
    # a curve whose (smoothed) best lies more than delta above its latest value has not been shown to be level
    # with its best: a decline that its tails alone do not resolve is not called flat
    sm = _smooth(s)
    below_best = sm.max(axis=1) - sm[:, -1] > delta + eps
    state[np.any(flat, axis=0) & ~below_best] = PLATEAUED
    state[np.any(fall, axis=0) & below_best] = PEAKED
    declined = _peaked(s, cov, np.maximum(tau2, checkpoint_noise(s, cov)), delta + eps, rule) & (change <= 0)
    state[declined] = PEAKED
    return Decision(state, change, se, z, delta, tau2, np.asarray(starts)[pick])


def tail_noise(e: np.ndarray, s: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """tau^2 per curve from the tail's residuals around its least-squares line: their variance beyond what the
    measurement covariance explains (the component shared by all epochs cancels in a line's residuals)."""
    m = len(e)
    X = np.stack([np.ones(m), e - e.mean()], axis=1)
    hat = X @ np.linalg.pinv(X)
    r = s @ (np.eye(m) - hat).T
    resid = (r**2).sum(axis=1) / (m - 2)
    measured = np.trace((np.eye(m) - hat) @ cov) / (m - 2)
    return np.maximum(resid - measured, 0.0)


def _risen(s: np.ndarray, cov: np.ndarray, i: int, delta: np.ndarray, rule: PlateauRule) -> np.ndarray:
    """A rise beyond delta over the long tail, measured directly: s_K - s_i resolved above delta, its variance the
    measurement's plus twice the training noise from the curve's second differences (a rising curve's curvature
    inflates the tail's line residuals, which would leave an obvious rise undetermined). Nothing stops on it."""
    k = s.shape[1]
    var = cov[i, i] + cov[-1, -1] - 2 * cov[i, -1] + 2 * checkpoint_noise(s, cov)
    # at half the error rate: it is a second way to call a rise, beside the tails' tests
    z = one_sided(1 - (1 - rule.confidence) / 2, max((k - 2) / 2, 1) if rule.checkpoint_noise else None)
    return s[:, -1] - s[:, i] - z * np.sqrt(np.maximum(var, 0)) > delta


def _peaked(s: np.ndarray, cov: np.ndarray, tau2: np.ndarray, delta: np.ndarray, rule: PlateauRule) -> np.ndarray:
    """A resolved decline beyond delta after the best evaluation p, Bonferroni over the K - 1 possible p."""
    b, k = s.shape
    if k < 3:
        return np.zeros(b, dtype=bool)
    rows = np.arange(b)
    p = np.argmax(s, axis=1)
    dv = np.diag(cov)
    var = dv[p] + dv[-1] - 2 * cov[p, -1] + 2 * tau2 * (p < k - 1)
    zb = one_sided(1 - (1 - rule.confidence) / (k - 1), max((k - 2) / 2, 1) if rule.checkpoint_noise else None)
    return (p < k - 1) & (s[rows, p] - s[:, -1] - zb * np.sqrt(np.maximum(var, 0)) > delta)


def _smooth(s: np.ndarray) -> np.ndarray:
    """The 3-point running mean of each curve (edges repeated)."""
    pad = np.pad(s, ((0, 0), (1, 1)), mode="edge")
    return (pad[:, :-2] + pad[:, 1:-1] + pad[:, 2:]) / SMOOTH


def plateau_epochs(epochs: np.ndarray, s: np.ndarray, start: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """Index per curve of the plateau's start: the earliest evaluation from which every later smoothed estimate
    lies within delta of the mean of the curve's tail from ``start`` (module docstring, 3). ``s``: (B, K)."""
    s = np.atleast_2d(s)
    k = s.shape[1]
    start = np.broadcast_to(np.asarray(start), (s.shape[0],))
    in_tail = np.arange(k)[None, :] >= start[:, None]
    level = (s * in_tail).sum(axis=1, keepdims=True) / in_tail.sum(axis=1, keepdims=True)
    out = np.abs(_smooth(s) - level) > np.atleast_1d(delta)[:, None]
    # the last evaluation that is out, plus one; the tail's start at the latest
    last_out = np.where(out.any(axis=1), k - 1 - np.argmax(out[:, ::-1], axis=1), -1)
    return np.minimum(last_out + 1, start)


def assess(curve: Curve, rule: PlateauRule | None = None, draws: int = 200, seed: int = 0) -> Verdict:
    """The rule's verdict on ``curve`` with the plateau epoch's interval over ``draws`` perturbed curves."""
    rule = rule or PlateauRule()
    text = rule.describe()
    keep = np.isfinite(curve.estimates) & np.isfinite(curve.epochs) & (curve.epochs > rule.warmup_epochs)
    c = curve.select(keep)
    if len(c.epochs) == 0:
        return Verdict("undetermined", None, None, reason="no finite score after warm-up", paired=c.paired, rule=text)
    d = decide_batch(c.epochs, c.estimates[None], c.cov, rule, c.horizon)
    state: PlateauState = PLATEAU_STATES[int(d.state[0])]
    # the curve's training noise as reported and carried into comparisons: the whole curve's second differences
    tau = math.sqrt(float(checkpoint_noise(c.estimates[None], c.cov)[0]))
    peak = int(c.epochs[int(np.argmax(c.estimates))])
    common = dict(peak_epoch=peak, paired=c.paired, margin=float(d.delta[0]), noise=tau, streak=streak(c, rule),
                  rule=text)  # fmt: skip
    if d.start[0] >= 0:
        ch, h = float(d.change[0]), float(d.z[0] * d.se[0])
        common |= dict(change=ch, change_low=ch - h, change_high=ch + h)
    reason = _reason(state, c, d, rule)
    if state == "peaked":
        return Verdict(state, peak, float(np.max(c.estimates)), reason=reason, **common)  # type: ignore[arg-type]
    if state != "plateaued":
        return Verdict(state, None, None, reason=reason, **common)  # type: ignore[arg-type]
    idx = int(plateau_epochs(c.epochs, c.estimates[None], d.start, d.delta)[0])
    lo, hi = _epoch_range(c, d, draws, seed)
    return Verdict(state, int(c.epochs[idx]), float(c.estimates[idx]), lo, hi, reason=reason, **common)  # type: ignore[arg-type]


def streak(c: Curve, rule: PlateauRule) -> int:
    """Consecutive looks, ending with the last evaluation, at which the rule said plateaued or peaked: what the
    stopper, which looks after every evaluation, requires ``persistence`` of (module docstring)."""
    n = 0
    for t in range(len(c.epochs), 0, -1):
        d = decide_batch(c.epochs[:t], c.estimates[None, :t], c.cov[:t, :t], rule, c.horizon)
        if int(d.state[0]) not in (PLATEAUED, PEAKED):
            break
        n += 1
    return n


def _reason(state: str, c: Curve, d: Decision, rule: PlateauRule) -> str:
    """Why the rule says what it says; for ``undetermined`` also what would resolve it."""
    delta = float(d.delta[0])
    if d.start[0] < 0:
        need = rule.tail_share * c.horizon
        return (f"{len(c.epochs)} evaluation(s) over {c.epochs[-1] - c.epochs[0]:g} epochs: the tail must span "
                f">= {need:g} epochs and >= {rule.min_tail} evaluations; more evaluations resolve it")
    ch, h = float(d.change[0]), float(d.z[0] * d.se[0])
    told = f"projected change {ch:+.2f} [{ch - h:+.2f}, {ch + h:+.2f}] against delta = {delta:.2f}"
    if state == "plateaued":
        return f"{told}: within +-delta"
    if state == "rising":
        return f"{told}: a rise beyond delta"
    if state == "peaked":
        return f"declined after its best evaluation ({told})"
    tau = math.sqrt(float(d.tau2[0]))
    meas = math.sqrt(max(float(d.se[0]) ** 2 - float(d.tau2[0]) * _cc(c, d), 0.0))
    fix = (f"training noise dominates (tau = {tau:.2f}): seeds, or more evaluations" if tau > 0 and
           float(d.tau2[0]) * _cc(c, d) > meas**2 else "more samples per evaluation (a narrower measurement)")
    return f"{told}: the interval straddles delta; {fix} or a longer tail would resolve it"


def _cc(c: Curve, d: Decision) -> float:
    i = int(d.start[0])
    x = c.epochs[i:] - c.epochs[i:].mean()
    scale = c.horizon - c.epochs[i]
    return float(scale**2 / (x @ x))


def _epoch_range(c: Curve, d: Decision, draws: int, seed: int) -> tuple[int | None, int | None]:
    """2.5-97.5 % range of the plateau epoch over perturbed curves: measurement draws plus training noise."""
    if draws <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    k = len(c.epochs)
    if c.draws is not None:
        rows = c.draws[rng.integers(0, len(c.draws), draws)]
    elif np.any(c.cov):
        rows = rng.multivariate_normal(c.estimates, c.cov, size=draws, method="eigh")
    else:
        rows = np.repeat(c.estimates[None], draws, axis=0)
    rows = rows + rng.normal(size=(draws, k)) * math.sqrt(float(d.tau2[0]))
    idx = plateau_epochs(c.epochs, rows, np.full(draws, d.start[0]), np.full(draws, d.delta[0]))
    lo = int(np.quantile(idx, 0.025, method="lower"))
    hi = int(np.quantile(idx, 0.975, method="higher"))
    return int(c.epochs[max(lo - 1, 0)]) if lo > 0 else int(c.epochs[0]), int(c.epochs[hi])
