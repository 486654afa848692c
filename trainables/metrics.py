"""Inception Score, FID and KID through torch-fidelity, with the feature extractor a spec names (REFERENCE B.8).

``digits-cnn`` (the embedded default's classifier) is registered with torch-fidelity here, in every
process that imports this module: torch-fidelity's registry is per process, so Ray trial workers
register it themselves. ``inception-v3-compat`` is torch-fidelity's port of the TF 2015-12-05 graph.

The numbers are torch-fidelity's own: features come from its ``get_featuresdict_from_dataset`` and the scores
from its ``isc_/fid_/kid_`` functions, exactly the steps ``calculate_metrics`` chains (tests compare the two).
We chain them ourselves for three reasons: the extractor (95 MB of Inception weights) is built once per
process instead of once per evaluation; the training-set reference features are cached under a key naming
the dataset, resolution, extractor and weights file; and the Inception weights file is located *before*
torch-fidelity could start a download (inside a trial nothing is ever downloaded; ``study run`` fetches the
file once in the driver, or says where to put it).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch_fidelity  # noqa: F401  (registers the built-in extractors)
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.metric_fid import fid_features_to_statistics
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from study.contract import keys
from trainables.data import Uint8Pixels, download_timeout, offline
from trainables.digits_classifier import (
    SHIPPED_RESOLUTIONS,
    ensure_digits_classifier,
    load_digits_classifier,
    resolve_shipped,
    shipped_digits_classifier,
)
from trainables.files import UnsafeFile, atomic_torch_save, atomic_write, load_tensors, sha256_of
from trainables.scores import SCORES, HasScores, ScoreSettings, TrainingSet, compute_scores

Tensor = torch.Tensor
log = logging.getLogger(__name__)

INCEPTION = "inception-v3-compat"
INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = URL_INCEPTION_V3
# sha256 of torch-fidelity's weights-inception-2015-12-05-6726825d.pth (torch.hub's naming: the file name carries
# the first 8 hex digits of its sha256). torch-fidelity unpickles the file with ``weights_only=False``, so a file
# given by path is hashed first; STUDY_INCEPTION_SHA256 replaces the expected hash, only when set explicitly.
INCEPTION_WEIGHTS_SHA256 = "6726825d0af5f729cebd5821db510b11b1cfad8faad88a03f1befd49fb9129b2"
INCEPTION_SHA256_ENV = "STUDY_INCEPTION_SHA256"


class WeightsUnavailable(FileNotFoundError):
    """A feature extractor's weights file is missing; the message names the file and where to put it."""


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] -> uint8 by x*127.5 + 128 then truncation (= rounding; EDM generate.py). Fixed for comparability."""
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class DigitsFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over ``DigitCNN``: ``logits_unbiased`` for IS, ``128`` (penultimate) for FID/KID."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kw):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"{name} needs feature_extractor_weights_path (see shipped_digits_classifier)")
        self.net = load_digits_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("logits_unbiased", "128")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits_unbiased", "fid": "128", "kid": "128", "prc": "128"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        if x.shape[-1] != self.net.resolution:
            x = torch.nn.functional.interpolate(x, size=self.net.resolution, mode="bilinear", align_corners=False)
        feats = self.net.penultimate(x)
        out = {"logits_unbiased": self.net.head(feats), "128": feats}
        return tuple(out[f] for f in self.features_list)


# ------------------------------------------------------------------------------------------ Inception weights


def hub_checkpoints_dir() -> Path:
    """Where torch.hub (and so torch-fidelity) looks for downloaded weights: ``$TORCH_HOME/hub/checkpoints``."""
    return Path(torch.hub.get_dir()) / "checkpoints"


def inception_weights_missing_message(configured: str | Path | None = None) -> str:
    """The exact instruction for an offline user."""
    where = f"the configured weights_path {configured} does not exist; " if configured else ""
    return (
        f"Inception v3 weights not found ({where}inception-v3-compat needs {INCEPTION_WEIGHTS_FILE}): "
        f"download {INCEPTION_WEIGHTS_URL} and place it at {hub_checkpoints_dir() / INCEPTION_WEIGHTS_FILE} "
        f"($TORCH_HOME/hub/checkpoints/), or set evaluation.inception_score.weights_path to the file's path"
    )


def expected_inception_sha256() -> str:
    """The sha256 the Inception weights must have: ``INCEPTION_WEIGHTS_SHA256`` unless ``STUDY_INCEPTION_SHA256``
    names another (a re-exported file you trust)."""
    value = os.environ.get(INCEPTION_SHA256_ENV, "").strip().lower()
    if not value:
        return INCEPTION_WEIGHTS_SHA256
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError(f"{INCEPTION_SHA256_ENV} must be 64 hex digits (a sha256), got {value[:80]!r}")
    return value


def verify_inception_weights(path: str | Path) -> Path:
    """``path`` when its sha256 is the expected one; ``UnsafeFile`` naming it otherwise (nothing is unpickled)."""
    path = Path(path).resolve()
    actual, expected = sha256_of(path), expected_inception_sha256()
    if actual != expected:
        raise UnsafeFile(
            f"refused to load the Inception weights {path}: sha256 {actual} is not the expected {expected} "
            f"(torch-fidelity's {INCEPTION_WEIGHTS_FILE}); torch-fidelity would unpickle it with code execution "
            f"allowed. Replace it with {INCEPTION_WEIGHTS_URL}, or set {INCEPTION_SHA256_ENV} to its sha256 if "
            "you made and trust it"
        )
    return path


def find_inception_weights(weights_path: str | Path | None = None) -> Path | None:
    """The configured file, else torch hub's cached copy; None when neither exists (nothing is downloaded)."""
    if weights_path:
        path = Path(weights_path).expanduser()
        return path.resolve() if path.is_file() else None
    hub = hub_checkpoints_dir() / INCEPTION_WEIGHTS_FILE
    return hub if hub.is_file() else None


def resolve_inception_weights(weights_path: str | Path | None = None) -> Path:
    """Absolute path of the hash-checked Inception weights; ``WeightsUnavailable`` (never a download) when missing,
    ``UnsafeFile`` when the file is not the expected one."""
    found = find_inception_weights(weights_path)
    if found is None:
        raise WeightsUnavailable(inception_weights_missing_message(weights_path))
    return verify_inception_weights(found)


def fetch_inception_weights(weights_path: str | Path | None = None) -> Path:
    """Download the weights (to ``weights_path`` or torch hub's folder) unless ``STUDY_OFFLINE`` is set."""
    target = (
        Path(weights_path).expanduser().resolve() if weights_path else hub_checkpoints_dir() / INCEPTION_WEIGHTS_FILE
    )
    if offline():
        raise WeightsUnavailable(inception_weights_missing_message(weights_path) + " [STUDY_OFFLINE is set]")
    log.info("downloading %s to %s", INCEPTION_WEIGHTS_URL, target)
    try:
        with download_timeout():
            return atomic_write(target, lambda tmp: torch.hub.download_url_to_file(INCEPTION_WEIGHTS_URL, str(tmp),
                                                                                   progress=False))  # fmt: skip
    except Exception as e:  # URLError, socket errors: all mean "not available here"
        raise WeightsUnavailable(f"{inception_weights_missing_message(weights_path)} [download failed: {e}]") from e


def ensure_inception_weights(weights_path: str | Path | None = None, allow_download: bool = True) -> Path:
    """Resolve and hash-check the weights, downloading them once when allowed (the driver, before trials start)."""
    found = find_inception_weights(weights_path)
    if found is not None:
        return verify_inception_weights(found)
    if allow_download:
        return verify_inception_weights(fetch_inception_weights(weights_path))
    raise WeightsUnavailable(inception_weights_missing_message(weights_path))


def extractor_weights(extractor: str, weights_path: str | Path | None) -> str | None:
    """The weights file to hand torch-fidelity: for Inception always an existing, hash-checked local file (so it
    never downloads and never unpickles an unknown file)."""
    return extractor_decl(extractor).weights(weights_path)


# ----------------------------------------------------------------------------------------------- extractors


@dataclass(frozen=True)
class ExtractorDecl:
    """One IS/FID/KID feature extractor, declared once.

    ``name`` is torch-fidelity's registry name and the extractor segment of metric keys (study/contract/keys.py), so it
    never changes for an existing extractor. ``datasets``: the dataset kinds it can score (None: any).
    ``channels``: the input it expects (grey images are repeated to RGB for 3). ``prepare(spec, cache_dir)``: in
    the driver, the weights file trials get and facts to log on the parent run (trains or downloads when
    needed). ``weights(path)``: the file handed to torch-fidelity in a trial, checked. ``weight_problems(isc,
    fetch)``: what keeps its weights from loading here. ``fidelity_class``: registered with torch-fidelity in
    every process importing this module (its registry is per process); None for its built-in extractors.
    ``fast_on_cpu``: whether the driver's reference IS (real and noise images) is affordable without a GPU.
    """

    name: str
    datasets: frozenset[str] | None
    channels: int
    prepare_weights: Callable[[Any, Path], tuple[str | None, dict[str, float]]]
    weights: Callable[[str | Path | None], str | None]
    weight_problems: Callable[[Any, bool], list[str]]
    fidelity_class: type[FeatureExtractorBase] | None
    fast_on_cpu: bool

    def scores(self, dataset_kind: str) -> bool:
        return self.datasets is None or dataset_kind in self.datasets

    def dataset_problems(self, spec: Any) -> list[str]:
        kind = spec.dataset.kind
        if self.scores(kind):
            return []
        others = sorted(d.name for d in EXTRACTORS.values() if d.scores(kind))
        return [
            f"the {self.name} extractor only scores the {'/'.join(sorted(self.datasets or ()))} dataset, not "
            f"{kind}: set evaluation.inception_score.extractor: {' or '.join(others) or '(none scores it)'}"
        ]

    def problems(self, spec: Any, fetch: bool) -> list[str]:
        """What would stop this extractor scoring ``spec`` (a ``StudySpec``) here; ``fetch`` downloads weights."""
        return self.dataset_problems(spec) or self.weight_problems(spec.evaluation.inception_score, fetch)

    def prepare(self, spec: Any, cache_dir: Path) -> tuple[str | None, dict[str, float]]:
        """The weights path for trials and facts to log; ``ValueError`` for a dataset it cannot score."""
        problems = self.dataset_problems(spec)
        if problems:
            raise ValueError(problems[0])
        return self.prepare_weights(spec, cache_dir)


def _digits_weights(spec: Any, cache_dir: Path) -> tuple[str | None, dict[str, float]]:
    path, accuracy = shipped_digits_classifier(spec.dataset.resolution)
    return str(path), {keys.EXTRACTOR_ACCURACY: accuracy}


def _digits_problems(isc: Any, fetch: bool) -> list[str]:
    try:
        for resolution in SHIPPED_RESOLUTIONS:
            shipped_digits_classifier(resolution)
    except (OSError, KeyError, ValueError) as e:
        return [f"the shipped digits-cnn weights cannot be used: {e}"]
    return []


def _local_digits_weights(spec: Any, cache_dir: Path) -> tuple[str | None, dict[str, float]]:
    ds = spec.dataset
    path, accuracy = ensure_digits_classifier(cache_dir, ds.resolution, ds.held_out_fraction, ds.split_seed)
    return str(path), {keys.EXTRACTOR_ACCURACY: accuracy}


def _inception_weights(spec: Any, cache_dir: Path) -> tuple[str | None, dict[str, float]]:
    # an absolute, hash-checked file for the trials, so torch-fidelity never downloads inside a trial
    return str(ensure_inception_weights(spec.evaluation.inception_score.weights_path)), {}


def _inception_problems(isc: Any, fetch: bool) -> list[str]:
    try:
        if find_inception_weights(isc.weights_path) is not None or fetch:
            ensure_inception_weights(isc.weights_path, allow_download=True)
            return []
    except (WeightsUnavailable, UnsafeFile, ValueError) as e:
        return [str(e)]
    hint = "" if isc.weights_path else " (`study run` tries to download it first)"
    return [inception_weights_missing_message(isc.weights_path) + hint]


# digits-cnn: the weights shipped in trainables/weights/ (the same metric on every machine); digits-cnn-local: a
# classifier trained on this machine on the study's own split (cached per storage directory), a different metric
DIGITS_CNN = ExtractorDecl(
    "digits-cnn", frozenset({"digits"}), 1, _digits_weights,
    weights=lambda p: resolve_shipped(p) if p else None, weight_problems=_digits_problems,
    fidelity_class=DigitsFeatureExtractor, fast_on_cpu=True,
)  # fmt: skip
DIGITS_CNN_LOCAL = ExtractorDecl(
    "digits-cnn-local", frozenset({"digits"}), 1, _local_digits_weights,
    weights=lambda p: str(p) if p else None, weight_problems=lambda isc, fetch: [],  # trained on demand
    fidelity_class=DigitsFeatureExtractor, fast_on_cpu=True,
)  # fmt: skip
INCEPTION_V3 = ExtractorDecl(
    INCEPTION, None, 3, _inception_weights, weights=lambda p: str(resolve_inception_weights(p)),
    weight_problems=_inception_problems, fidelity_class=None, fast_on_cpu=False,
)  # fmt: skip
EXTRACTORS: dict[str, ExtractorDecl] = {d.name: d for d in (DIGITS_CNN, DIGITS_CNN_LOCAL, INCEPTION_V3)}
for _decl in EXTRACTORS.values():
    if _decl.fidelity_class is not None and _decl.name not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor(_decl.name, _decl.fidelity_class)


def extractor_decl(name: str) -> ExtractorDecl:
    """The declaration of extractor ``name``; a clear error for an undeclared one."""
    try:
        return EXTRACTORS[name]
    except KeyError:
        raise ValueError(f"feature extractor {name!r} has no declaration in trainables.metrics.EXTRACTORS") from None


# ------------------------------------------------------------------------------------------------- features


_EXTRACTOR: dict[tuple[str, tuple[str, ...], str | None, bool], FeatureExtractorBase] = {}


def _cuda() -> bool:
    return torch.cuda.is_available()


def feature_extractor(extractor: str, layers: tuple[str, ...], weights: str | None) -> FeatureExtractorBase:
    """torch-fidelity's extractor, built once per process for the last (name, layers, weights) asked for."""
    key = (extractor, layers, weights, _cuda())
    if key not in _EXTRACTOR:
        _EXTRACTOR.clear()  # one at a time: Inception holds 95 MB (and GPU memory)
        _EXTRACTOR[key] = create_feature_extractor(
            extractor, list(layers), cuda=_cuda(), feature_extractor_weights_path=weights, verbose=False
        )
    return _EXTRACTOR[key]


def metric_layer(extractor: str, metric: str) -> str:
    """The feature a metric uses with this extractor (torch-fidelity's default: IS logits_unbiased, FID 2048)."""
    return FEATURE_EXTRACTORS_REGISTRY[extractor].get_default_feature_layer_for_metric(metric)


def extract_features(
    images: Tensor, extractor: str, weights: str | None, layers: tuple[str, ...], batch_size: int = 250
) -> dict[str, Tensor]:
    """{layer: [N, D] float32} for uint8 images [N, C, H, W] (grey images are repeated to RGB for Inception)."""
    if images.dtype != torch.uint8:
        raise TypeError("feature extraction expects uint8 images; convert with to_uint8")
    if extractor_decl(extractor).channels == 3 and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    fe = feature_extractor(extractor, tuple(sorted(set(layers))), weights)
    return get_featuresdict_from_dataset(Uint8Pixels(images.cpu()), fe, batch_size, _cuda(), True, False)


# ---------------------------------------------------------------------------------------- reference features


@dataclass
class ReferenceFeatures:
    """Features of the training set at the FID/KID layer, with FID statistics computed on first use."""

    features: Tensor
    path: Path
    _stats: dict[str, np.ndarray] | None = None

    def fid_statistics(self) -> dict[str, np.ndarray]:
        if self._stats is None:
            self._stats = fid_features_to_statistics(self.features)
        return self._stats


_REFERENCES: dict[Path, ReferenceFeatures] = {}


def _file_tag(path: str | None) -> str:
    if not path:
        return "none"
    st = Path(path).stat()
    return hashlib.sha1(f"{Path(path).resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:10]


def reference_uint8(dataset: Dataset, max_samples: int | None = None) -> Tensor:
    """uint8 training images; a fixed random subset (seed 0) when ``max_samples`` is below the set's size."""
    n = len(dataset)
    if max_samples is not None and max_samples < n:
        idx = torch.randperm(n, generator=torch.Generator().manual_seed(0))[:max_samples].sort().values
    else:
        idx = torch.arange(n)
    images = getattr(dataset, "images", None)
    if isinstance(images, Tensor) and images.dtype == torch.uint8:
        return images[idx]  # the exact stored pixels, no float round trip
    return to_uint8(torch.stack([dataset[int(i)][0] for i in idx]))


@contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    # Trials sharing a reference wait for the first one to compute it instead of all computing it at once.
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def reference_features(
    dataset: Dataset,
    dataset_key: str,
    extractor: str,
    weights: str | None,
    cache_dir: Path,
    max_samples: int | None = None,
    batch_size: int = 250,
) -> ReferenceFeatures:
    """Training-set features for FID/KID, computed once per (dataset, resolution, extractor, weights) and cached.

    ``dataset_key`` (``ImageData.key``) names the dataset's source files and resolution; the weights file's
    path, size and mtime are part of the key too, so random test weights never pass for the real ones.
    """
    layer = metric_layer(extractor, "fid")
    n = len(dataset) if max_samples is None else min(max_samples, len(dataset))
    if not dataset_key:
        raise ValueError("reference features need a dataset key (ImageData.key) to cache them under")
    name = f"{dataset_key}-n{n}-{extractor}-w{_file_tag(weights)}-{layer}.pt"
    path = Path(cache_dir) / "reference" / name
    if path in _REFERENCES:
        return _REFERENCES[path]
    with _file_lock(path.with_suffix(".lock")):
        if path.is_file():
            features = load_tensors(path)
        else:
            log.info("computing %s reference features of %d training images (once; cached at %s)", extractor, n, path)
            images = reference_uint8(dataset, max_samples)
            features = extract_features(images, extractor, weights, (layer,), batch_size)[layer]
            atomic_torch_save(features, path)
    _REFERENCES[path] = ReferenceFeatures(features, path)
    return _REFERENCES[path]


_TRAINING_SETS: dict[tuple[str, str, str | None, str], TrainingSet] = {}


def training_set(
    train: Dataset,
    held_out: Dataset | None,
    dataset_key: str,
    extractor: str,
    weights: str | None,
    cache_dir: Path,
    batch_size: int = 250,
) -> TrainingSet:
    """Every training image (pixels and ``fid``-layer features) and the held-out set's, for nearest-neighbour
    scores; built once per process (features cached on disk by ``reference_features``, held-out ones under
    ``<dataset_key>-held-out``). Unlike the FID/KID reference, never a sample: a copy of any training image counts."""
    key = (dataset_key, extractor, weights, str(cache_dir))
    if key not in _TRAINING_SETS:
        feats = reference_features(train, dataset_key, extractor, weights, cache_dir, None, batch_size).features
        held_pixels = held_feats = None
        if held_out is not None and len(held_out) > 0:
            held_pixels = reference_uint8(held_out)
            held_feats = reference_features(held_out, f"{dataset_key}-held-out", extractor, weights, cache_dir,
                                            None, batch_size).features  # fmt: skip
        _TRAINING_SETS.clear()  # one at a time: a trial scores against one training set
        _TRAINING_SETS[key] = TrainingSet(reference_uint8(train), feats, held_pixels, held_feats)
    return _TRAINING_SETS[key]


# ------------------------------------------------------------------------------------------------- metrics


@dataclass(frozen=True)
class InceptionScore:
    mean: float
    std: float


@dataclass(frozen=True)
class ImageScores(HasScores):
    """The registered scores of one set of images (``{score: {stat: value}}``) and their per-image IS logits."""

    scores: dict[str, dict[str, float]]
    logits: Tensor  # [N, classes] float32: what every IS statistic is computed from
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # per-image arrays of scores (keys.score_array)
    images: dict[tuple[str, str], np.ndarray] = field(default_factory=dict)  # scores' images by (score, name)


def image_metrics(
    images: Tensor,
    extractor: str,
    weights_path: str | Path | None = None,
    names: tuple[str, ...] = ("is",),
    settings: ScoreSettings | None = None,
    batch_size: int = 250,
) -> ImageScores:
    """Scores ``names`` (trainables/scores.py; IS always) of uint8 images [N, C, H, W] from ONE feature pass.

    IS = exp(E_x KL(p(y|x) || p(y))), mean and std over ``settings.splits`` (torch-fidelity's isc, float64 softmax,
    shuffled with seed 2020 unless ``shuffle`` is off). FID/KID and precision/recall need ``settings.reference``,
    memorization ``settings.training`` (trainables/scores.py says what each score needs).
    """
    settings = settings or ScoreSettings(bootstrap=0, infinity_points=0)
    names = ("is", *[n for n in names if n != "is"])
    weights = extractor_weights(extractor, weights_path)
    layers = {feature: metric_layer(extractor, feature) for feature in {SCORES[n].feature for n in names} | {"isc"}}
    feats = extract_features(images, extractor, weights, tuple(layers.values()), batch_size)
    scores, arrays, shown = compute_scores(feats, layers, list(names), settings, images)
    return ImageScores(scores, feats[layers["isc"]], arrays, shown)


def inception_score(
    images: Tensor,
    extractor: str,
    weights_path: str | Path | None = None,
    splits: int = 10,
    shuffle: bool = True,
    batch_size: int = 250,
) -> InceptionScore:
    """IS of uint8 images [N, C, H, W] with ``extractor``: torch-fidelity's mean and split std."""
    m = image_metrics(images, extractor, weights_path, settings=ScoreSettings(splits, shuffle, 0, 0),
                      batch_size=batch_size)  # fmt: skip
    return InceptionScore(m.is_mean, m.is_std)


# ------------------------------------------------------------------------------------------------------ CLI


def main(argv: list[str] | None = None) -> int:
    """``python -m trainables.metrics``: IS of a dataset's real training images (the reference a curve aims at).

    With the real weights, ``--dataset cifar10 --splits 10 --no-shuffle`` gives the literature's 11.24 +- 0.10.
    """
    import argparse

    from pydantic import TypeAdapter

    from study.contract.spec.datasets import DatasetSpec
    from trainables.data import DATASETS, load_dataset

    parser = argparse.ArgumentParser(prog="python -m trainables.metrics", description=main.__doc__)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="cifar10")
    parser.add_argument("--root", help="dataset root (image_folder: required)")
    parser.add_argument("--resolution", type=int, help="dataset resolution (image_folder: required)")
    parser.add_argument("--data-dir", default="studies/.data", help="data directory (default: studies/.data)")
    parser.add_argument("--cache-dir", default="studies/.cache",
                        help="where a prepared image folder is cached (default: studies/.cache)")  # fmt: skip
    parser.add_argument("--extractor", choices=sorted(EXTRACTORS), default=INCEPTION)
    parser.add_argument("--weights", help="extractor weights file (default: torch hub's checkpoints folder)")
    parser.add_argument("--splits", type=int, default=10)
    parser.add_argument("--no-shuffle", action="store_true", help="the original IS code's split order")
    parser.add_argument("--num-samples", type=int, help="score only the first N training images")
    parser.add_argument("--batch-size", type=int, default=250)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    fields = {"root": args.root, "resolution": args.resolution}
    spec = TypeAdapter(DatasetSpec).validate_python(
        {"kind": args.dataset, **{k: v for k, v in fields.items() if v is not None}}
    )
    data = load_dataset(spec, args.data_dir, args.cache_dir)
    images = reference_uint8(data.train)[: args.num_samples]
    score = inception_score(images, args.extractor, args.weights, args.splits, not args.no_shuffle, args.batch_size)
    print(f"IS ({args.extractor}, {len(images)} {data.name} training images, {args.splits} splits, "
          f"shuffle={not args.no_shuffle}): {score.mean:.4f} +- {score.std:.4f}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
