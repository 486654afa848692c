"""Several studies in one report (``python -m study compare``), when their scores are comparable.

IS depends on the extractor, the sample count N and the number of splits (shared/STATISTICS.md section 5): two
studies are compared on their IS curves only when they share an (extractor, N, splits) combination. Otherwise,
when every study logged IS-infinity (N-free, Chong & Forsyth 2020) with the same extractor, they are compared on
IS-infinity; with different extractors nothing is comparable and the comparison is refused with the reason.

The studies are merged into one study with a leading ``study`` axis (trials named ``<study>/<trial>``), so the
report's findings compare trials that differ only in their study (and in nothing else the axes name). Per-image
logits are kept in IS mode (studies with the same evaluation seed, N and batch size then pair); IS-infinity has no
per-image form, so that mode is unpaired.
"""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from analysis.convergence import bootstrap_of
from analysis.runs import StudyRuns

__all__ = ["IncomparableStudies", "comparison_mode", "merge_studies"]

STUDY_AXIS = "study"


class IncomparableStudies(ValueError):
    """The studies' scores cannot share a column; the message says why."""


def _signatures(study: StudyRuns) -> set[tuple[str, int, int]]:
    out = set()
    for row in study.scores[["trial", "extractor", "n_samples"]].drop_duplicates().itertuples(index=False):
        splits = bootstrap_of(study.specs.get(row.trial)).splits
        out.add((str(row.extractor), int(row.n_samples), splits))
    return out


def comparison_mode(studies: list[StudyRuns]) -> tuple[str, str]:
    """("is" | "is_inf", why): how the studies can be compared; ``IncomparableStudies`` when they cannot."""
    sigs = {s.study_name: _signatures(s) for s in studies}
    empty = [n for n, sg in sigs.items() if not sg]
    if empty:
        raise IncomparableStudies(f"no IS logged yet in {', '.join(empty)}")
    common = set.intersection(*sigs.values())
    if common:
        shared = ", ".join(f"{x} n={n} ({k} splits)" for x, n, k in sorted(common))
        return "is", f"every study has IS with {shared}"
    described = "; ".join(f"{n}: " + ", ".join(f"{x} n={m} ({k} splits)" for x, m, k in sorted(sg))
                          for n, sg in sigs.items())  # fmt: skip
    extractors = {x for sg in sigs.values() for x, _, _ in sg}
    if len(extractors) > 1:
        raise IncomparableStudies(
            f"the studies score IS with different extractors ({described}); IS from different extractors is not "
            "comparable, and neither is IS-infinity"
        )
    missing = [s.study_name for s in studies if not np.isfinite(s.scores["is_inf"].to_numpy(dtype=float)).any()]
    if missing:
        raise IncomparableStudies(
            f"the studies' IS differ in sample count or splits ({described}) and {', '.join(missing)} logged no "
            "IS-infinity to compare on instead"
        )
    return "is_inf", f"sample counts or splits differ ({described}): compared on IS-infinity, which is N-free"


def merge_studies(studies: list[StudyRuns], mode: str) -> StudyRuns:
    """One study with a leading ``study`` axis; in ``is_inf`` mode the IS columns hold IS-infinity (unpaired)."""
    names = [s.study_name for s in studies]
    if len(set(names)) != len(names):
        raise IncomparableStudies(f"a study is named twice: {names}")
    axes = [STUDY_AXIS] + list(dict.fromkeys(a for s in studies for a in s.axes if a != STUDY_AXIS))

    def frame(s: StudyRuns, df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        df["trial"] = s.study_name + "/" + df["trial"].astype(str)
        df.insert(1, STUDY_AXIS, s.study_name)
        return df

    scores = pd.concat([frame(s, s.scores) for s in studies], ignore_index=True)
    if mode == "is_inf":
        scores["is_mean"] = scores["is_inf"]
        for col in ("is_std", "is_se", "is_ci_low", "is_ci_high"):
            scores[col] = math.nan
        scores["extractor"] = scores["extractor"].astype(str) + " IS-infinity"
        scores["n_samples"] = 0
    trials = pd.concat([frame(s, s.trials) for s in studies], ignore_index=True)
    specs = {f"{s.study_name}/{t}": p for s in studies for t, p in s.specs.items()}
    logits = {} if mode == "is_inf" else {
        (f"{s.study_name}/{t}", e): v for s in studies for (t, e), v in s.logits.items()
    }  # fmt: skip
    first = studies[0]
    return replace(
        first, study_name=" vs ".join(names), experiment_id=", ".join(s.experiment_id for s in studies),
        parent_run_id=None, axes=axes, scores=scores,
        losses=pd.concat([frame(s, s.losses) for s in studies], ignore_index=True), trials=trials,
        description=f"Comparison of {', '.join(names)} ({mode.replace('_', '-').upper()} mode).",
        metrics=pd.concat([frame(s, s.metrics) for s in studies], ignore_index=True), specs=specs,
        references=first.references if mode == "is" else {}, sample_size_runs=[], logits=logits,
    )  # fmt: skip


def load_studies(targets: list[tuple[str, str]]) -> list[StudyRuns]:
    """[(tracking URI, study name)] read back from MLflow."""
    from analysis.runs import load_study

    return [load_study(uri, name) for uri, name in targets]


def output_dir(storage: Path, names: list[str]) -> Path:
    return storage / ("compare_" + "__".join(names))
