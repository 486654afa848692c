"""Convergence and compute tables of a study, and their markdown / HTML rendering."""

from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd

from analysis.convergence import CURVE_KEYS, SEED_AXIS, CurveKey, arm_curve, arms, difference, verdict_of
from analysis.runs import StudyRuns
from study.statistics.onset import Onset
from study.statistics.plateau import Curve, Verdict

__all__ = [
    "convergence_table", "arm_table", "compute_table", "savings_table", "differences_table", "display_convergence",
    "display_arms", "display_compute", "display_savings", "display_differences", "to_markdown", "to_html",
    "window_table", "display_window",
]

def _finite(g: pd.DataFrame) -> pd.DataFrame:
    return g[np.isfinite(g["is_mean"].to_numpy(dtype=float))]


def _ci_at(curve: Curve | None, epoch: float) -> tuple[float, float]:
    if curve is None or curve.ci_low is None or curve.ci_high is None:
        return math.nan, math.nan
    hit = np.flatnonzero(curve.epochs == epoch)
    return (float(curve.ci_low[hit[0]]), float(curve.ci_high[hit[0]])) if hit.size else (math.nan, math.nan)


def convergence_table(
    study: StudyRuns, verdicts: dict[CurveKey, Verdict], curves: dict[CurveKey, Curve] | None = None
) -> pd.DataFrame:
    """One row per curve (and one per trial without any IS yet): the rule's state, the plateau epoch with its
    interval, and the IS (with its 95 % interval) at the plateau, at the end and at the best evaluation.

    ``stopped_changing`` is ``"yes"`` when the curve plateaued or peaked *and* the trial did not diverge; the plateau
    found before a divergence is still shown, with a note.
    """
    curves = curves or {}
    axes = study.axes
    rows = []
    trial_info = study.trials.set_index("trial")
    for key, g in study.scores.groupby(CURVE_KEYS, sort=True):
        k = (str(key[0]), str(key[1]), str(key[2]), int(key[3]))
        trial = k[0]
        v, curve = verdicts[k], curves.get(k)
        fin = _finite(g)
        final = fin.iloc[-1] if len(fin) else None
        best = fin.loc[fin["is_mean"].idxmax()] if len(fin) else None
        status = str(trial_info.loc[trial, "status"])
        diverged = status == "diverged"
        note = v.reason
        if diverged:
            note = "trial diverged; " + (f"plateau before divergence at epoch {v.epoch}" if v.stopped_changing
                                         else v.reason)  # fmt: skip
        plateau_lo, plateau_hi = _ci_at(curve, v.epoch) if v.epoch is not None else (math.nan, math.nan)
        final_lo, final_hi = (float(final["is_ci_low"]), float(final["is_ci_high"])) if final is not None \
            else (math.nan, math.nan)  # fmt: skip
        if final is not None and not math.isfinite(final_lo):
            final_lo, final_hi = _ci_at(curve, float(final["epoch"]))
        rows.append({
            "trial": trial, "status": status, **{a: trial_info.loc[trial, a] for a in axes},
            "evaluation": k[1], "extractor": k[2], "n_samples": k[3], "state": v.state,
            "plateau_epoch": v.epoch, "plateau_epoch_low": v.epoch_low, "plateau_epoch_high": v.epoch_high,
            "tail_change": v.change, "tail_change_low": v.change_low, "tail_change_high": v.change_high,
            "training_noise": v.noise, "margin": v.margin, "plateau_is": v.value, "plateau_is_low": plateau_lo,
            "plateau_is_high": plateau_hi,
            "final_epoch": int(final["epoch"]) if final is not None else None,
            "final_is_mean": float(final["is_mean"]) if final is not None else math.nan,
            "final_is_std": float(final["is_std"]) if final is not None else math.nan,
            "final_is_low": final_lo, "final_is_high": final_hi,
            "final_is_inf": float(final["is_inf"]) if final is not None else math.nan,
            "best_epoch": int(best["epoch"]) if best is not None else None,
            "best_is_mean": float(best["is_mean"]) if best is not None else math.nan,
            "paired": "yes" if v.paired else "no",
            "stopped_changing": "yes" if v.stopped_changing and not diverged else "no",
            "note": note,
        })  # fmt: skip
    with_scores = set(study.scores["trial"])
    for t in study.trials.itertuples(index=False):
        trial = str(t.trial)
        if trial in with_scores:
            continue
        info = trial_info.loc[trial]
        rows.append({
            "trial": trial, "status": str(info["status"]), **{a: info[a] for a in axes}, "state": "undetermined",
            "stopped_changing": "no", "note": "no IS evaluation logged yet",
        })  # fmt: skip
    df = pd.DataFrame(rows, columns=["trial", "status", *axes, *CONVERGENCE_COLUMNS])
    for c in ("n_samples", "plateau_epoch", "plateau_epoch_low", "plateau_epoch_high", "final_epoch", "best_epoch"):
        df[c] = df[c].astype("Int64")
    return df.sort_values(["trial", "evaluation", "extractor", "n_samples"], na_position="last",
                          kind="stable").reset_index(drop=True)


CONVERGENCE_COLUMNS = [
    "evaluation", "extractor", "n_samples", "state", "plateau_epoch", "plateau_epoch_low", "plateau_epoch_high",
    "tail_change", "tail_change_low", "tail_change_high", "training_noise", "margin", "plateau_is", "plateau_is_low",
    "plateau_is_high", "final_epoch", "final_is_mean", "final_is_std", "final_is_low", "final_is_high", "final_is_inf",
    "best_epoch", "best_is_mean", "paired",
    "stopped_changing", "note",
]


def arm_table(study: StudyRuns, verdicts: dict[CurveKey, Verdict]) -> pd.DataFrame:
    """One row per (arm, evaluation, extractor, n) when a seed axis groups trials: plateau epochs across seeds."""
    if SEED_AXIS not in study.axes:
        return pd.DataFrame()
    rows = []
    for label, trials in arms(study).items():
        for (evaluation, extractor, n), g in study.scores[study.scores["trial"].isin(trials)].groupby(
            ["evaluation", "extractor", "n_samples"], sort=True
        ):
            vs = [verdicts[(t, str(evaluation), str(extractor), int(n))] for t in trials
                  if (t, str(evaluation), str(extractor), int(n)) in verdicts]  # fmt: skip
            ep = [v.epoch for v in vs if v.stopped_changing and v.epoch is not None]
            curve = arm_curve(g, trials)
            rows.append({
                "arm": label, "evaluation": evaluation, "extractor": extractor, "n_samples": int(n),
                "seeds": len(trials), "converged_seeds": len(ep),
                "plateau_epoch_median": float(np.median(ep)) if ep else math.nan,
                "plateau_epoch_min": min(ep) if ep else None, "plateau_epoch_max": max(ep) if ep else None,
                "final_epoch": int(curve.epochs[-1]), "final_is_mean": float(curve.mean[-1]),
                "final_is_low": float(curve.low[-1]), "final_is_high": float(curve.high[-1]),
            })  # fmt: skip
    return pd.DataFrame(rows)


def compute_table(study: StudyRuns) -> pd.DataFrame:
    """One row per (trial, evaluation); trial-level training cost repeated on each row.

    ``train_seconds_total`` is the largest ``train/seconds``; ``seconds_per_epoch`` the mean of
    ``train/epoch_seconds`` or, without it, the total divided by the epoch at which it was logged.
    ``sampling_seconds_mean`` is the mean over evaluated epochs of ``sample/<evaluation>/seconds``
    (wall seconds to generate ``n_samples`` samples; ``lockstep`` trials generated all their evaluations together,
    ``performance.batch_evaluations``, and logged each one's share of the common wall time by network rows);
    ``nfe`` the last logged NFE per sample.
    """
    axes = study.axes
    rows = []
    for t in study.trials.to_dict("records"):
        trial = t["trial"]
        spec = study.specs.get(trial)
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
        base = {"trial": trial, "status": t["status"], **{a: t[a] for a in axes}, "device": t.get("device", ""),
                "starts": t.get("starts", 1),
                "lockstep": bool(getattr(getattr(spec, "performance", None), "batch_evaluations", False)),
                "epochs_trained": last_epoch, "train_seconds_total": total, "seconds_per_epoch": per_epoch,
                "train_minutes_per_90_epochs": per_epoch * 90 / 60}
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
                "sampling_minutes_per_10k": float(s.mean()) * 10_000 / max(int(g["n_samples"].max()), 1) / 60
                if len(s) else math.nan,
                "nfe": float(nfe.iloc[-1]) if len(nfe) else math.nan,
                "n_evaluations": int(per_epoch_rows["epoch"].nunique()),
            })
    cols = ["trial", "status", *axes, "device", "starts", "lockstep", "epochs_trained", "train_seconds_total",
            "seconds_per_epoch", "train_minutes_per_90_epochs", "evaluation", "n_samples", "sampling_seconds_mean",
            "sampling_minutes_per_10k", "nfe", "n_evaluations"]
    df = pd.DataFrame(rows, columns=cols)
    for c in ("epochs_trained", "n_evaluations"):
        df[c] = df[c].astype("Int64")
    return df


def differences_table(study: StudyRuns) -> pd.DataFrame:
    """IS differences at the last epoch both sides evaluated, with 95 % intervals (paired where the noise is shared):
    every pair of evaluations within a trial (samplers on the same checkpoint) and, per evaluation, every trial
    against the first trial. Intervals are per comparison (no family-wise correction)."""
    sc = study.scores[study.scores["extractor"].notna()]
    rows = []

    def add(kind: str, a: tuple[str, str], b: tuple[str, str]) -> None:
        ea = set(sc[(sc["trial"] == a[0]) & (sc["evaluation"] == a[1])]["epoch"])
        eb = set(sc[(sc["trial"] == b[0]) & (sc["evaluation"] == b[1])]["epoch"])
        if not ea & eb:
            return
        epoch = int(max(ea & eb))
        d = difference(study, a, b, epoch)
        rows.append({"comparison": kind, "a": f"{a[0]} / {a[1]}", "b": f"{b[0]} / {b[1]}", "epoch": epoch,
                     "difference": d.estimate, "low": d.low, "high": d.high, "paired": "yes" if d.paired else "no",
                     "resolved": "yes" if d.resolved else "no"})  # fmt: skip

    trials = [str(t) for t in study.trials["trial"]]
    for t in trials:
        evs = sorted(set(sc[sc["trial"] == t]["evaluation"]))
        for i, ea in enumerate(evs):
            for eb in evs[i + 1 :]:
                add("samplers, same checkpoint", (t, ea), (t, eb))
    for ev in sorted(set(sc["evaluation"])):
        having = [t for t in trials if ((sc["trial"] == t) & (sc["evaluation"] == ev)).any()]
        for t in having[1:]:
            add("trials, same evaluation", (having[0], ev), (t, ev))
    return pd.DataFrame(rows, columns=["comparison", "a", "b", "epoch", "difference", "low", "high", "paired",
                                       "resolved"])  # fmt: skip


def display_differences(df: pd.DataFrame) -> pd.DataFrame:
    return keyed(pd.DataFrame({
        "comparison": df["comparison"],
        "IS(b) - IS(a) [95% CI]": [f"{_num(d, '{:+.3f}')} {_ci(lo, hi)}"
                                   for d, lo, hi in zip(df["difference"], df["low"], df["high"], strict=True)],
        "resolved (CI excludes 0)": df["resolved"], "epoch": df["epoch"], "a": df["a"], "b": df["b"],
        "paired": df["paired"],
    }), 3, wrap=("a", "b"))  # fmt: skip


def savings_table(study: StudyRuns, compute: pd.DataFrame) -> pd.DataFrame:
    """Per trial: its epoch budget, where it stopped and why, and the compute early stopping saved (estimated from
    the measured rates: skipped epochs x seconds per epoch, skipped evaluations x their mean sampling seconds)."""
    rows = []
    for t in study.trials.to_dict("records"):
        trial, training = t["trial"], getattr(study.specs.get(t["trial"]), "training", None)
        budget: int | None = getattr(training, "epochs", None)
        every: int = getattr(training, "eval_every", None) or 1
        c = compute[compute["trial"] == trial]
        trained = c["epochs_trained"].dropna()
        trained = int(trained.iloc[0]) if len(trained) else None
        saved = budget - trained if budget is not None and trained is not None and t["status"] == "converged" else 0
        skipped = sum(1 for e in range((trained or 0) + 1, (budget or 0) + 1) if e % every == 0 or e == budget) \
            if saved else 0  # fmt: skip
        per_epoch = float(c["seconds_per_epoch"].iloc[0]) if len(c) else math.nan
        per_eval = float(c["sampling_seconds_mean"].sum()) if len(c) else math.nan
        train_saved, eval_saved = saved * per_epoch, skipped * per_eval
        rows.append({
            "trial": trial, "status": t["status"], "epoch_budget": budget, "epochs_trained": trained,
            "stopped_by": t.get("stop_rule") or "", "epochs_saved": saved, "evaluations_saved": skipped,
            "train_seconds_saved": train_saved if saved else 0.0,
            "sampling_seconds_saved": eval_saved if saved else 0.0,
            "reason": t.get("stop_reason") or "",
        })  # fmt: skip
    df = pd.DataFrame(rows, columns=["trial", "status", "epoch_budget", "epochs_trained", "stopped_by",
                                     "epochs_saved", "evaluations_saved", "train_seconds_saved",
                                     "sampling_seconds_saved", "reason"])  # fmt: skip
    for col in ("epoch_budget", "epochs_trained"):
        df[col] = df[col].astype("Int64")
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


def _ci(lo: object, hi: object) -> str:
    a, b = _num(lo), _num(hi)
    return f"[{a}, {b}]" if a and b else ""


def display_convergence(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Human-readable version of :func:`convergence_table` (values with their 95 % intervals)."""
    return keyed(pd.DataFrame({
        "trial": df["trial"], "evaluation": df["evaluation"].fillna(""), "state": df["state"].fillna(""),
        "plateau epoch [95% range]": [
            f"{_num(e, '{:.0f}')} [{_num(lo, '{:.0f}')}-{_num(hi, '{:.0f}')}]" if _num(lo) else _num(e, "{:.0f}")
            for e, lo, hi in zip(df["plateau_epoch"], df["plateau_epoch_low"], df["plateau_epoch_high"], strict=True)
        ],
        "margin δ (IS)": [_num(m, '{:.2f}') for m in df["margin"]],
        "tail change [CI] vs ±δ": [
            f"{_num(c, '{:+.2f}')} {_ci(lo, hi)}".strip() if _num(c) else ""
            for c, lo, hi in zip(df["tail_change"], df["tail_change_low"], df["tail_change_high"], strict=True)
        ],
        "training noise τ": [_num(x) for x in df["training_noise"]],
        "IS at plateau [95% CI]": [
            f"{_num(m)} {_ci(lo, hi)}".strip()
            for m, lo, hi in zip(df["plateau_is"], df["plateau_is_low"], df["plateau_is_high"], strict=True)
        ],
        "final IS [95% CI] (epoch)": [
            f"{_num(m)} {_ci(lo, hi)} ({_num(e, '{:.0f}')})".replace("  ", " ") if _num(m) else ""
            for m, lo, hi, e in zip(df["final_is_mean"], df["final_is_low"], df["final_is_high"], df["final_epoch"],
                                    strict=True)
        ],
        "split std": [_num(x) for x in df["final_is_std"]],
        "IS∞": [_num(x) for x in df["final_is_inf"]],
        "best IS (epoch)": [
            f"{_num(m)} ({_num(e, '{:.0f}')})" if _num(m) else "" for m, e in zip(df["best_is_mean"], df["best_epoch"],
                                                                                    strict=True)
        ],
        "status": df["status"], **{a: df[a].fillna("") for a in axes},
        "IS extractor, n": [
            f"{x}, n={n}" if isinstance(x, str) else "" for x, n in zip(df["extractor"], df["n_samples"], strict=True)
        ],
        "paired": df["paired"].fillna(""), "note": df["note"].fillna(""),
    }), 4, wrap=("note",))  # fmt: skip


WINDOW_COLUMNS = [
    "evaluation", "score", "extractor", "n_samples", "plateau_state", "plateau_epoch", "plateau_epoch_low",
    "plateau_epoch_high", "onset_state", "onset_epoch", "onset_epoch_low", "onset_epoch_high", "onset_detected",
    "rise", "rise_low", "rise_high", "held_out", "margin", "training_noise", "last_epoch", "note",
]  # fmt: skip


def window_table(study: StudyRuns, verdicts: dict[CurveKey, Verdict], onsets: dict[CurveKey, Onset],
                 score: dict[str, str] | None = None) -> pd.DataFrame:  # fmt: skip
    """The generalization window: one row per memorized-fraction curve (trial, evaluation), with the IS plateau
    epoch and its range (the plateau verdict already computed for that trial and evaluation) beside the
    memorization-onset epoch and its range, the rise over the held-out level and its interval. Empty when no
    trial logged a memorization score. ``score``: {trial: the memorization score its rule read}."""
    rows = []
    trial_info = study.trials.set_index("trial")
    for (trial, evaluation, extractor, n), o in sorted(onsets.items()):
        v = verdict_of(verdicts, trial, evaluation)
        epochs = study.metrics[(study.metrics["trial"] == trial) & (study.metrics["evaluation"] == evaluation)
                               & study.metrics["score"].astype(str).str.startswith("memorization_")]["epoch"]
        rows.append({
            "trial": trial, "status": str(trial_info.loc[trial, "status"]),
            **{a: trial_info.loc[trial, a] for a in study.axes}, "evaluation": evaluation,
            "score": (score or {}).get(trial, ""), "extractor": extractor, "n_samples": n,
            "plateau_state": v.state if v else "no IS", "plateau_epoch": v.epoch if v else None,
            "plateau_epoch_low": v.epoch_low if v else None, "plateau_epoch_high": v.epoch_high if v else None,
            "onset_state": o.state, "onset_epoch": o.epoch, "onset_epoch_low": o.epoch_low,
            "onset_epoch_high": o.epoch_high, "onset_detected": o.detected, "rise": o.rise, "rise_low": o.rise_low,
            "rise_high": o.rise_high, "held_out": o.baseline, "margin": o.margin, "training_noise": o.noise,
            "last_epoch": int(epochs.max()) if len(epochs) else None, "note": o.reason,
        })  # fmt: skip
    df = pd.DataFrame(rows, columns=["trial", "status", *study.axes, *WINDOW_COLUMNS])
    for c in ("n_samples", "plateau_epoch", "plateau_epoch_low", "plateau_epoch_high", "onset_epoch",
              "onset_epoch_low", "onset_epoch_high", "onset_detected", "last_epoch"):  # fmt: skip
        df[c] = df[c].astype("Int64")
    return df


def _epoch_range(e: object, lo: object, hi: object) -> str:
    return f"{_num(e, '{:.0f}')} [{_num(lo, '{:.0f}')}-{_num(hi, '{:.0f}')}]" if _num(lo) else _num(e, "{:.0f}")


def display_window(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Human-readable version of :func:`window_table`."""
    if df.empty:
        return df
    return keyed(pd.DataFrame({
        "trial": df["trial"], "evaluation": df["evaluation"],
        "IS plateau epoch [95% range]": [
            _epoch_range(e, lo, hi) if _num(e) else s
            for e, lo, hi, s in zip(df["plateau_epoch"], df["plateau_epoch_low"], df["plateau_epoch_high"],
                                    df["plateau_state"], strict=True)
        ],
        "memorization onset epoch [95% range]": [
            _epoch_range(e, lo, hi) if _num(e) else (f"{s} by epoch {_num(last, '{:.0f}')}" if _num(last) else s)
            for e, lo, hi, s, last in zip(df["onset_epoch"], df["onset_epoch_low"], df["onset_epoch_high"],
                                          df["onset_state"], df["last_epoch"], strict=True)
        ],
        "resolved at epoch": [_num(x, "{:.0f}") for x in df["onset_detected"]],
        "rise over held-out [95% CI] (last)": [
            f"{_num(r, '{:+.3f}')} [{_num(lo, '{:+.3f}')}, {_num(hi, '{:+.3f}')}]" if _num(lo) else _num(r, "{:+.3f}")
            for r, lo, hi in zip(df["rise"], df["rise_low"], df["rise_high"], strict=True)
        ],
        "held-out level": [_num(x, "{:.3f}") for x in df["held_out"]],
        "margin δ": [_num(x, "{:g}") for x in df["margin"]],
        "training noise τ": [_num(x, "{:.3f}") for x in df["training_noise"]],
        "memorization score": df["score"], **{a: df[a].fillna("") for a in axes},
        "note": df["note"].fillna(""),
    }), 4, wrap=("note",))  # fmt: skip


def display_arms(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`arm_table`."""
    if df.empty:
        return df
    return keyed(pd.DataFrame({
        "arm": df["arm"], "evaluation": df["evaluation"],
        "final IS, mean over seeds [95% t-CI] (epoch)": [
            f"{_num(m)} {_ci(lo, hi)} ({_num(e, '{:.0f}')})".replace("  ", " ")
            for m, lo, hi, e in zip(df["final_is_mean"], df["final_is_low"], df["final_is_high"], df["final_epoch"],
                                    strict=True)],
        "seeds plateaued or peaked": [f"{c}/{s}" for c, s in zip(df["converged_seeds"], df["seeds"], strict=True)],
        "plateau epoch, median [min-max]": [
            f"{_num(m, '{:.0f}')} [{_num(lo, '{:.0f}')}-{_num(hi, '{:.0f}')}]" if _num(m) else "none"
            for m, lo, hi in zip(df["plateau_epoch_median"], df["plateau_epoch_min"], df["plateau_epoch_max"],
                                 strict=True)],
        "IS extractor, n": [f"{x}, n={n}" for x, n in zip(df["extractor"], df["n_samples"], strict=True)],
    }), 3, wrap=("arm",))  # fmt: skip


def display_savings(df: pd.DataFrame) -> pd.DataFrame:
    return keyed(pd.DataFrame({
        "trial": df["trial"], "status": df["status"],
        "epochs (trained / budget)": [f"{_num(t, '{:.0f}')} / {_num(b, '{:.0f}')}"
                                      for t, b in zip(df["epochs_trained"], df["epoch_budget"], strict=True)],
        "stopped by": df["stopped_by"], "epochs saved": df["epochs_saved"],
        "evaluations saved": df["evaluations_saved"],
        "est. seconds saved (train + sampling)": [
            f"{_num(a + b, '{:.0f}')} ({_num(a, '{:.0f}')} + {_num(b, '{:.0f}')})" if e else "0"
            for a, b, e in zip(df["train_seconds_saved"], df["sampling_seconds_saved"], df["epochs_saved"],
                               strict=True)],
        "reason": df["reason"],
    }), 3, wrap=("reason",))  # fmt: skip


def display_compute(df: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Human-readable version of :func:`compute_table`."""
    return keyed(pd.DataFrame({
        "trial": df["trial"], "evaluation": df["evaluation"].fillna(""),
        "sampling s (mean)": [_num(x, "{:.2f}") + ("‡" if pd.notna(lock) and bool(lock) else "")
                              for x, lock in zip(df["sampling_seconds_mean"], df["lockstep"], strict=True)],
        "NFE": [_num(x, "{:.0f}") for x in df["nfe"]],
        "train s / epoch": [_num(x, "{:.2f}") for x in df["seconds_per_epoch"]],
        "epochs": [_num(e, "{:.0f}") for e in df["epochs_trained"]],
        "train s total": [_num(x, "{:.1f}") for x in df["train_seconds_total"]],
        "n samples": df["n_samples"].fillna(""),
        "train min / 90 epochs*": [_num(x, "{:.1f}") for x in df["train_minutes_per_90_epochs"]],
        "sampling min / 10k images*": [_num(x, "{:.1f}") for x in df["sampling_minutes_per_10k"]],
        "starts†": [_num(x, "{:.0f}") for x in df["starts"]],
        "status": df["status"], **{a: df[a].fillna("") for a in axes},
        "device": df["device"].fillna(""),
    }), 3)  # fmt: skip


def keyed(df: pd.DataFrame, key_columns: int, wrap: tuple[str, ...] = ()) -> pd.DataFrame:
    """Mark a display table's first ``key_columns`` columns as its key (what a reader needs on the first screen:
    placed first, never scrolled out of a 900 px window) and the columns of long text that may wrap."""
    df.attrs["key_columns"], df.attrs["wrap"] = key_columns, tuple(wrap)
    return df


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub-flavoured markdown table of a frame of strings (no tabulate dependency)."""
    def cell(x: object) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")

    head = "| " + " | ".join(cell(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(cell(x) for x in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def to_html(df: pd.DataFrame) -> str:
    """Plain HTML table of a frame of strings, escaped; the columns :func:`keyed` marked get class ``key`` (the
    first one stays in view when the table scrolls sideways) or ``wrap``."""
    key, wrap = df.attrs.get("key_columns", 1), set(df.attrs.get("wrap", ()))
    classes = [" ".join(["key"] * (i < key) + ["wrap"] * (str(c) in wrap)) for i, c in enumerate(df.columns)]
    attr = [f' class="{c}"' if c else "" for c in classes]
    head = "".join(f"<th{a}>{html.escape(str(c))}</th>" for a, c in zip(attr, df.columns, strict=True))
    body = "".join(
        "<tr>" + "".join(f"<td{a}>{html.escape(str(x))}</td>" for a, x in zip(attr, row, strict=True)) + "</tr>\n"
        for row in df.itertuples(index=False)
    )
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>\n"
