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
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def _dataset_problems(spec: Any, data_dir: Path, cache_dir: Path, fetch: bool) -> list[str]:
    from trainables import data

    ds = spec.dataset
    try:
        decl = data.dataset_decl(ds)
    except ValueError as e:
        return [str(e)]
    problems = []
    if fetch:
        try:
            decl.fetch(ds, data_dir, cache_dir)
        except (data.DatasetUnavailable, ValueError, OSError) as e:
            problems.append(str(e))
    problems = problems or decl.problems(ds, data_dir)  # a look after fetching: a declaration may fetch nothing
    if not problems:
        size = decl.footprint(ds)
        memory = size.memory_bytes(decl.shape(ds))
        log.info("dataset %s: %s images%s", ds.kind, size.images if size.images is not None else "listed",
                 f", {memory / 2**20:.0f} MiB in memory as uint8" if memory is not None else "")  # fmt: skip
    if not problems and spec.class_conditional:
        try:
            classes = decl.classes(ds, data_dir)
        except (data.DatasetUnavailable, ValueError):
            classes = 0
        if classes == 0:
            where = f" {ds.root}" if getattr(ds, "root", None) else ""
            problems.append(
                f"class_conditional needs labels, but the {ds.kind} dataset{where} has none (an image folder needs "
                "one sub-folder per class, and labels: auto): train unconditionally or label the images"
            )
    return problems


def _extractor_problems(spec: Any, fetch: bool) -> list[str]:
    from trainables import metrics

    isc = spec.evaluation.inception_score
    return metrics.extractor_decl(isc.extractor).problems(spec, fetch)


def preflight(spec: Any, data_dir: str | Path, cache_dir: str | Path, *, fetch: bool = False) -> list[str]:
    """Problems that would stop the trials of ``spec`` (a ``StudySpec``); empty when it can run here.

    ``fetch=True`` (the ``study run`` driver) downloads what is missing when allowed and prepares image-folder
    caches (under ``cache_dir``); ``fetch=False`` (``study validate``) only looks. The digits classifier is trained
    on demand and never a problem.
    """
    data_dir, cache_dir = Path(data_dir).expanduser().resolve(), Path(cache_dir).expanduser().resolve()
    problems = _dataset_problems(spec, data_dir, cache_dir, fetch) + _extractor_problems(spec, fetch)
    for p in problems:
        log.debug("preflight: %s", p)
    return problems
