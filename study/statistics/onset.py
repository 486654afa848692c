"""Memorization onset: from which evaluation has the memorized fraction risen beyond a stated margin above its
baseline, and how sure are we? (issue 21 item 3; shared/STATISTICS.md section 3, the plateau rule's standard.)

One implementation decides in the trial (the ``memorization`` stopping rule, ``trainables/stopping.py``) and in
the report (the "generalization window", analysis/tables.py), from the same logged numbers.

Input: a ``FractionCurve``: the evaluated epochs e_1 < ... < e_K, the memorized fraction f_k of the generated
images (``memorization_feature`` or ``memorization_pixel``, trainables/scores.py: the share whose nearest
training image is closer than a third of the second nearest), its bootstrap standard error se_k over the generated
images, and the baseline b with its standard error se_b.

The baseline
------------
b is the **held-out level** logged beside every evaluation (``held_out``): the fraction of real images the model
never saw that the same criterion flags as copies of a training image. It is what a generator that has learnt the
data distribution without copying would score: the criterion's false-copy rate on this training set, a property
of the data and not of the run. The alternative, the curve's own early-training level, was rejected: (1) early
samples are noise or blur whose nearest-neighbour ratio is near 1, so they score *below* anything a generalizing
model scores, and a rise from there mixes learning the data with copying it; (2) a small training set can be
memorized within the first evaluations, and a baseline taken from a contaminated start would hide that onset; (3)
the held-out level is the same number at every look, so the stopper's baseline never moves under it. A curve
without a logged held-out level (a dataset with no held-out split) is ``undetermined``.

The margin
----------
delta is stated before looking, in fraction units (``evaluation.onset.margin``; the default, declared with the
other parameters in ``OnsetParameters``, is five percentage points of the generated images). Standard errors and
training noise never enter it.

The rule
--------
Evaluations at ``epoch <= warmup_epochs`` or with a non-finite fraction are dropped. The rise at evaluation k is
r_k = f_k - b.

0. **Training noise.** The memorized fraction of consecutive checkpoints differs by more than its binomial
   measurement (the EMA weights wander). Its variance tau^2 is the plateau rule's ``checkpoint_noise``: the second
   differences of the whole curve beyond what the measurement explains (``checkpoint_noise_independent``: the
   same estimate for independent errors). The bend of a rise inflates it, which only
   makes the rule slower. The quantile is then Student t on max((K - 2) / 2, 1) degrees of freedom (the plateau
   rule's direct-rise test), the normal one when ``checkpoint_noise`` is off.
1. **Resolved above / below**, z the one-sided quantile of ``confidence``, SE_k^2 = se_k^2 + se_b^2 + tau^2:
   *above* at k when r_k - z SE_k > delta; *below* when r_k + z SE_k < delta. Each evaluation is compared with the
   fixed baseline, so pairing between evaluations (they share their initial noise) is not used; it only makes
   tau^2 come out larger (conservative).
2. **States.** ``onset``: ``persistence`` consecutive evaluations are resolved above (the first such run
   counts). ``no onset``: no such run, and the last ``persistence`` evaluations are all resolved below the margin.
   ``undetermined`` otherwise (a rise near the margin, too few evaluations, no baseline); the reason says what would
   resolve it.
3. **Since when** (onset): the resolved run starts at evaluation s. The onset epoch is the earliest evaluation
   from which every evaluation up to s, smoothed over its neighbours (3-point running median), lies above the margin:
   an estimate of when the true rise crossed delta, not of when it was resolved (which is later). Its interval is
   the 2.5-97.5 % range of that epoch over Gaussian draws of the curve (se_k^2 + tau^2 per evaluation, se_b^2
   shared), widened by one evaluation interval at the low end (the crossing lies between two evaluations).
4. **The rise** reported is the latest evaluation's r_K with its two-sided interval at ``confidence``.

The stopper looks at every evaluation and ends the trial (``memorized``) once the state is ``onset``.

Noise model and measured rates (``tests/test_onset_calibration.py`` asserts and prints them)
---------------------------------------------------------------------------------------------
True fraction p_k = b0 + m_k + A ramp(e_k), b0 = 0.01 (about the digits held-out level), the ramp from 0 at the
onset epoch (40 % of a 240-epoch budget) to 1 a fifth of the budget later; m_k ~ N(0, j^2), j in {0, 0.01, 0.02}
fraction units, is checkpoint noise the rule is not told about. f_k ~ Binomial(n, p_k) / n with n in {100, 400,
1,600} generated images and se_k = sqrt(f_k (1 - f_k) / n) (what the bootstrap estimates); the held-out level is
Binomial(360, b0) / 360 with its binomial SE. K in {12, 24, 48} evaluations; delta = 0.05; 1,000 curves per cell;
every look of the stopper is simulated. At the defaults (persistence 2, confidence 0.95):

* flat curves (A = 0): the stopper ever fires in 0.0 % of runs in every cell, over all looks;
* rises below the margin, A = 0.02 and 0.03: it ever fires in at most 0.1 % and 0.4 % (K = 48, jitter 0.02);
* a rise that reaches the margin and stays there (A = 0.05, no true rise beyond delta): 0-12 % (K = 48);
* rises beyond the margin (A = 0.1, 0.2) where the precision allows (the final rise exceeds delta by twice the
  one-sided 95 % half-width of one evaluation under the true noise; 33 of 54 cells): detected in >= 97.8 %
  (worst: A = 0.2, K = 12, n = 100, jitter 0.02). Where it does not (A = 0.1 at n <= 400 or jitter 0.02) the
  detection rate falls to 23 % (K = 12, n = 100, jitter 0.02) and the answer is ``undetermined``, not wrong;
* onset epoch (estimate minus the epoch at which the true rise reaches delta): median +0.0 (A = 0.1) and +0.4
  (A = 0.2) evaluation intervals, i.e. the first evaluation after the crossing; the stopper fires a median 2.5
  evaluation intervals after the crossing (worst cell 5.4);
* the onset-epoch range holds the true crossing in >= 95 % of detected runs in every allowed cell (median 100 %).
* persistence: with 1 the stopper fired on 19 % of runs whose rise stays at 0.03 (74 % at 0.05: every look is a
  new chance); with 3, 0 % and 4 %, but detection fell to 91 %. 2 is the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from study.contract.keys import ONSET_STATES, OnsetState
from study.contract.spec.study import OnsetParameters, OnsetSpec
from study.statistics.plateau import checkpoint_noise_independent, one_sided, two_sided

__all__ = ["OnsetRule", "FractionCurve", "Onset", "assess_onset", "resolved", "onset_state"]

# the codes of onset_state: indices into the contract's ONSET_STATES, in its order
ONSET, NO_ONSET, UNDETERMINED = range(len(ONSET_STATES))


class OnsetRule(OnsetParameters):
    """The rule in the module docstring: the spec's parameters (``OnsetParameters``, declared once with their
    calibrated defaults) and whether the SE carries the checkpoint noise estimated from the curve. A trial's rule
    is ``OnsetRule.of(spec.evaluation.onset)``."""

    checkpoint_noise: bool = True

    @classmethod
    def of(cls, spec: OnsetSpec) -> OnsetRule:
        """The rule ``evaluation.onset`` states."""
        return cls(**spec.model_dump(include=set(OnsetParameters.model_fields)))

    def describe(self) -> str:
        """One-line statement of the rule with its parameters (goes into reports)."""
        return (
            f"memorization onset: the memorized fraction minus its held-out level (real images the model never saw, "
            f"the same criterion) resolved above delta = {self.margin:g} (fraction units, stated) at "
            f"{self.confidence:.0%} one-sided at {self.persistence} consecutive evaluation(s); SE includes the "
            "measurement (bootstrap over the generated images), the held-out level's"
            + (
                " and the checkpoint-to-checkpoint training noise estimated from the curve"
                if self.checkpoint_noise
                else ""
            )
            + "; `no onset` when the last evaluations are resolved below delta, `undetermined` otherwise"
        )


@dataclass(frozen=True)
class FractionCurve:
    """One memorized-fraction curve: epochs, fractions, their standard errors, the baseline (module docstring)."""

    epochs: np.ndarray
    estimates: np.ndarray
    ses: np.ndarray
    baseline: float = math.nan  # the held-out level (NaN: none logged)
    baseline_se: float = 0.0

    def __post_init__(self) -> None:
        k = len(self.epochs)
        if np.shape(self.estimates) != (k,) or np.shape(self.ses) != (k,):
            raise ValueError(f"a fraction curve of {k} epochs needs {k} estimates and {k} standard errors")

    @classmethod
    def from_rows(
        cls, epochs: object, mean: object, se: object, held_out: object = None, held_out_se: object = None,
    ) -> FractionCurve:  # fmt: skip
        """From logged columns (``mean``, ``se``, ``held_out``, ``held_out_se`` per evaluation; the held-out
        level is the same number at every evaluation: their mean). NaN SEs count as 0."""
        e = np.asarray(epochs, dtype=float)
        order = np.argsort(e, kind="stable")

        def col(x: object) -> np.ndarray:
            return np.full(len(e), np.nan) if x is None else np.asarray(x, dtype=float)[order]

        h, hs = col(held_out), col(held_out_se)
        b = float(np.mean(h[np.isfinite(h)])) if np.isfinite(h).any() else math.nan
        bse = float(np.mean(hs[np.isfinite(hs)])) if np.isfinite(hs).any() else 0.0
        return cls(e[order], col(mean), np.nan_to_num(col(se), nan=0.0), b, bse)

    def select(self, mask: np.ndarray) -> FractionCurve:
        return FractionCurve(self.epochs[mask], self.estimates[mask], self.ses[mask], self.baseline, self.baseline_se)


@dataclass(frozen=True)
class Onset:
    """What the rule says about one curve. ``epoch`` (onset only): the estimated crossing, with its range;
    ``detected``: the evaluation at which the persistence was reached (where the stopper ends the trial)."""

    state: OnsetState
    epoch: int | None = None
    epoch_low: int | None = None
    epoch_high: int | None = None
    detected: int | None = None
    rise: float = math.nan  # the latest evaluation's fraction minus the baseline ...
    rise_low: float = math.nan  # ... and its two-sided interval at the rule's confidence
    rise_high: float = math.nan
    baseline: float = math.nan
    margin: float = math.nan
    noise: float = 0.0  # tau, fraction units
    streak: int = 0  # consecutive evaluations, ending with the latest, resolved above the margin
    reason: str = ""
    rule: str = ""


def _z(rule: OnsetRule, k: int, two: bool = False) -> float:
    df = max((k - 2) / 2, 1) if rule.checkpoint_noise else None
    return two_sided(rule.confidence, df) if two else one_sided(rule.confidence, df)


def resolved(
    f: np.ndarray, se: np.ndarray, b: np.ndarray, se_b: np.ndarray, rule: OnsetRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(above, below, tau^2) on B curves of K evaluations: ``f``, ``se`` (B, K); ``b``, ``se_b`` (B,).

    above / below: (B, K) booleans, the rise resolved beyond / within the margin at each evaluation (step 1)."""
    f, se = np.atleast_2d(f), np.atleast_2d(se)
    bsz, k = f.shape
    b, se_b = np.broadcast_to(np.asarray(b, float), (bsz,)), np.broadcast_to(np.asarray(se_b, float), (bsz,))
    tau2 = (
        checkpoint_noise_independent(f, np.broadcast_to(se, f.shape) ** 2) if rule.checkpoint_noise else np.zeros(bsz)
    )
    sd = np.sqrt(se**2 + (se_b**2 + tau2)[:, None])
    z = _z(rule, k)
    rise = f - b[:, None]
    eps = 1e-12
    return rise - z * sd > rule.margin + eps, rise + z * sd < rule.margin - eps, tau2


def _first_run(above: np.ndarray, p: int) -> np.ndarray:
    """Index per row of the first run of ``p`` consecutive True values (-1: none)."""
    bsz, k = above.shape
    if k < p:
        return np.full(bsz, -1)
    run = np.ones((bsz, k - p + 1), dtype=bool)
    for j in range(p):
        run &= above[:, j : k - p + 1 + j]
    return np.where(run.any(axis=1), np.argmax(run, axis=1), -1)


def onset_state(
    f: np.ndarray, se: np.ndarray, b: np.ndarray, se_b: np.ndarray, rule: OnsetRule
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(state codes into ONSET_STATES, start index of the resolved run (-1: none), tau^2) on B curves: what the
    stopper decides after each evaluation, vectorised for the calibration."""
    f = np.atleast_2d(f)
    bsz, k = f.shape
    above, below, tau2 = resolved(f, se, b, se_b, rule)
    start = _first_run(above, rule.persistence)
    state = np.full(bsz, UNDETERMINED)
    p = rule.persistence
    if k >= p:
        state[below[:, k - p :].all(axis=1)] = NO_ONSET
    state[start >= 0] = ONSET
    state[~np.isfinite(np.broadcast_to(np.asarray(b, float), (bsz,)))] = UNDETERMINED
    return state, start, tau2


def _median3(x: np.ndarray) -> np.ndarray:
    """The 3-point running median of each row (edges repeated): a single noisy evaluation neither starts nor breaks
    a crossing, and unlike a running mean it does not move a step (or a monotone rise) earlier."""
    pad = np.pad(x, ((0, 0), (1, 1)), mode="edge")
    return np.median(np.stack([pad[:, :-2], pad[:, 1:-1], pad[:, 2:]]), axis=0)


def crossing(rise: np.ndarray, start: np.ndarray, margin: float) -> np.ndarray:
    """Index per curve of the estimated crossing: the earliest evaluation from which every smoothed rise up to
    ``start`` (the resolved run's first index) lies above the margin (3-point running median); ``start`` when its
    own smoothed rise does not.
    ``rise``: (B, K)."""
    rise = np.atleast_2d(rise)
    bsz, k = rise.shape
    start = np.broadcast_to(np.asarray(start), (bsz,))
    above = _median3(rise) > margin
    idx = np.arange(k)[None, :]
    out = ~above & (idx <= start[:, None])
    last_out = np.where(out.any(axis=1), k - 1 - np.argmax(out[:, ::-1], axis=1), -1)
    return np.where(last_out >= start, start, last_out + 1)


def assess_onset(curve: FractionCurve, rule: OnsetRule | None = None, draws: int = 200, seed: int = 0) -> Onset:
    """The rule's verdict on ``curve`` with the onset epoch's interval over ``draws`` perturbed curves."""
    rule = rule or OnsetRule()
    text = rule.describe()
    keep = np.isfinite(curve.estimates) & np.isfinite(curve.epochs) & (curve.epochs > rule.warmup_epochs)
    c = curve.select(keep)
    k = len(c.epochs)
    if k == 0:
        return Onset("undetermined", reason="no finite memorized fraction after warm-up", margin=rule.margin,
                     rule=text)  # fmt: skip
    if not math.isfinite(c.baseline):
        return Onset("undetermined", reason="no held-out level logged (the dataset has no held-out split): no "
                     "baseline to measure a rise from", margin=rule.margin, rule=text)  # fmt: skip
    f, se = c.estimates[None], c.ses[None]
    state, start, tau2 = onset_state(f, se, c.baseline, c.baseline_se, rule)
    above, _, _ = resolved(f, se, c.baseline, c.baseline_se, rule)
    tau = math.sqrt(float(tau2[0]))
    rise = float(c.estimates[-1] - c.baseline)
    half = _z(rule, k, two=True) * math.sqrt(float(c.ses[-1]) ** 2 + c.baseline_se**2 + tau**2)
    streak = int(np.argmin(above[0, ::-1])) if not above[0].all() else k
    common = dict(rise=rise, rise_low=rise - half, rise_high=rise + half, baseline=c.baseline, margin=rule.margin,
                  noise=tau, streak=streak, rule=text)  # fmt: skip
    told = f"rise {rise:+.3f} [{rise - half:+.3f}, {rise + half:+.3f}] over the held-out level {c.baseline:.3f}"
    s = int(start[0])
    if state[0] == ONSET:
        idx = int(crossing(c.estimates[None] - c.baseline, start, rule.margin)[0])
        lo, hi = _epoch_range(c, s, tau, rule, draws, seed)
        detected = int(c.epochs[s + rule.persistence - 1])
        return Onset(
            "onset",
            int(c.epochs[idx]),
            lo,
            hi,
            detected,
            reason=f"{told}; resolved above delta = "
            f"{rule.margin:g} from epoch {int(c.epochs[s])} at {rule.persistence} evaluation(s) in a row",
            **common,
        )  # type: ignore[arg-type]
    if state[0] == NO_ONSET:
        return Onset(
            "no onset",
            reason=f"{told}: resolved below delta = {rule.margin:g} at the last {rule.persistence} evaluation(s)",
            **common,
        )  # type: ignore[arg-type]
    if k < rule.persistence:
        why = f"{k} evaluation(s): the rule needs {rule.persistence} in a row"
    else:
        why = (
            f"{told}: the interval straddles delta = {rule.margin:g}; more generated images per evaluation, "
            "more evaluations or seeds would resolve it"
        )
    return Onset("undetermined", reason=why, **common)  # type: ignore[arg-type]


def _epoch_range(c: FractionCurve, start: int, tau: float, rule: OnsetRule, draws: int,
                 seed: int) -> tuple[int | None, int | None]:  # fmt: skip
    """2.5-97.5 % range of the onset epoch over Gaussian draws: measurement, baseline and training noise."""
    if draws <= 0:
        return None, None
    rng = np.random.default_rng(seed)
    k = len(c.epochs)
    sd = np.sqrt(c.ses**2 + tau**2)
    rows = c.estimates[None] + rng.normal(size=(draws, k)) * sd[None]
    base = c.baseline + rng.normal(size=(draws, 1)) * c.baseline_se
    idx = crossing(rows - base, np.full(draws, start), rule.margin)
    lo = int(np.quantile(idx, 0.025, method="lower"))
    hi = int(np.quantile(idx, 0.975, method="higher"))
    return int(c.epochs[max(lo - 1, 0)]), int(c.epochs[hi])
