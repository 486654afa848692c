"""Scores of one evaluation, all computed from one feature pass over its images: a registry keyed by the name
metric keys use (``<score>/<extractor>/n<N>/<evaluation>/<stat>``, study/keys.py).

A score declares which of the extractor's features it reads (torch-fidelity's metric name: ``isc`` for the class
logits, ``fid`` for the pool features), whether it needs the training-set reference, and a function from those
features to its statistics. Adding one (e.g. torch-fidelity's precision/recall) is a function here, an entry in
``SCORES`` and its name in the spec's ``extra_metrics`` literal.

* ``is``: torch-fidelity's mean and split std (the literature's numbers), plus ``se`` / ``ci_low`` / ``ci_high``
  from the bootstrap over the generated images and ``inf`` (IS-infinity), both from analysis/stats.py.
* ``fid``: Frechet distance to the training set's statistics (``value``).
* ``kid``: torch-fidelity's KID (``mean`` and ``std`` over its subsets).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric

from analysis.stats import bootstrap_is, is_infinity

Tensor = torch.Tensor
# bootstrap resamples behind IS-infinity's interval: each refits 15 subset sizes, so fewer than the IS bootstrap's
INFINITY_REPLICATES = 200


@dataclass(frozen=True)
class ScoreSettings:
    """How scores are computed; ``reference`` is the training set's features (FID/KID), when there is one."""

    splits: int = 10
    shuffle: bool = True
    bootstrap: int = 1000
    infinity_points: int = 15
    kid_subset_size: int = 1000
    seed: int = 0
    reference: object | None = None  # trainables.metrics.ReferenceFeatures


class HasScores:
    """``scores["is"]["mean"|"std"]`` under their usual names (evaluation results, image metrics)."""

    scores: dict[str, dict[str, float]]

    @property
    def is_mean(self) -> float:
        return self.scores["is"]["mean"]

    @property
    def is_std(self) -> float:
        return self.scores["is"]["std"]


@dataclass(frozen=True)
class Score:
    feature: Literal["isc", "fid"]
    needs_reference: bool
    compute: Callable[[Tensor, ScoreSettings], dict[str, float]]


def stored_logits(logits: Tensor) -> np.ndarray:
    """The per-image logits as kept in the evaluation artifact (float16): decisions read exactly these."""
    return logits.detach().cpu().to(torch.float16).numpy()


def _inception_score(logits: Tensor, cfg: ScoreSettings) -> dict[str, float]:
    out = isc_features_to_metric(logits, cfg.splits, cfg.shuffle)
    stats = {"mean": out["inception_score_mean"], "std": out["inception_score_std"]}
    kept = stored_logits(logits)
    if cfg.bootstrap > 1:
        boot = bootstrap_is(kept, cfg.splits, cfg.shuffle, cfg.bootstrap, cfg.seed)
        lo, hi = boot.ci()
        stats |= {"se": float(boot.se()[0]), "ci_low": float(lo[0]), "ci_high": float(hi[0])}
    if cfg.infinity_points >= 2 and kept.shape[0] >= 4:
        inf = is_infinity(kept, cfg.infinity_points, seed=cfg.seed, replicates=min(cfg.bootstrap, INFINITY_REPLICATES))
        stats["inf"] = inf.value
        if math.isfinite(inf.low):
            stats |= {"inf_ci_low": inf.low, "inf_ci_high": inf.high}
    return stats


def _fid(features: Tensor, cfg: ScoreSettings) -> dict[str, float]:
    stats = fid_features_to_statistics(features)
    ref = cfg.reference.fid_statistics()  # type: ignore[union-attr]
    return {"value": fid_statistics_to_metric(stats, ref, False)["frechet_inception_distance"]}


def _kid(features: Tensor, cfg: ScoreSettings) -> dict[str, float]:
    ref = cfg.reference.features  # type: ignore[union-attr]
    subset = min(cfg.kid_subset_size, features.shape[0], ref.shape[0])
    k = kid_features_to_metric(features, ref, kid_subset_size=subset, verbose=False)
    return {"mean": k["kernel_inception_distance_mean"], "std": k["kernel_inception_distance_std"]}


SCORES: dict[str, Score] = {
    "is": Score("isc", False, _inception_score),
    "fid": Score("fid", True, _fid),
    "kid": Score("fid", True, _kid),
}


def compute_scores(
    features: dict[str, Tensor], layers: dict[str, str], names: list[str], cfg: ScoreSettings
) -> dict[str, dict[str, float]]:
    """{score: {stat: value}} for ``names`` from ``features`` (layer -> [N, D]); ``layers``: feature -> layer."""
    out = {}
    for name in names:
        score = SCORES[name]
        if score.needs_reference and cfg.reference is None:
            raise ValueError(f"score {name!r} needs the training-set reference features")
        out[name] = score.compute(features[layers[score.feature]], cfg)
    return out
