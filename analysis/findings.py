"""Findings: every comparison a study's axes allow, stated in one sentence with its numbers.

Two families (shared/STATISTICS.md section 4):

* **Trials that differ in exactly one axis** (a schedule, VP vs VE, conditional vs unconditional, a learning
  rate...) under the same evaluation: the IS difference at the last epoch both evaluated, with its 95 % interval
  (paired when the trials share their evaluation noise), and their plateau epochs with their ranges. With a seed
  axis, trials are compared seed by seed and the arm's difference is the mean over seeds with a t-interval across
  seeds (independent training runs; the paired bootstrap would ignore the between-seed spread).
* **Evaluations of one trial** (sampler vs sampler, guided vs unguided vs misguided): the same checkpoint and the
  same initial noise, so every difference is paired.

A difference is *resolved* when its interval excludes 0; a plateau comparison when the two plateau-epoch ranges do
not overlap (a curve that never plateaued is censored at its last evaluation, not equal to it). Intervals are per
comparison: with many comparisons some resolve by chance (about 1 in 20 of the null ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analysis.convergence import (
    SEED_AXIS,
    CurveKey,
    Difference,
    difference,
    noise_of,
    plateau_range,
    seed_mean,
    verdict_of,
)  # fmt: skip
from analysis.runs import StudyRuns
from analysis.tables import keyed
from study.statistics.plateau import Verdict

__all__ = ["Finding", "findings", "findings_table", "ranking_table", "window_findings"]


@dataclass(frozen=True)
class Finding:
    """One comparison: ``b`` against ``a`` (IS(b) - IS(a)) under one evaluation."""

    family: str  # "axis <name>" or "evaluations"
    evaluation: str
    a: str
    b: str
    epoch: int
    diff: Difference
    pairs: int  # trial pairs behind it (seeds)
    plateau: str  # the convergence comparison, in words
    sentence: str


def _curves(study: StudyRuns) -> dict[tuple[str, str], pd.DataFrame]:
    return {(str(t), str(e)): g for (t, e), g in study.scores.groupby(["trial", "evaluation"], sort=True)}


def _last_common_epoch(curves: dict, a: tuple[str, str], b: tuple[str, str]) -> int | None:
    common = set(curves[a]["epoch"]) & set(curves[b]["epoch"])
    return int(max(common)) if common else None


def _plateau_words(va: Verdict | None, vb: Verdict | None, la: str, lb: str, last_a: int, last_b: int) -> str:
    def one(v: Verdict | None, label: str, last: int) -> str:
        if v is None or v.epoch is None:
            return f"{label} has not plateaued (censored at epoch {last})"
        rng = f" [{v.epoch_low}-{v.epoch_high}]" if v.epoch_low is not None else ""
        return f"{label} plateaued at epoch {v.epoch}{rng}"

    text = f"{one(va, la, last_a)}, {one(vb, lb, last_b)}"
    lo_a, hi_a = plateau_range(va, last_a)
    lo_b, hi_b = plateau_range(vb, last_b)
    if hi_a < lo_b:
        return text + f": {la} plateaus earlier (the ranges do not overlap)"
    if hi_b < lo_a:
        return text + f": {lb} plateaus earlier (the ranges do not overlap)"
    return text + ": the plateau-epoch ranges overlap"


def _sentence(family: str, evaluation: str, la: str, lb: str, epoch: int, d: Difference, pairs: int) -> str:
    how = (f"across {pairs} seeds" if pairs > 1 else "paired" if d.paired else "unpaired")
    if pairs == 1 and family != "evaluations":
        how += ", one seed: training noise estimated from the curve, not measured"
    if d.resolved:
        lead = f"{lb} beats {la}" if d.estimate > 0 else f"{la} beats {lb}"
        verdict = "resolved"
    else:
        lead, verdict = f"{lb} vs {la}: no resolved difference", "not resolved"
    return (f"{lead} under {evaluation} at epoch {epoch}: IS({lb}) - IS({la}) = {d.estimate:+.2f} "
            f"[{d.low:+.2f}, {d.high:+.2f}] ({how}, {verdict}).")  # fmt: skip


def _axis_findings(
    study: StudyRuns, curves: dict, verdicts: dict[CurveKey, Verdict], noise: dict[tuple[str, str], float]
) -> list[Finding]:  # fmt: skip
    out = []
    trials = study.trials.set_index("trial")
    axes = [a for a in study.axes if a != SEED_AXIS]
    for axis in axes:
        others = [a for a in study.axes if a != axis]
        labels = list(dict.fromkeys(trials[axis].astype(str)))
        for i, la in enumerate(labels):
            for lb in labels[i + 1 :]:
                out += _compare_labels(study, curves, verdicts, noise, trials, axis, others, la, lb)
    return out


def _compare_labels(
    study: StudyRuns, curves: dict, verdicts: dict, noise: dict[tuple[str, str], float], trials: pd.DataFrame,
    axis: str, others: list[str], la: str, lb: str,
) -> list[Finding]:  # fmt: skip
    """Every evaluation and every setting of the other axes: trials labelled ``la`` vs ``lb`` on ``axis`` and equal
    on every other axis; pairs that differ only in their seed are one comparison (mean over seeds)."""
    ta = trials[trials[axis].astype(str) == la]
    tb = trials[trials[axis].astype(str) == lb]
    pairs = [(a, b) for a in ta.index for b in tb.index if all(ta.loc[a, o] == tb.loc[b, o] for o in others)]
    context = [o for o in others if o != SEED_AXIS]
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for a, b in pairs:
        groups.setdefault(tuple(str(ta.loc[a, o]) for o in context), []).append((a, b))
    out = []
    evaluations = sorted({e for t, e in curves if t in {p for pair in pairs for p in pair}})
    for ev in evaluations:
        for setting, group in groups.items():
            found = [((a, ev), (b, ev)) for a, b in group if (a, ev) in curves and (b, ev) in curves]
            found = [(x, y, _last_common_epoch(curves, x, y)) for x, y in found]
            found = [(x, y, e) for x, y, e in found if e is not None]
            if not found:
                continue
            diffs = [difference(study, x, y, e, noise=noise) for x, y, e in found]
            d = diffs[0] if len(diffs) == 1 else seed_mean(diffs)
            x, y, e = found[0]
            plateau = "; ".join(
                (f"seed pair {i + 1}: " if len(found) > 1 else "")
                + _plateau_words(verdict_of(verdicts, *xx), verdict_of(verdicts, *yy), la, lb,
                                 int(curves[xx]["epoch"].max()), int(curves[yy]["epoch"].max()))
                for i, (xx, yy, _) in enumerate(found)
            )  # every seed's plateau epochs, not the first seed's alone
            where = ev + "".join(f", {o}={v}" for o, v in zip(context, setting, strict=True))
            family = f"axis {axis}"
            out.append(Finding(family, where, la, lb, e, d, len(diffs), plateau,
                               _sentence(family, where, la, lb, e, d, len(diffs))))  # fmt: skip
    return out


def _evaluation_findings(study: StudyRuns, curves: dict, verdicts: dict[CurveKey, Verdict]) -> list[Finding]:
    out = []
    for t in study.trials["trial"]:
        evs = sorted(e for tt, e in curves if tt == t)
        for i, ea in enumerate(evs):
            for eb in evs[i + 1 :]:
                a, b = (str(t), ea), (str(t), eb)
                e = _last_common_epoch(curves, a, b)
                if e is None:
                    continue
                d = difference(study, a, b, e)  # one checkpoint: its training noise is shared
                plateau = _plateau_words(verdict_of(verdicts, *a), verdict_of(verdicts, *b), ea, eb,
                                         int(curves[a]["epoch"].max()), int(curves[b]["epoch"].max()))  # fmt: skip
                sentence = _sentence("evaluations", f"trial {t}", ea, eb, e, d, 1)
                out.append(Finding("evaluations", str(t), ea, eb, e, d, 1, plateau, sentence))
    return out


def findings(study: StudyRuns, verdicts: dict[CurveKey, Verdict]) -> list[Finding]:
    """Every comparison of trials differing in one axis, and of evaluations within each trial."""
    curves = _curves(study)
    return _axis_findings(study, curves, verdicts, noise_of(verdicts)) + _evaluation_findings(study, curves, verdicts)


def findings_table(found: list[Finding]) -> pd.DataFrame:
    return pd.DataFrame([{
        "family": f.family, "under": f.evaluation, "a": f.a, "b": f.b, "epoch": f.epoch,
        "difference": f.diff.estimate, "low": f.diff.low, "high": f.diff.high, "paired": f.diff.paired,
        "resolved": f.diff.resolved, "pairs": f.pairs, "plateau": f.plateau, "sentence": f.sentence,
    } for f in found], columns=["family", "under", "a", "b", "epoch", "difference", "low", "high", "paired",
                                "resolved", "pairs", "plateau", "sentence"])  # fmt: skip


def ranking_table(conv: pd.DataFrame, axes: list[str]) -> pd.DataFrame:
    """Per evaluation, trials ranked by their final IS (with interval), with their state and plateau epoch."""
    rows = []
    data = conv[conv["final_is_mean"].notna()]
    for ev, g in data.groupby("evaluation", sort=True):
        g = g.sort_values("final_is_mean", ascending=False)
        for rank, r in enumerate(g.itertuples(index=False), 1):
            rows.append({"evaluation": ev, "rank": rank, "trial": r.trial,
                         "final IS [95% CI] (epoch)": f"{r.final_is_mean:.2f} [{r.final_is_low:.2f}, "
                                                      f"{r.final_is_high:.2f}] ({r.final_epoch})",
                         "state": r.state,
                         "plateau epoch": "" if pd.isna(r.plateau_epoch) else int(r.plateau_epoch),
                         **{a: getattr(r, a, "") for a in axes if a.isidentifier()}})  # fmt: skip
    return keyed(pd.DataFrame(rows), 4)


def window_findings(window: pd.DataFrame) -> list[str]:
    """The generalization window of each trial and evaluation (``tables.window_table``) in one sentence: the IS
    plateau epoch and the memorization-onset epoch with their 95 % ranges. A curve without a plateau or an onset is
    censored at its last evaluation, not given the budget's end."""

    def rng(e: object, lo: object, hi: object) -> str:
        return f"epoch {int(e)} [{int(lo)}-{int(hi)}]" if not pd.isna(lo) else f"epoch {int(e)}"  # type: ignore[arg-type]

    out = []
    for r in window.itertuples(index=False):
        last = "" if pd.isna(r.last_epoch) else f" by epoch {int(r.last_epoch)}"
        plateau = (f"IS plateau at {rng(r.plateau_epoch, r.plateau_epoch_low, r.plateau_epoch_high)}"
                   if not pd.isna(r.plateau_epoch) else f"IS {r.plateau_state}{last} (no plateau)")  # fmt: skip
        rise = f"rise {r.rise:+.3f} [{r.rise_low:+.3f}, {r.rise_high:+.3f}] over the held-out level {r.held_out:.3f}"
        if r.onset_state == "onset":
            onset = f"memorization onset at {rng(r.onset_epoch, r.onset_epoch_low, r.onset_epoch_high)}"
        elif r.onset_state == "no onset":
            onset = f"no memorization onset{last}, resolved below delta = {r.margin:g}"
        else:
            onset = f"memorization onset undetermined{last}"
        window = ""
        if not pd.isna(r.plateau_epoch) and not pd.isna(r.onset_epoch):
            window = f"; window {int(r.onset_epoch) - int(r.plateau_epoch)} epochs"
        elif not pd.isna(r.plateau_epoch) and r.onset_state == "no onset":
            window = f"; window open from the plateau to at least epoch {int(r.last_epoch)}" if last else ""
        out.append(f"{r.trial} under {r.evaluation}: {plateau}; {onset} ({rise}){window}.")
    return out
