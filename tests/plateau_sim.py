"""Synthetic IS curves with a known answer, for calibrating the plateau rule and the stopper
(study/statistics/plateau.py).

Everything is in score (IS) units (shared/STATISTICS.md section 3): s_k = f(e_k) + m_k + eps_k.
eps ~ N(0, se^2 [(1 - rho) I + rho J]) is the measurement error with se = 0.12 sqrt(400 / n) (digits IS at n = 400)
and rho = 0.6 (the pairing of evaluations that share their initial noise); the rule receives this covariance.
m_k ~ N(0, (jitter se)^2), independent between evaluations, is checkpoint-to-checkpoint training noise the rule is
not told about. The budget is E = 240 epochs with K evaluations evenly spaced; delta = 0.15 IS.

The stopper is simulated as it is used: the rule is applied after every evaluation, on the curve so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from study.statistics.plateau import PEAKED, PLATEAUED, PlateauRule, assess, decide_batch, one_sided, plateau_epochs
from study.statistics.plateau import Curve as RuleCurve

EPOCHS = 240.0
DELTA = 0.15
RHO = 0.6
BASE = 3.0


def se_at(n: int) -> float:
    """Measurement SE of one evaluation's IS at n images (0.12 at n = 400, digits)."""
    return 0.12 * math.sqrt(400 / n)


@dataclass(frozen=True)
class Cell:
    shape: str  # linear | concave | saturating | peak | flat
    size: float  # IS units: total rise over the budget (linear, concave, saturating); decline after the peak
    k: int  # evaluations
    n: int  # images per evaluation
    jitter: float  # checkpoint noise sd in units of the measurement SE
    tau: float = 20.0  # saturating: time constant in epochs

    @property
    def se(self) -> float:
        return se_at(self.n)

    def epochs(self) -> np.ndarray:
        return np.linspace(EPOCHS / self.k, EPOCHS, self.k)

    def truth(self, e: np.ndarray) -> np.ndarray:
        u = e / EPOCHS
        if self.shape == "linear":
            return BASE + self.size * u
        if self.shape == "concave":
            return BASE + self.size * np.sqrt(u)
        if self.shape == "saturating":
            return BASE + self.size * (1 - np.exp(-e / self.tau))
        if self.shape == "peak":  # rises by 2 x size to the peak at mid-budget, then declines by size
            return BASE + np.where(u <= 0.5, 4 * self.size * u, 2 * self.size - 2 * self.size * (u - 0.5))
        if self.shape == "flat":
            return np.full_like(e, BASE)
        raise ValueError(self.shape)

    def cov(self) -> np.ndarray:
        return self.se**2 * ((1 - RHO) * np.eye(self.k) + RHO * np.ones((self.k, self.k)))

    def remaining(self) -> np.ndarray:
        """f(E) - f(e_k): the true change still to come after each evaluation."""
        return self.truth(np.array([EPOCHS]))[0] - self.truth(self.epochs())

    def flattening_index(self) -> int:
        """The first evaluation from which the true curve stays within delta of its final value."""
        out = np.abs(self.remaining()) > DELTA
        return int(self.k - np.argmax(out[::-1])) if out.any() else 0

    def tail_test(self, rule: PlateauRule) -> tuple[float, float]:
        """(true change D of the long tail at the end of the budget, q x its SE under the true noise): q is the
        rule's Bonferroni quantile, Student t on the tail's residual degrees of freedom when there is training noise
        for the rule to estimate."""
        from study.statistics.plateau import tail_starts

        e = self.epochs()
        i = tail_starts(e, EPOCHS, rule)[0]  # the long tail
        x = e[i:] - e[i:].mean()
        c = x / (x @ x) * (e[-1] - e[i])
        var = c @ self.cov()[i:, i:] @ c + (self.jitter * self.se) ** 2 * (c @ c)
        df = self.k - i - 2 if self.jitter > 0 else None
        q = one_sided(1 - (1 - rule.confidence) / len(tail_starts(e, EPOCHS, rule)), df)
        return float(self.truth(e[i:]) @ c), q * math.sqrt(var)

    def draw(self, b: int, rng: np.random.Generator) -> np.ndarray:
        noise = rng.multivariate_normal(np.zeros(self.k), self.cov(), size=b, method="eigh")
        return self.truth(self.epochs()) + noise + rng.normal(size=(b, self.k)) * self.jitter * self.se


@dataclass(frozen=True)
class Run:
    """The stopper and the final verdict on B simulated curves of one cell."""

    stop: np.ndarray  # (B,) index of the look that stopped the trial, -1 if it ran the whole budget
    stop_state: np.ndarray  # (B,) the state at that look
    final: np.ndarray  # (B,) state codes of the rule on the whole curve (the report's verdict)
    start: np.ndarray  # (B,) plateau start index on the whole curve (-1 unless plateaued)
    curves: np.ndarray  # (B, K)


def simulate(cell: Cell, b: int, rule: PlateauRule, seed: int = 0) -> Run:
    rng = np.random.default_rng(seed)
    e, cov = cell.epochs(), cell.cov()
    s = cell.draw(b, rng)
    stop, stop_state, run = np.full(b, -1), np.full(b, -1), np.zeros(b, dtype=int)
    for t in range(1, cell.k + 1):
        d = decide_batch(e[:t], s[:, :t], cov[:t, :t], rule, EPOCHS)
        run = np.where(np.isin(d.state, [PLATEAUED, PEAKED]), run + 1, 0)
        hit = (stop < 0) & (run >= rule.persistence)
        stop[hit], stop_state[hit] = t - 1, d.state[hit]
    start = np.where(d.state == PLATEAUED, plateau_epochs(e, s, np.maximum(d.start, 0), d.delta), -1)
    return Run(stop, stop_state, d.state, start, s)


def false_stops(cell: Cell, r: Run) -> float:
    """Share of trials stopped while the true change still to come exceeds delta, unless stopped as ``peaked``
    on a true decline (stopping a declining run is the right call)."""
    rem = cell.remaining()
    at = np.maximum(r.stop, 0)
    wrong = (r.stop >= 0) & (np.abs(rem[at]) > DELTA) & ~((rem[at] < -DELTA) & (r.stop_state == PEAKED))
    return float(wrong.mean())


def coverage(cell: Cell, rule: PlateauRule, b: int, seed: int = 0, draws: int = 200) -> tuple[float, int]:
    """Share of plateaued curves whose plateau-epoch range (``assess``) holds the true flattening evaluation."""
    rng = np.random.default_rng(seed)
    e, cov = cell.epochs(), cell.cov()
    target = e[cell.flattening_index()]
    hits = found = 0
    for row in cell.draw(b, rng):
        v = assess(RuleCurve(e, row, cov, budget=EPOCHS), rule, draws=draws, seed=int(rng.integers(1 << 30)))
        if v.state == "plateaued" and v.epoch_low is not None and v.epoch_high is not None:
            found += 1
            hits += v.epoch_low <= target <= v.epoch_high
    return (hits / found if found else math.nan), found
