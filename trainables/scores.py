"""Scores of one evaluation, all computed from one feature pass over its images: a registry keyed by the name
metric keys use (``<score>/<extractor>/n<N>/<evaluation>/<stat>``, study/contract/keys.py).

A score declares which of the extractor's features it reads (torch-fidelity's metric name: ``isc`` for the class
logits, ``fid`` for the pool features), what else it needs (``needs``: ``reference``, the training set's features
at that layer, possibly a sample of ``reference_samples`` images; ``training_set``, every training image in pixels
and features with the held-out set beside it, ``TrainingSet``), and a function from a ``ScoreInput`` (the
evaluation's features and uint8 images) to its statistics. A function may also return per-image arrays
(numpy values): they are kept in the evaluation's artifact (``evaluations/<E>/epoch-<e>.npz``, under
``keys.score_array``) so the statistic can be recomputed under any other criterion, and images (``ScoreImage``,
uint8 [H, W, C]): the trial logs each at every evaluation under ``keys.score_image_key`` beside its sample grid.
Adding a score is a function here, an entry in ``SCORES`` and its name in the spec's ``extra_metrics`` literal.

* ``is``: torch-fidelity's mean and split std (the literature's numbers), plus ``se`` / ``ci_low`` / ``ci_high``
  from the bootstrap over the generated images and ``inf`` (IS-infinity), both from study/statistics/stats.py.
* ``fid``: Frechet distance to the training set's statistics (``value``).
* ``kid``: torch-fidelity's KID (``mean`` and ``std`` over its subsets).
* ``memorization_pixel`` / ``memorization_feature``: the fraction of generated images that copy a training image
  (nearest training image closer than a third of the second nearest; Yoon et al. 2023, study/statistics/neighbours.py),
  in pixel space and in the extractor's ``fid`` feature space: ``mean``, ``se``, ``ci_low`` / ``ci_high``
  (bootstrap over the generated images) and ``held_out``, the same fraction for the held-out images (real images
  the model never saw: the criterion's false-copy baseline, the memorization-onset rule's baseline,
  study/statistics/onset.py) with ``held_out_se`` (bootstrap over the held-out images). Arrays: ``nn1``, ``nn2``,
  ``nn_index`` (generated -> train) and ``held_out_nn1``, ``held_out_nn2`` (held-out -> train). Image: ``copies``
  (``copies_grid``), the ``ScoreSettings.copies`` generated images with the smallest ratio nn1 / nn2 (the most
  copy-like first, ties by index) in the top row, each one's nearest training image below it. Both scores show
  pixels: ``memorization_feature`` pairs each generated image with the training image nearest in *feature* space
  (its ``nn_index``), drawn from the generated and training pixels (no image without the generated pixels).
* ``precision`` / ``recall``: Kynkaanniemi et al. 2019 ("Improved precision and recall metric for assessing
  generative models", NeurIPS, Eqs. 1-3; k = 3) as torch-fidelity >= 0.4.0 computes them (generated = input1,
  real = input2 = the training-set reference): ``mean`` is torch-fidelity's number. Precision's interval
  bootstraps the generated images (its per-image indicators, the real manifold fixed); recall is a mean over the
  *real* images (is each inside the generated manifold?), so its interval bootstraps the real images with the
  generated manifold fixed, and does not cover the generator's sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import calc_cdist_full, prc_features_to_metric
from torchvision.utils import make_grid

from study.contract import keys
from study.statistics.neighbours import bootstrap_fraction, copy_flags
from study.statistics.stats import bootstrap_is, is_infinity

Tensor = torch.Tensor
# bootstrap resamples behind IS-infinity's interval: each refits 15 subset sizes, so fewer than the IS bootstrap's
INFINITY_REPLICATES = 200
PRC_NEIGHBORHOOD = 3  # k of Kynkaanniemi et al. 2019 (their default, and torch-fidelity's prc_neighborhood)
# rows of generated images per distance block: bounds a float64 block at rows x training images x 8 bytes
NN_ROWS = 1024
COPIES = 8  # generated images in a memorization score's ``copies`` image (the most copy-like)
Need = Literal["reference", "training_set"]


@dataclass(frozen=True)
class TrainingSet:
    """Every training image, in pixels (uint8 [M, C, H, W]) and features ([M, D] at the extractor's ``fid``
    layer), with the held-out set's (None where the dataset has none): what nearest-neighbour scores compare
    the generated images with (trainables.metrics.training_set builds and caches it)."""

    pixels: Tensor
    features: Tensor
    held_out_pixels: Tensor | None = None
    held_out_features: Tensor | None = None


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
    training: TrainingSet | None = None  # for scores that need the whole training set (memorization)
    copies: int = COPIES  # images in the memorization scores' ``copies`` grid (0: none)


class HasScores:
    """``scores["is"]["mean"|"std"]`` under their usual names (evaluation results, image metrics)."""

    scores: dict[str, dict[str, float]]

    @property
    def is_mean(self) -> float:
        return self.scores["is"]["mean"]

    @property
    def is_std(self) -> float:
        return self.scores["is"]["std"]


class ScoreInput(NamedTuple):
    """What a score reads of one evaluation: its features at the score's layer ([N, D]) and its uint8 images."""

    features: Tensor
    images: Tensor | None = None


@dataclass(frozen=True)
class ScoreImage:
    """An image a score returns (uint8 [H, W, C]): logged at each evaluation under ``keys.score_image_key``."""

    pixels: np.ndarray


# stats (floats), per-image arrays (kept in the artifact) and images (logged)
ScoreOutput = dict[str, float | np.ndarray | ScoreImage]


@dataclass(frozen=True)
class Score:
    """One registered score: the feature it reads, what else it ``needs`` and how it is computed."""

    feature: Literal["isc", "fid"]
    compute: Callable[[ScoreInput, ScoreSettings], ScoreOutput]
    needs: frozenset[Need] = frozenset()

    @property
    def needs_reference(self) -> bool:
        return "reference" in self.needs


class ScoreResults(NamedTuple):
    """{score: {stat: value}}, the per-image arrays under ``keys.score_array`` names and the images by
    (score, image name) (``keys.score_image_key`` formats their MLflow key with the evaluation id)."""

    scores: dict[str, dict[str, float]]
    arrays: dict[str, np.ndarray]
    images: dict[tuple[str, str], np.ndarray]


def stored_logits(logits: Tensor) -> np.ndarray:
    """The per-image logits as kept in the evaluation artifact (float16): decisions read exactly these."""
    return logits.detach().cpu().to(torch.float16).numpy()


def _inception_score(x: ScoreInput, cfg: ScoreSettings) -> ScoreOutput:
    logits = x.features
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


def _fid(x: ScoreInput, cfg: ScoreSettings) -> ScoreOutput:
    stats = fid_features_to_statistics(x.features)
    ref = cfg.reference.fid_statistics()  # type: ignore[union-attr]
    return {"value": fid_statistics_to_metric(stats, ref, False)["frechet_inception_distance"]}


def _kid(x: ScoreInput, cfg: ScoreSettings) -> ScoreOutput:
    features, ref = x.features, cfg.reference.features  # type: ignore[union-attr]
    subset = min(cfg.kid_subset_size, features.shape[0], ref.shape[0])
    k = kid_features_to_metric(features, ref, kid_subset_size=subset, verbose=False)
    return {"mean": k["kernel_inception_distance_mean"], "std": k["kernel_inception_distance_std"]}


def nearest_two(x: Tensor, y: Tensor, rows: int = NN_ROWS) -> tuple[Tensor, Tensor, Tensor]:
    """Euclidean distances from each row of ``x`` [N, D] to its nearest and second-nearest row of ``y`` [M, D]
    (M >= 2), and the nearest one's index: (d1 [N], d2 [N], index [N]). float64, so that an exact copy's distance
    is 0 up to rounding far below any real neighbour's."""
    if y.shape[0] < 2:
        raise ValueError(f"nearest neighbours need at least 2 training images, got {y.shape[0]}")
    x, y = x.reshape(x.shape[0], -1).double(), y.reshape(y.shape[0], -1).double()
    d1, d2, idx = [], [], []
    for block in x.split(rows):
        top = torch.cdist(block, y).topk(2, dim=1, largest=False)
        d1.append(top.values[:, 0])
        d2.append(top.values[:, 1])
        idx.append(top.indices[:, 0])
    return torch.cat(d1), torch.cat(d2), torch.cat(idx)


def copy_ratios(d1: Tensor, d2: Tensor) -> Tensor:
    """nn1 / nn2 per image, 0 for an exact copy (nn1 == 0, also when a repeated training image makes nn2 0)."""
    d1, d2 = d1.double(), d2.double()
    return torch.where(d1 == 0, torch.zeros_like(d1), d1 / d2)


def copies_grid(generated: Tensor, train: Tensor, d1: Tensor, d2: Tensor, index: Tensor, k: int = COPIES) -> np.ndarray:
    """The ``k`` (or all, if fewer) generated uint8 images [N, C, H, W] with the smallest nn1 / nn2 (``copy_ratios``;
    the most copy-like first, ties by index) in the top row, each one's nearest training image (``train[index]``)
    below it: uint8 [H, W, 3] with 1-px padding, as the sample grid."""
    ratio = copy_ratios(d1, d2).numpy()
    top = torch.from_numpy(np.argsort(ratio, kind="stable")[:k].copy())
    pairs = torch.cat([generated.cpu()[top], train.cpu()[index.cpu()[top].long()]])
    return make_grid(pairs, nrow=len(top), padding=1).permute(1, 2, 0).contiguous().numpy()


def _memorization(
    generated: Tensor, train: Tensor, held_out: Tensor | None, cfg: ScoreSettings,
    pixels: tuple[Tensor, Tensor] | None = None,
) -> ScoreOutput:  # fmt: skip
    """The copy fraction (study/statistics/neighbours.py) of ``generated`` against ``train``, its bootstrap over the
    generated images, the held-out baseline, the distances as arrays and, given ``pixels`` (the generated and
    training uint8 images, in the order of ``generated`` and ``train``), the ``copies`` image."""
    d1, d2, idx = nearest_two(generated, train)
    out: ScoreOutput = dict(bootstrap_fraction(copy_flags(d1.numpy(), d2.numpy()), cfg.bootstrap, cfg.seed).stats())
    out |= {"nn1": d1.float().numpy(), "nn2": d2.float().numpy(), "nn_index": idx.int().numpy()}
    if pixels is not None and cfg.copies > 0:
        out["copies"] = ScoreImage(copies_grid(*pixels, d1, d2, idx, cfg.copies))
    if held_out is not None:
        h1, h2, _ = nearest_two(held_out, train)
        held = bootstrap_fraction(copy_flags(h1.numpy(), h2.numpy()), cfg.bootstrap, cfg.seed)
        out |= {"held_out": held.mean, "held_out_se": held.se,
                "held_out_nn1": h1.float().numpy(), "held_out_nn2": h2.float().numpy()}  # fmt: skip
    return out


def _training(cfg: ScoreSettings) -> TrainingSet:
    if cfg.training is None:
        raise ValueError("memorization needs the training set (ScoreSettings.training)")
    return cfg.training


def _memorization_pixel(x: ScoreInput, cfg: ScoreSettings) -> ScoreOutput:
    # uint8 values as floats: the generated images as scored (to_uint8) against the training images as stored
    if x.images is None:
        raise ValueError("memorization_pixel needs the generated images")
    t = _training(cfg)
    held = t.held_out_pixels.float() if t.held_out_pixels is not None else None
    return _memorization(x.images.float(), t.pixels.float(), held, cfg, (x.images, t.pixels))


def _memorization_feature(x: ScoreInput, cfg: ScoreSettings) -> ScoreOutput:
    t = _training(cfg)
    # the pairs are found in feature space and shown in pixels: TrainingSet's pixels and features share an order
    pixels = (x.images, t.pixels) if x.images is not None else None
    return _memorization(x.features, t.features, t.held_out_features, cfg, pixels)


def _prc_balls(points: Tensor) -> Tensor:
    """Each point's distance to its k-th nearest other point (Kynkaanniemi et al. 2019, Eq. 2's radius; the
    (k+1)-th value counts the point itself, as torch-fidelity does)."""
    return calc_cdist_full(points, points).kthvalue(PRC_NEIGHBORHOOD + 1).values


def _inside(points: Tensor, centres: Tensor, radii: Tensor) -> np.ndarray:
    """Per point: inside any centre's ball (Eq. 1's f(phi, Phi)), as torch-fidelity's ``<=``."""
    return (calc_cdist_full(points, centres) <= radii).any(dim=1).numpy()


def _precision_recall(x: ScoreInput, cfg: ScoreSettings, which: Literal["precision", "recall"]) -> ScoreOutput:
    real = cfg.reference.features  # type: ignore[union-attr]
    gen = x.features
    value = prc_features_to_metric(gen, real, prc_neighborhood=PRC_NEIGHBORHOOD, prc_batch_size=10000,
                                   save_cpu_ram=False, verbose=False)[which]  # fmt: skip
    # per-image indicators with torch-fidelity's definition: their mean is its number (tested), their bootstrap
    # the interval: precision over the generated images, recall over the real ones (module docstring)
    flags = _inside(gen, real, _prc_balls(real)) if which == "precision" else _inside(real, gen, _prc_balls(gen))
    frac = bootstrap_fraction(flags, cfg.bootstrap, cfg.seed)
    return frac.stats() | {"mean": float(value)}


SCORES: dict[str, Score] = {
    "is": Score("isc", _inception_score),
    "fid": Score("fid", _fid, frozenset({"reference"})),
    "kid": Score("fid", _kid, frozenset({"reference"})),
    "memorization_pixel": Score("fid", _memorization_pixel, frozenset({"training_set"})),
    "memorization_feature": Score("fid", _memorization_feature, frozenset({"training_set"})),
    "precision": Score("fid", lambda x, cfg: _precision_recall(x, cfg, "precision"), frozenset({"reference"})),
    "recall": Score("fid", lambda x, cfg: _precision_recall(x, cfg, "recall"), frozenset({"reference"})),
}


def needs(names: list[str] | tuple[str, ...]) -> frozenset[str]:
    """Everything the scores ``names`` need between them (what the evaluator must prepare)."""
    return frozenset().union(*(SCORES[n].needs for n in names))


def compute_scores(
    features: dict[str, Tensor],
    layers: dict[str, str],
    names: list[str],
    cfg: ScoreSettings,
    images: Tensor | None = None,
) -> ScoreResults:
    """The scores ``names`` from ``features`` (layer -> [N, D]; ``layers``: feature -> layer) and the uint8
    ``images``: their stats, their per-image arrays under ``keys.score_array`` names and their images."""
    scores: dict[str, dict[str, float]] = {}
    arrays: dict[str, np.ndarray] = {}
    shown: dict[tuple[str, str], np.ndarray] = {}
    for name in names:
        score = SCORES[name]
        if score.needs_reference and cfg.reference is None:
            raise ValueError(f"score {name!r} needs the training-set reference features")
        if "training_set" in score.needs and cfg.training is None:
            raise ValueError(f"score {name!r} needs the training set (pixels, features and held-out set)")
        out = score.compute(ScoreInput(features[layers[score.feature]], images), cfg)
        scores[name] = {k: float(v) for k, v in out.items() if not isinstance(v, (np.ndarray, ScoreImage))}
        arrays |= {keys.score_array(name, k): v for k, v in out.items() if isinstance(v, np.ndarray)}
        shown |= {(name, k): v.pixels for k, v in out.items() if isinstance(v, ScoreImage)}
    return ScoreResults(scores, arrays, shown)
