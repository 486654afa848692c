"""Nearest-neighbour statistics of generated images against the training set: per-image indicators and their
bootstrap over the generated images (pure numpy, so the report can recompute them from an evaluation's artifact).

* **Memorization** (Yoon et al. 2023, "Diffusion probabilistic models generalize when they fail to memorize",
  ICML workshop SPIGM; Gu et al. 2023, "On memorization in diffusion models"; the nearest-neighbour-relative
  notion of a copy follows Carlini et al. 2023, "Extracting training data from diffusion models", USENIX
  Security, Sec. 4): a generated image x is a copy when its nearest training image is much closer than the second
  nearest, ``d(x, NN_1(x)) / d(x, NN_2(x)) < 1/3``. Bonnaire et al. 2025 (NeurIPS, "Why diffusion models don't
  memorize") measure the memorized fraction with this criterion. ``copy_flags`` applies it to the logged
  distances; an image at distance 0 from a training image is a copy even when the training set holds that image
  twice (then both distances are 0 and the ratio is undefined).
* **Bootstrap of a fraction over the generated images**: replicate b draws N image indices with replacement and
  takes the mean of the indicators. The draws depend on the seed and N only, so evaluations of one trial (image i
  shares its initial noise at every epoch) are resampled with the same indices: paired, as study/statistics/stats.py's
  IS bootstrap. With 0 or N flagged images the percentile interval collapses to the point (the bootstrap cannot
  see beyond the sample): read it as "none (all) of these N images".
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["COPY_RATIO", "Fraction", "copy_flags", "bootstrap_fraction"]

COPY_RATIO = 1.0 / 3.0  # Yoon et al. 2023 / Gu et al. 2023: NN_1 distance below a third of the NN_2 distance
# index draws per chunk of replicates (bounds the (b, N) block at a few tens of MB)
_DRAWS_PER_CHUNK = 4_000_000


def copy_flags(nn1: np.ndarray, nn2: np.ndarray, ratio: float = COPY_RATIO) -> np.ndarray:
    """Boolean per image: ``nn1 / nn2 < ratio`` (``nn1``, ``nn2``: distances to the nearest and second-nearest
    training image); ``nn1 == 0`` is a copy (an exact training image, possibly one the training set repeats)."""
    nn1, nn2 = np.asarray(nn1, dtype=np.float64), np.asarray(nn2, dtype=np.float64)
    if nn1.shape != nn2.shape:
        raise ValueError(f"nn1 and nn2 differ in shape: {nn1.shape} vs {nn2.shape}")
    with np.errstate(divide="ignore", invalid="ignore"):
        return (nn1 == 0) | (nn1 < ratio * nn2)


@dataclass(frozen=True)
class Fraction:
    """A fraction of N images with its bootstrap standard error and percentile interval (module docstring)."""

    mean: float
    se: float
    low: float
    high: float
    n: int

    def stats(self) -> dict[str, float]:
        """Under the stat names of score keys (study/contract/keys.py): mean, se, ci_low, ci_high."""
        return {"mean": self.mean, "se": self.se, "ci_low": self.low, "ci_high": self.high}


def bootstrap_fraction(flags: np.ndarray, replicates: int = 1000, seed: int = 0, level: float = 0.95) -> Fraction:
    """The fraction of ``flags`` that are true, with a bootstrap over the images (``replicates`` < 2: no interval,
    se and bounds NaN). Deterministic for a given seed and N."""
    f = np.asarray(flags, dtype=np.float64).ravel()
    n = f.size
    if n == 0:
        raise ValueError("a fraction of no images")
    mean = float(f.mean())
    if replicates < 2:
        return Fraction(mean, float("nan"), float("nan"), float("nan"), n)
    rng = np.random.default_rng(seed)
    out = np.empty(replicates)
    chunk = max(1, _DRAWS_PER_CHUNK // n)
    for start in range(0, replicates, chunk):
        b = min(chunk, replicates - start)
        out[start : start + b] = f[rng.integers(0, n, size=(b, n))].mean(axis=1)
    a = (1 - level) / 2
    return Fraction(mean, float(out.std(ddof=1)), float(np.quantile(out, a)), float(np.quantile(out, 1 - a)), n)
