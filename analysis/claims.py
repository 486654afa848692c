"""Checking a study's claims (study/contract/spec/claims.py) against its measurements.

Each claim selects curves for its sides ``a`` and ``b`` and pairs them: two curves pair when they agree on
everything neither side names (every other axis; the evaluation too unless a side names evaluations). Pairs that
differ only in their training seed form one comparison: the mean of the per-seed differences with a Student-t
interval across seeds (the training noise measured). A comparison from one seed carries the measurement and the
training noise estimated from both curves (analysis.convergence.difference), and says so.

A claim with k comparisons is judged at a family-wise 95 %: each interval is at 1 - 0.05 / k (Bonferroni). The
claim is *supported* when every comparison supports it, *contradicted* when any contradicts it, *unresolved*
otherwise (shared/STATISTICS.md section 4: "not significant" is not "no effect").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from analysis.convergence import (
    SEED_AXIS,
    CurveKey,
    Difference,
    difference,
    noise_of,
    onset_of,
    plateau_range,
    seed_mean,
    verdict_of,
)
from analysis.runs import StudyRuns
from analysis.tables import keyed
from study.statistics.onset import Onset
from study.statistics.plateau import Verdict

__all__ = ["ClaimCheck", "check_claims", "claims_table"]

Curve = tuple[str, str]  # (trial, evaluation)


@dataclass(frozen=True)
class ClaimCheck:
    text: str
    kind: str
    verdict: str  # supported | contradicted | unresolved | no data
    measurement: str
    source: str = ""


def _select(study: StudyRuns, side: object) -> list[Curve]:
    trials = study.trials.set_index("trial")
    wanted = side.evaluations()  # type: ignore[attr-defined]
    out = []
    for (t, e), _ in study.scores.groupby(["trial", "evaluation"], sort=True):
        if any(str(trials.loc[t, ax]) != str(label) if ax in trials.columns else True
               for ax, label in side.axes.items()):  # type: ignore[attr-defined]  # fmt: skip
            continue
        if wanted is not None and e not in wanted:
            continue
        out.append((str(t), str(e)))
    return out


def _pairs(study: StudyRuns, claim: object) -> list[tuple[Curve, Curve]]:
    a, b = claim.a, claim.b  # type: ignore[attr-defined]
    named = set(a.axes) | set(b.axes)
    with_eval = a.evaluation is None and b.evaluation is None
    trials = study.trials.set_index("trial")

    def key(c: Curve) -> tuple:
        return tuple(str(trials.loc[c[0], ax]) for ax in study.axes if ax not in named) + ((c[1],) if with_eval
                                                                                             else ())  # fmt: skip

    bs: dict[tuple, list[Curve]] = {}
    for c in _select(study, b):
        bs.setdefault(key(c), []).append(c)
    return [(ca, cb) for ca in _select(study, a) for cb in bs.get(key(ca), []) if ca != cb]


def _curve_epochs(study: StudyRuns, c: Curve) -> list[int]:
    sc = study.scores
    g = sc[(sc["trial"] == c[0]) & (sc["evaluation"] == c[1])]
    return sorted(int(e) for e in g["epoch"][g["is_mean"].notna()])


def _measure(
    study: StudyRuns, verdicts: dict, claim: object, ca: Curve, cb: Curve, level: float
) -> tuple[Difference | None, str]:  # fmt: skip
    """d = IS(a) - IS(b) of one pair of curves and where it was measured (None: not measurable)."""
    if claim.at == "plateau":  # type: ignore[attr-defined]
        va, vb = verdict_of(verdicts, *ca), verdict_of(verdicts, *cb)
        if va is None or va.epoch is None or vb is None or vb.epoch is None:
            return None, "no plateau on both sides"
        ea, eb = va.epoch, vb.epoch
        where = f"plateaus (epochs {ea}, {eb})"
    else:
        common = set(_curve_epochs(study, ca)) & set(_curve_epochs(study, cb))
        if not common:
            return None, "no common evaluated epoch"
        ea = eb = max(common)
        where = f"epoch {ea}"
    return difference(study, cb, ca, eb, ea, noise=noise_of(verdicts), level=level), where


def _compare(
    study: StudyRuns, verdicts: dict, claim: object, group: list[tuple[Curve, Curve]], level: float
) -> tuple[str, str]:  # fmt: skip
    """(verdict, measurement text) of one comparison (a pair of curves, or one pair per seed) for a difference
    claim: d = IS(a) - IS(b)."""
    ca, cb = group[0]
    measured = [_measure(study, verdicts, claim, a, b, level) for a, b in group]
    found = [d for d, _ in measured if d is not None]
    if not found:
        why = measured[0][1]
        return ("unresolved" if why.startswith("no plateau") else "no data"), f"{ca[1]}/{cb[1]}: {why}"
    if len(found) > 1:
        d, where = seed_mean(found, level), f"{measured[0][1]}, mean over {len(found)} seeds"
    else:
        d, where = found[0], measured[0][1] + (", one seed: training noise estimated from the curve, not measured"
                                               if ca[0] != cb[0] else ", one checkpoint")  # fmt: skip
    lo, hi, m = d.low, d.high, claim.margin  # type: ignore[attr-defined]
    kind = claim.kind  # type: ignore[attr-defined]
    if kind == "better":
        v = "supported" if lo > 0 else "contradicted" if hi < 0 else "unresolved"
    elif kind == "not_worse":
        v = "supported" if lo > -m else "contradicted" if hi < -m else "unresolved"
    else:  # equivalent
        v = "supported" if -m < lo and hi < m else "contradicted" if lo > m or hi < -m else "unresolved"
    label = _label(study, ca, cb)
    if len(found) > 1:  # a mean over seeds: name the arm, not the first seed's trial
        label = label.replace(f"{ca[0]}: ", f"{_arm_of(study, ca[0])}: ")
    return v, f"{label}: {d.estimate:+.2f} [{lo:+.2f}, {hi:+.2f}] at {where}{', paired' if d.paired else ''}"


def _label(study: StudyRuns, ca: Curve, cb: Curve) -> str:
    """``ddim-20`` (two trials, one evaluation) or ``<trial>: ddim-20 vs markovian-40`` (one trial)."""
    if ca[1] == cb[1]:
        return ca[1]
    return (f"{ca[0]}: " if ca[0] == cb[0] else "") + f"{ca[1]} vs {cb[1]}"


def _earlier(study: StudyRuns, verdicts: dict, ca: Curve, cb: Curve) -> tuple[str, str]:
    va, vb = verdict_of(verdicts, *ca), verdict_of(verdicts, *cb)
    last_a, last_b = _curve_epochs(study, ca)[-1], _curve_epochs(study, cb)[-1]

    def text(v: Verdict | None, last: int) -> str:
        if v is None or v.epoch is None:
            return f"none (> {last})"
        lo, hi = plateau_range(v, last)
        return f"{v.epoch} [{lo:.0f}-{hi:.0f}]"

    (lo_a, hi_a), (lo_b, hi_b) = plateau_range(va, last_a), plateau_range(vb, last_b)
    ta, tb = text(va, last_a), text(vb, last_b)
    v = "supported" if hi_a <= lo_b else "contradicted" if hi_b < lo_a else "unresolved"
    return v, f"{_label(study, ca, cb)}: plateau {ta} vs {tb}"


def onset_range(o: Onset | None, first: int, last: int) -> tuple[float, float]:
    """The onset epoch's 95 % range: its estimate's range; later than the last evaluation when the rule resolved
    the curve below the margin there (``no onset``); anywhere from the first evaluation on when undetermined (the
    fraction may already be rising: an unresolved onset is not a late one)."""
    if o is not None and o.state == "onset" and o.epoch is not None:
        lo = o.epoch_low if o.epoch_low is not None else o.epoch
        hi = o.epoch_high if o.epoch_high is not None else o.epoch
        return float(lo), float(hi)
    if o is not None and o.state == "no onset":
        return last + 0.5, math.inf
    return float(first), math.inf


def _later(study: StudyRuns, onsets: dict, ca: Curve, cb: Curve) -> tuple[str, str]:
    def text(o: Onset | None, last: int) -> str:
        if o is None:
            return "not measured"
        if o.state == "onset":
            lo, hi = onset_range(o, 0, last)
            return f"{o.epoch} [{lo:.0f}-{hi:.0f}]"
        return f"none (> {last})" if o.state == "no onset" else f"undetermined at {last}"

    (ea, eb) = (_curve_epochs(study, ca), _curve_epochs(study, cb))
    if not ea or not eb:
        return "no data", f"{_label(study, ca, cb)}: not evaluated"
    oa, ob = onset_of(onsets, *ca), onset_of(onsets, *cb)
    if oa is None or ob is None:
        return "no data", f"{_label(study, ca, cb)}: no memorization score logged"
    (lo_a, hi_a), (lo_b, hi_b) = onset_range(oa, ea[0], ea[-1]), onset_range(ob, eb[0], eb[-1])
    v = "supported" if lo_a > hi_b else "contradicted" if hi_a < lo_b else "unresolved"
    return v, f"{ca[0]} vs {cb[0]} / {ca[1]}: memorization onset {text(oa, ea[-1])} vs {text(ob, eb[-1])}"


def _below(study: StudyRuns, claim: object, c: Curve) -> tuple[str, str]:
    sc = study.scores
    g = sc[(sc["trial"] == c[0]) & (sc["evaluation"] == c[1])].dropna(subset=["is_mean"])
    hi = g["is_ci_high"].where(g["is_ci_high"].notna(), g["is_mean"]).max()
    lo = g["is_ci_low"].where(g["is_ci_low"].notna(), g["is_mean"]).max()
    value = claim.value  # type: ignore[attr-defined]
    v = "supported" if hi < value else "contradicted" if lo > value else "unresolved"
    return v, f"{c[0]} / {c[1]}: best IS {g['is_mean'].max():.2f} (upper 95% bound {hi:.2f}) vs {value:g}"


def check_claims(
    study: StudyRuns, verdicts: dict[CurveKey, Verdict], claims: list, onsets: dict[CurveKey, Onset] | None = None
) -> list[ClaimCheck]:
    """The verdict of every claim (see the module docstring); ``onsets``: the memorization-onset verdicts
    (``memorizes_later``)."""
    out = []
    for claim in claims:
        if claim.kind == "below":
            results = [_below(study, claim, c) for c in _select(study, claim.a)]
        else:
            pairs = _pairs(study, claim)
            if claim.kind == "converges_earlier":
                results = [_earlier(study, verdicts, ca, cb) for ca, cb in pairs]
            elif claim.kind == "memorizes_later":
                results = [_later(study, onsets or {}, ca, cb) for ca, cb in pairs]
            else:
                groups = _seed_groups(study, pairs)
                level = 1 - 0.05 / max(len(groups), 1)
                results = [_compare(study, verdicts, claim, g, level) for g in groups]
                if len(groups) > 1:
                    results.append(("no data", f"family-wise 95 % over {len(groups)} comparisons (Bonferroni: each "
                                               f"interval at {level:.2%})"))  # fmt: skip
        verdict = _combine([v for v, _ in results])
        out.append(ClaimCheck(claim.text, claim.kind, verdict, "; ".join(m for _, m in results) or "no matching "
                              "curves", claim.source))  # fmt: skip
    return out


def _arm_of(study: StudyRuns, trial: str) -> str:
    """The arm a trial belongs to: its axis labels without the seed."""
    row = study.trials.set_index("trial").loc[trial]
    return ", ".join(f"{a}={row[a]}" for a in study.axes if a != SEED_AXIS) or "all"


def _seed_groups(study: StudyRuns, pairs: list[tuple[Curve, Curve]]) -> list[list[tuple[Curve, Curve]]]:
    """Pairs that differ only in their training seed, grouped (in order of first appearance)."""
    if SEED_AXIS not in study.axes:
        return [[p] for p in pairs]
    trials = study.trials.set_index("trial")

    def key(c: Curve) -> tuple:
        return (*(str(trials.loc[c[0], ax]) for ax in study.axes if ax != SEED_AXIS), c[1])

    groups: dict[tuple, list[tuple[Curve, Curve]]] = {}
    for ca, cb in pairs:
        if str(trials.loc[ca[0], SEED_AXIS]) == str(trials.loc[cb[0], SEED_AXIS]):
            groups.setdefault((key(ca), key(cb)), []).append((ca, cb))
    return list(groups.values())


def _combine(verdicts: list[str]) -> str:
    found = [v for v in verdicts if v != "no data"]
    if not found:
        return "no data"
    if "contradicted" in found:
        return "contradicted"
    return "supported" if all(v == "supported" for v in found) else "unresolved"


def claims_table(checks: list[ClaimCheck]) -> pd.DataFrame:
    table = pd.DataFrame([{"claim": c.text, "verdict": c.verdict, "our measurement (95% CI)": c.measurement,
                           "source": c.source, "kind": c.kind} for c in checks],
                         columns=["claim", "verdict", "our measurement (95% CI)", "source", "kind"])  # fmt: skip
    return keyed(table, 3, wrap=("claim", "our measurement (95% CI)"))
