"""Plateau (convergence) detection on one Inception-Score-vs-epoch curve.

A curve is the sequence of evaluations ``(epoch, IS mean, IS std over splits)`` of one trained model
with one evaluation (sampler), one feature extractor and one sample count.

The rule
--------
Let the *valid* evaluations be those with a finite IS mean at an epoch strictly greater than
``warmup_epochs`` (default 2), sorted by epoch (if an epoch appears twice the last value wins).
A non-finite or negative split std counts as 0.

1. Two evaluations ``e`` (earlier) and ``j`` (later) differ *significantly* when
   ``IS(j) - IS(e) > tol(e, j) = max(min_delta, k * sqrt(std(e)**2 + std(j)**2))``
   (``k`` default 1.0, ``min_delta`` default 0.0). We call ``j`` an *exceedance* of ``e``.
2. An exceedance ``j`` is an *isolated spike* when it is not the last valid evaluation and
   neither of its neighbouring valid evaluations (``j-1``, ``j+1``) is an exceedance of ``e``.
3. ``e`` qualifies as the plateau when
   a. at least ``patience`` valid evaluations (default 2) follow it,
   b. the curve was observed after it for at least ``min_tail_fraction`` (default 0.25) of the epochs
      it took to reach it: ``last_epoch - e >= min_tail_fraction * e``, and
   c. every exceedance after it is an isolated spike, with at most ``max_spikes`` (default 1) of them.
4. The plateau epoch is the **earliest** qualifying ``e``; ``Plateau.is_mean`` / ``is_std`` are the
   IS mean and std measured at that epoch. If no evaluation qualifies the curve has **not converged**
   (``epoch=None``) and ``reason`` says why: no finite values, too short, or still improving.

Reasoning
---------
* IS is a noisy estimate: its split std is 0.2-0.5 at n=500 on the digits default
  (MEASURED-CPU.md section 3), which is larger than many epoch-to-epoch changes on the slow part of
  the curve. Comparing single deltas (``IS(e+1) - IS(e)``) would stop on the first noisy step down,
  so improvements are only counted when they exceed the combined split std of both evaluations.
* "No later evaluation is significantly better" looks at *all* later evaluations, not just the next
  one, so a slow but steady rise (each step within noise, the total not) is still "improving".
* Epochs 1-2 of a tiny DDPM score higher than epochs 3-10 (blobby samples fool the classifier, then
  the score dips). Without a warm-up an early blob score could be taken for a plateau on a short
  curve, so evaluations at ``epoch <= warmup_epochs`` are neither candidates nor evidence.
* ``patience`` evaluations must follow the plateau: a plateau needs evidence that nothing better
  came afterwards; the last evaluations of a curve can never be plateaus on their own.
* The tail condition (3b) is what makes a *steadily rising* curve "not converged": near the end of
  any curve the few remaining evaluations cannot show a rise larger than the noise, so without it
  the third-to-last evaluation of a straight rising line would always qualify. Requiring the flat
  part to have lasted a quarter of the time it took to get there means a curve counts as converged
  only when its rise over the last ~20 % of training is within noise.
* One noisy spike (a single evaluation far above its neighbours) must not move the plateau to the
  spike, so a single isolated exceedance is forgiven. Two consecutive exceedances are a real rise.
  An exceedance at the *last* evaluation is never forgiven: it cannot be told apart from a renewed
  rise until the next evaluation arrives, so the curve is reported as not converged until then.
* NaN / inf values (a diverged trial, a failed evaluation) are dropped: the rule runs on what is
  finite. Whether the trial diverged is the report's business (its status column), not this
  function's.
* A *decline* after the plateau (over-training, collapse) does not refute it: the plateau is where
  the score stopped improving.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["Plateau", "PlateauRule", "detect_plateau"]


@dataclass(frozen=True)
class PlateauRule:
    """Parameters of the plateau rule described in the module docstring."""

    warmup_epochs: int = 2
    k: float = 1.0
    patience: int = 2
    max_spikes: int = 1
    min_delta: float = 0.0
    min_tail_fraction: float = 0.25

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ValueError(f"patience must be >= 1, got {self.patience}")
        if self.k < 0 or self.min_delta < 0 or self.max_spikes < 0 or self.warmup_epochs < 0 \
                or self.min_tail_fraction < 0:
            raise ValueError(f"plateau rule parameters must be non-negative: {self}")

    def describe(self) -> str:
        """One-line statement of the rule with its parameters (goes into reports)."""
        return (
            f"ignore evaluations at epoch <= {self.warmup_epochs} and non-finite IS; the plateau is the "
            f"earliest evaluation e followed by >= {self.patience} evaluations and by >= {self.min_tail_fraction:g}*e "
            f"epochs such that no later "
            f"evaluation j has IS(j) - IS(e) > max({self.min_delta:g}, {self.k:g}*sqrt(std(e)^2+std(j)^2)), "
            f"except at most {self.max_spikes} isolated spike(s) (an exceedance whose neighbours do not "
            f"exceed and which is not the last evaluation); otherwise the curve has not converged"
        )


@dataclass(frozen=True)
class Plateau:
    """Result of :func:`detect_plateau`.

    ``epoch``/``is_mean``/``is_std`` describe the evaluation where the plateau starts (all ``None``
    when the curve has not converged). ``rule`` is the rule's description, ``reason`` says why a
    curve has not converged (empty when it has).
    """

    epoch: int | None
    is_mean: float | None
    is_std: float | None
    converged: bool
    rule: str
    reason: str = ""


def _clean(
    epochs: Sequence[float] | np.ndarray,
    means: Sequence[float] | np.ndarray,
    stds: Sequence[float] | np.ndarray | None,
    warmup_epochs: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by epoch, keep the last value of duplicated epochs, drop warm-up and non-finite means."""
    ep = np.asarray(epochs, dtype=float)
    mu = np.asarray(means, dtype=float)
    sd = np.zeros_like(mu) if stds is None else np.asarray(stds, dtype=float)
    if not (ep.shape == mu.shape == sd.shape) or ep.ndim != 1:
        raise ValueError(f"epochs, means and stds must be 1-D and of equal length: {ep.shape}, {mu.shape}, {sd.shape}")
    sd = np.where(np.isfinite(sd) & (sd > 0), sd, 0.0)
    order = np.argsort(ep, kind="stable")
    ep, mu, sd = ep[order], mu[order], sd[order]
    # keep the last occurrence of each epoch
    last = np.ones(ep.shape, dtype=bool)
    last[:-1] = ep[:-1] != ep[1:]
    keep = last & np.isfinite(ep) & np.isfinite(mu) & (ep > warmup_epochs)
    return ep[keep], mu[keep], sd[keep]


def _qualifies(i: int, ep: np.ndarray, mu: np.ndarray, sd: np.ndarray, rule: PlateauRule) -> bool:
    """Whether valid evaluation ``i`` satisfies conditions 1-3 of the rule."""
    n = len(mu)
    if n - 1 - i < rule.patience or ep[-1] - ep[i] < rule.min_tail_fraction * ep[i]:
        return False
    later = slice(i + 1, n)
    tol = np.maximum(rule.min_delta, rule.k * np.sqrt(sd[i] ** 2 + sd[later] ** 2))
    exceeds = (mu[later] - mu[i]) > tol
    idx = np.flatnonzero(exceeds)
    if idx.size == 0:
        return True
    if idx.size > rule.max_spikes:
        return False
    m = exceeds.size
    for j in idx:
        if j == m - 1:  # the last evaluation: a spike or a renewed rise, cannot tell yet
            return False
        if (j > 0 and exceeds[j - 1]) or exceeds[j + 1]:
            return False
    return True


def detect_plateau(
    epochs: Sequence[float] | np.ndarray,
    means: Sequence[float] | np.ndarray,
    stds: Sequence[float] | np.ndarray | None = None,
    rule: PlateauRule | None = None,
) -> Plateau:
    """Find the plateau epoch of one IS curve with the rule of the module docstring.

    ``epochs``, ``means`` and ``stds`` are parallel sequences (any order); ``stds=None`` means no
    split std is known (tolerance falls back to ``rule.min_delta``).
    """
    rule = rule or PlateauRule()
    text = rule.describe()
    ep, mu, sd = _clean(epochs, means, stds, rule.warmup_epochs)
    if ep.size == 0:
        return Plateau(None, None, None, False, text, "no finite IS after warm-up")
    if ep.size < rule.patience + 1:
        return Plateau(
            None, None, None, False, text,
            f"too short: {ep.size} evaluation(s) after warm-up, need >= {rule.patience + 1}",
        )
    for i in range(ep.size):
        if _qualifies(i, ep, mu, sd, rule):
            return Plateau(int(round(ep[i])), float(mu[i]), float(sd[i]), True, text)
    return Plateau(None, None, None, False, text, "still improving")

