"""Synthetic score curves with a known answer, for calibrating the plateau rule (analysis/plateau.py).

Noise model: s_k = f(e_k) + m_k + eps_k. eps ~ N(0, sigma^2 [(1 - rho) I + rho J]) is the measurement error
(equal correlation rho between evaluations: the pairing of evaluations that share their initial noise), with
SE of a paired difference se_meas = sigma sqrt(2 (1 - rho)); m_k ~ N(0, (jitter se_meas)^2), independent between
evaluations, is checkpoint-to-checkpoint fluctuation (training noise the rule does not see in its covariance).
SE_d = se_meas sqrt(1 + 2 jitter^2) is the SE of a difference of two evaluated checkpoints; curve shapes are sized
in SE_d.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from analysis.plateau import PlateauRule, decide_batch

EPOCHS = 100


@dataclass(frozen=True)
class Cell:
    shape: str  # linear | concave | saturating | peak | flat
    k: int  # evaluations, evenly spaced over EPOCHS
    sigma: float
    rho: float
    size: float  # shape-specific size in SE_d (rise over the last quarter, total rise, decline)
    tau: float = 10.0  # saturating: time constant in epochs
    jitter: float = 0.0  # checkpoint noise sd (independent between evaluations), in units of se_meas

    @property
    def se_meas(self) -> float:
        """SE of a paired difference of two measurements (the measurement noise alone)."""
        return self.sigma * np.sqrt(2 * (1 - self.rho))

    @property
    def se_d(self) -> float:
        """SE of the difference between two evaluated checkpoints: measurement and checkpoint noise."""
        return self.se_meas * np.sqrt(1 + 2 * self.jitter**2)

    def epochs(self) -> np.ndarray:
        return np.linspace(EPOCHS / self.k, EPOCHS, self.k)

    def truth(self, e: np.ndarray) -> np.ndarray:
        u, a = e / EPOCHS, 5.0
        if self.shape == "linear":  # last-quarter rise = size SE_d
            return a + 4 * self.size * self.se_d * u
        if self.shape == "concave":  # sqrt(u): last-quarter rise = R (1 - sqrt(.75)) = size SE_d
            return a + self.size * self.se_d / (1 - np.sqrt(0.75)) * np.sqrt(u)
        if self.shape == "saturating":  # total rise = size SE_d
            return a + self.size * self.se_d * (1 - np.exp(-e / self.tau))
        if self.shape == "peak":  # rise of 2 x size to the peak at 0.5 E, then decline by size
            top = 0.5 * EPOCHS
            return a + np.where(e <= top, 2 * self.size * self.se_d * e / top,
                                2 * self.size * self.se_d - self.size * self.se_d * (e - top) / (EPOCHS - top))
        if self.shape == "flat":
            return np.full_like(e, a)
        raise ValueError(self.shape)

    def cov(self) -> np.ndarray:
        return self.sigma**2 * ((1 - self.rho) * np.eye(self.k) + self.rho * np.ones((self.k, self.k)))

    def flattening_epoch(self, margin_se: float = 3.0) -> float:
        """Saturating: the epoch where the remaining rise falls to ``margin_se`` SE_d."""
        return float(self.tau * np.log(self.size / margin_se)) if self.size > margin_se else 0.0

    def simulate(self, n: int, rule: PlateauRule, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(plateau epochs or NaN, peaked flags, epochs) of ``n`` noisy copies of the curve."""
        rng = np.random.default_rng(seed)
        e = self.epochs()
        s = self.truth(e) + rng.multivariate_normal(np.zeros(self.k), self.cov(), size=n, method="eigh")
        s = s + rng.normal(size=s.shape) * self.jitter * self.se_meas
        keep = e > rule.warmup_epochs
        start, peaked, _, _ = decide_batch(e[keep], s[:, keep], self.cov()[np.ix_(keep, keep)], rule)
        ep = np.where(start >= 0, e[keep][np.maximum(start, 0)], np.nan)
        return ep, peaked, e


GRID_K = (8, 12, 20)
GRID_SIGMA = (0.05, 0.1, 0.2)
GRID_RHO = (0.0, 0.6)


def cells(shape: str, sizes: tuple[float, ...], taus: tuple[float, ...] = (10.0,), jitter: float = 0.0) -> list[Cell]:
    return [Cell(shape, k, s, r, size, tau, jitter) for k in GRID_K for s in GRID_SIGMA for r in GRID_RHO
            for size in sizes for tau in taus]
