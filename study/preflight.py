"""Pre-flight: what would stop a study's trials on this machine, found before any trial starts.

``python -m study validate`` calls ``preflight(..., fetch=False)``: it only looks (no download, no decoding)
and prints each problem as a warning; the spec itself is valid, so validate still exits 0 (the same spec may
be valid for a GPU box that has the files). ``study run`` calls ``preflight(..., fetch=True)`` in the driver,
before Ray starts: missing files are downloaded once when the spec allows it and ``STUDY_OFFLINE`` is unset,
image folders are decoded into their cache once (instead of by every trial at once), and any problem left
stops the run with exit code 2 and the exact instruction (which file to put where).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def default_dirs(storage: str | Path = "studies") -> tuple[Path, Path]:
    """(data dir, cache dir) as ``study run`` resolves them: ``STUDY_DATA_DIR`` / ``STUDY_CACHE_DIR`` or
    ``<storage>/.data`` / ``<storage>/.cache``."""
    storage = Path(storage)
    data_dir = Path(os.environ.get("STUDY_DATA_DIR", storage / ".data")).expanduser().resolve()
    cache_dir = Path(os.environ.get("STUDY_CACHE_DIR", storage / ".cache")).expanduser().resolve()
    return data_dir, cache_dir


def _dataset_problems(spec: Any, data_dir: Path, fetch: bool) -> list[str]:
    from trainables import data

    ds = spec.dataset
    if not fetch:
        problems = data.dataset_problems(ds, data_dir)
    else:
        problems = []
        try:
            if ds.kind == "cifar10":
                data.ensure_cifar10(ds, data_dir)
            elif ds.kind == "image_folder":
                data.prepare_image_folder(ds, data_dir)
        except (data.DatasetUnavailable, ValueError, OSError) as e:
            problems.append(str(e))
    if not problems and spec.class_conditional and ds.kind == "image_folder":
        try:
            _, _, classes = data.list_image_folder(ds, data.dataset_root(ds, data_dir, ""))
        except (data.DatasetUnavailable, ValueError):
            classes = []
        if not classes:
            problems.append(
                f"class_conditional needs labels, but the image folder {ds.root} has no class sub-folders "
                f"(or labels: none): train unconditionally or sort the images into one folder per class"
            )
    return problems


def _extractor_problems(spec: Any, fetch: bool) -> list[str]:
    from trainables import metrics

    isc = spec.evaluation.inception_score
    if isc.extractor == "digits-cnn" and spec.dataset.kind != "digits":
        return [
            f"the digits-cnn extractor only scores the digits dataset, not {spec.dataset.kind}: "
            "set evaluation.inception_score.extractor: inception-v3-compat"
        ]
    if isc.extractor == metrics.INCEPTION:
        if metrics.find_inception_weights(isc.weights_path) is not None:
            return []
        if not fetch:
            hint = "" if isc.weights_path else " (`study run` tries to download it first)"
            return [metrics.inception_weights_missing_message(isc.weights_path) + hint]
        try:
            metrics.ensure_inception_weights(isc.weights_path, allow_download=True)
        except metrics.WeightsUnavailable as e:
            return [str(e)]
    return []


def preflight(spec: Any, data_dir: str | Path, *, fetch: bool = False) -> list[str]:
    """Problems that would stop the trials of ``spec`` (a ``StudySpec``); empty when it can run here.

    ``fetch=True`` (the ``study run`` driver) downloads what is missing when allowed and prepares image-folder
    caches; ``fetch=False`` (``study validate``) only looks. The digits classifier is trained on demand and never
    a problem.
    """
    data_dir = Path(data_dir).expanduser().resolve()
    problems = _dataset_problems(spec, data_dir, fetch) + _extractor_problems(spec, fetch)
    for p in problems:
        log.debug("preflight: %s", p)
    return problems
