"""Convergence and compute tables of a study, and their markdown / HTML rendering."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from analysis.plateau import PlateauRule
from analysis.runs import StudyRuns

__all__ = [
    "CurveKey", "compute_plateaus", "convergence_table", "compute_table",
    "display_convergence", "display_compute", "to_markdown", "to_html",
]

CurveKey = tuple[str, str, str, int]  # (trial, evaluation, extractor, n_samples)
CURVE_KEYS = ["trial", "evaluation", "extractor", "n_samples"]


def compute_plateaus(study: StudyRuns, rule: PlateauRule | None = None) -> dict[CurveKey, Plateau]:
    """Plateau of every (trial, evaluation, extractor, n_samples) curve of ``study.scores``."""
    out: dict[CurveKey, Plateau] = {}
    for key, g in study.scores.groupby(CURVE_KEYS, sort=True):
        trial, evaluation, extractor, n = key
        out[(str(trial), str(evaluation), str(extractor), int(n))] = detect_plateau(
            g["epoch"].to_numpy(), g["is_mean"].to_numpy(), g["is_std"].to_numpy(), rule
        )
    return out


def _finite(g: pd.DataFrame) -> pd.DataFrame:
    return g[np.isfinite(g["is_mean"].to_numpy(dtype=float))]


def convergence_table(study: StudyRuns, plateaus: dict[CurveKey, Plateau]) -> pd.DataFrame:
    """One row per curve (and one per trial without any IS yet).

    ``converged`` is ``"yes"`` only when a plateau was found *and* the trial did not diverge; the
    plateau found before a divergence is still shown, with a note.
    """
    axes = study.axes
    rows = []
    trial_info = study.trials.set_index("trial")
    for key, g in study.scores.groupby(CURVE_KEYS, sort=True):
        trial, evaluation, extractor, n = str(key[0]), str(key[1]), str(key[2]), int(key[3])
        p = plateaus[(trial, evaluation, extractor, n)]
        fin = _finite(g)
        final = fin.iloc[-1] if len(fin) else None
        best = fin.loc[fin["is_mean"].idxmax()] if len(fin) else None
        status = str(trial_info.loc[trial, "status"])
        diverged = status == "diverged"
        note = p.reason
        if diverged:
            note = "trial diverged; " + (f"plateau before divergence at epoch {p.epoch}" if p.converged else p.reason)
        rows.append({
            "trial": trial, "status": status, **{a: trial_info.loc[trial, a] for a in axes},
            "evaluation": evaluation, "extractor": extractor, "n_samples": n,
            "plateau_epoch": p.epoch, "plateau_is_mean": p.is_mean, "plateau_is_std": p.is_std,
            "final_epoch": int(final["epoch"]) if final is not None else None,
            "final_is_mean": float(final["is_mean"]) if final is not None else math.nan,
            "final_is_std": float(final["is_std"]) if final is not None else math.nan,
            "best_epoch": int(best["epoch"]) if best is not None else None,
            "best_is_mean": float(best["is_mean"]) if best is not None else math.nan,
            "converged": "yes" if p.converged and not diverged else "no",
            "note": note,
        })
    with_scores = set(study.scores["trial"])
    for t in study.trials.itertuples(index=False):
        trial = str(t.trial)
        if trial in with_scores:
            continue
        info = trial_info.loc[trial]
        rows.append({
            "trial": trial, "status": str(info["status"]), **{a: info[a] for a in axes},
            "converged": "no", "note": "no IS evaluation logged yet",
        })
    cols = ["trial", "status", *axes, "evaluation", "extractor", "n_samples", "plateau_epoch",
            "plateau_is_mean", "plateau_is_std", "final_epoch", "final_is_mean", "final_is_std",
            "best_epoch", "best_is_mean", "converged", "note"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("n_samples", "plateau_epoch", "final_epoch", "best_epoch"):
        df[c] = df[c].astype("Int64")
    return df.sort_values(["trial", "evaluation", "extractor", "n_samples"], na_position="last",
                          kind="stable").reset_index(drop=True)


def compute_table(study: StudyRuns) -> pd.DataFrame:
    """One row per (trial, evaluation); trial-level training cost repeated on each row.

    ``train_seconds_total`` is the largest ``train/seconds``; ``seconds_per_epoch`` the mean of
    ``train/epoch_seconds`` or, without it, the total divided by the epoch at which it was logged.
    ``sampling_seconds_mean`` is the mean over evaluated epochs of ``sample/<evaluation>/seconds``
    (wall seconds to generate ``n_samples`` samples); ``nfe`` the last logged NFE per sample.
    """
    axes = study.axes
    rows = []
    for t in study.trials.to_dict("records"):
        trial = t["trial"]
        lo = study.losses[study.losses["trial"] == trial]
        sc = study.scores[study.scores["trial"] == trial]
        epochs = pd.concat([lo["epoch"], sc["epoch"]])
        timed = pd.concat([lo[["epoch", "train_seconds"]], sc[["epoch", "train_seconds"]]], ignore_index=True)
        timed = timed[np.isfinite(timed["train_seconds"].to_numpy(dtype=float))]
        epoch_secs = lo["epoch_seconds"].astype(float)
        epoch_secs = epoch_secs[np.isfinite(epoch_secs)]
        last_epoch = int(epochs.max()) if len(epochs) else None
        total, per_epoch = math.nan, math.nan
        if len(timed):
            at = timed.loc[timed["train_seconds"].astype(float).idxmax()]
            total = float(at["train_seconds"])
            per_epoch = total / int(at["epoch"]) if int(at["epoch"]) > 0 else math.nan
        if len(epoch_secs):
            per_epoch = float(epoch_secs.mean())
        base = {"trial": trial, "status": t["status"], **{a: t[a] for a in axes},
                "epochs_trained": last_epoch, "train_seconds_total": total, "seconds_per_epoch": per_epoch}
        if sc.empty:
            rows.append(base)
            continue
        for evaluation, g in sc.groupby("evaluation", sort=True):
            per_epoch_rows = g.drop_duplicates("epoch")
            s = per_epoch_rows["sampling_seconds"].astype(float)
            s = s[np.isfinite(s)]
            nfe = per_epoch_rows["nfe"].astype(float)
            nfe = nfe[np.isfinite(nfe)]
            rows.append({
                **base, "evaluation": evaluation,
                "n_samples": ", ".join(str(n) for n in sorted(g["n_samples"].unique())),
                "sampling_seconds_mean": float(s.mean()) if len(s) else math.nan,
                "nfe": float(nfe.iloc[-1]) if len(nfe) else math.nan,
                "n_evaluations": int(per_epoch_rows["epoch"].nunique()),
            })
    cols = ["trial", "status", *axes, "epochs_trained", "train_seconds_total", "seconds_per_epoch",
            "evaluation", "n_samples", "sampling_seconds_mean", "nfe", "n_evaluations"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("epochs_trained", "n_evaluations"):
        df[c] = df[c].astype("Int64")
    return df


def _num(x: object, fmt: str = "{:.2f}") -> str:
    if x is None or x is pd.NA:
        return ""
    try:
        v = float(x)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(x)
    return fmt.format(v) if math.isfinite(v) else ("" if math.isnan(v) else str(v))


def _pm(m: object, s: object) -> str:
    ms, ss = _num(m), _num(s)
    return f"{ms} ± {ss}" if ms and ss else ms


def display_convergence(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Human-readable version of :func:`convergence_table` (strings, mean ± std)."""
    return pd.DataFrame({
        "trial": df["trial"], "status": df["status"], **{a: df[a].fillna("") for a in axes},
        "evaluation": df["evaluation"].fillna(""), "IS extractor, n": [
            f"{x}, n={n}" if isinstance(x, str) else "" for x, n in zip(df["extractor"], df["n_samples"], strict=True)
        ],
        "plateau epoch": [_num(e, "{:.0f}") for e in df["plateau_epoch"]],
        "IS at plateau": [_pm(m, s) for m, s in zip(df["plateau_is_mean"], df["plateau_is_std"], strict=True)],
        "final IS (epoch)": [
            f"{_pm(m, s)} ({_num(e, '{:.0f}')})" if _num(m) else ""
            for m, s, e in zip(df["final_is_mean"], df["final_is_std"], df["final_epoch"], strict=True)
        ],
        "best IS": [_num(m) for m in df["best_is_mean"]],
        "converged": df["converged"], "note": df["note"].fillna(""),
    })


def display_compute(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Human-readable version of :func:`compute_table`."""
    return pd.DataFrame({
        "trial": df["trial"], "status": df["status"], **{a: df[a].fillna("") for a in axes},
        "epochs": [_num(e, "{:.0f}") for e in df["epochs_trained"]],
        "train s total": [_num(x, "{:.1f}") for x in df["train_seconds_total"]],
        "train s / epoch": [_num(x, "{:.2f}") for x in df["seconds_per_epoch"]],
        "evaluation": df["evaluation"].fillna(""), "n samples": df["n_samples"].fillna(""),
        "sampling s (mean)": [_num(x, "{:.2f}") for x in df["sampling_seconds_mean"]],
        "NFE": [_num(x, "{:.0f}") for x in df["nfe"]],
    })


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub-flavoured markdown table of a frame of strings (no tabulate dependency)."""
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def to_html(df: pd.DataFrame) -> str:
    """Plain HTML table of a frame of strings, escaped."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(x))}</td>" for x in row) + "</tr>\n"
        for row in df.itertuples(index=False)
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"
