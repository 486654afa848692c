"""The plateau rule (analysis/plateau.py) applied to a study read back from MLflow: one verdict per curve, and per
arm of seeds.

A curve is one (trial, evaluation, extractor, sample count). Where the trial kept its per-image logits, the curve
carries the paired bootstrap covariance (every epoch of a trial starts from the same noise) and the verdict is the
one the trial itself reached when it decided to stop; otherwise (runs logged before logits were kept, imported
numbers) it enters by its summary statistics: the logged bootstrap SE, or the split std converted to a standard
error (``split_std / sqrt(S - 1)``). Each trial is judged with its own rule parameters (``training.stop.plateau``).

Arms: trials that differ only in ``training.seed`` form an arm. The arm's curve is the mean over its seeds with a
95 % t-interval across seeds (seeds are independent: between-seed spread usually dominates, STATISTICS.md 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.plateau import Curve, PlateauRule, Verdict, assess
from analysis.runs import StudyRuns
from analysis.stats import split_std_to_se

CurveKey = tuple[str, str, str, int]  # (trial, evaluation, extractor, n_samples)
CURVE_KEYS = ["trial", "evaluation", "extractor", "n_samples"]
SEED_AXIS = "seed"
_RULE_FIELDS = ("warmup_epochs", "patience", "tail_fraction", "margin_se", "min_delta", "confidence")


def trial_rule(params: Mapping[str, str]) -> PlateauRule:
    """The plateau rule a trial was run with (``training.stop.plateau.*`` params), else the default."""
    found = {f: params.get(f"training.stop.plateau.{f}") for f in _RULE_FIELDS}
    if all(v is None for v in found.values()):
        return PlateauRule()
    kinds = {f: type(getattr(PlateauRule(), f)) for f in _RULE_FIELDS}
    return PlateauRule(**{f: kinds[f](float(v)) for f, v in found.items() if v is not None})


def _is_settings(params: Mapping[str, str]) -> tuple[int, bool, int, int]:
    """(splits, shuffle, bootstrap replicates, evaluation seed) from a trial's params (spec defaults otherwise)."""
    p = "evaluation.inception_score."
    splits = int(params.get(p + "splits", 10))
    shuffle = params.get(p + "shuffle", "True") == "True"
    boot = int(params.get(p + "bootstrap", 1000))
    return splits, shuffle, max(boot, 200), int(params.get("evaluation.seed", 0))


def curve_of(study: StudyRuns, key: CurveKey, rows: pd.DataFrame) -> Curve:
    """The curve of one (trial, evaluation, extractor, n): paired from logits when all its epochs kept them."""
    trial, evaluation, _, n = key
    splits, shuffle, boot, seed = _is_settings(study.params.get(trial, {}))
    rows = rows.sort_values("epoch")
    epochs = rows["epoch"].to_numpy(dtype=float)
    kept = study.logits.get((trial, evaluation), {})
    if len(epochs) and all(int(e) in kept and kept[int(e)].shape[0] == n for e in epochs):
        return Curve.from_logits(epochs, [kept[int(e)] for e in epochs], splits, shuffle, boot, seed)
    se = rows["is_se"].to_numpy(dtype=float)
    fallback = np.array([split_std_to_se(s, splits) for s in rows["is_std"].to_numpy(dtype=float)])
    return Curve.from_summary(epochs, rows["is_mean"].to_numpy(dtype=float), np.where(np.isfinite(se), se, fallback))


def verdicts(study: StudyRuns, draws: int = 200) -> tuple[dict[CurveKey, Verdict], dict[CurveKey, Curve]]:
    """The plateau rule's verdict (with the plateau epoch's interval) and the curve, for every IS curve."""
    out, curves = {}, {}
    for key, g in study.scores.groupby(CURVE_KEYS, sort=True):
        k: CurveKey = (str(key[0]), str(key[1]), str(key[2]), int(key[3]))
        curves[k] = curve_of(study, k, g)
        out[k] = assess(curves[k], trial_rule(study.params.get(k[0], {})), draws=draws)
    return out, curves


def verdict_of(found: dict[CurveKey, Verdict], trial: str, evaluation: str) -> Verdict | None:
    """The verdict of a (trial, evaluation) curve (any extractor and n; one per curve in practice)."""
    return next((v for k, v in found.items() if (k[0], k[1]) == (trial, evaluation)), None)


def plateau_range(v: Verdict | None, last_epoch: int) -> tuple[float, float]:
    """The plateau epoch's 95 % range; a curve without a plateau is censored: later than its last evaluation."""
    if v is None or v.epoch is None:
        return last_epoch + 0.5, math.inf
    lo = v.epoch_low if v.epoch_low is not None else v.epoch
    hi = v.epoch_high if v.epoch_high is not None else v.epoch
    return float(lo), float(hi)


# ---------------------------------------------------------------------------------------------------- arms


def arm_axes(study: StudyRuns) -> list[str]:
    """The axes that define an arm: every axis except the seed."""
    return [a for a in study.axes if a != SEED_AXIS]


def arms(study: StudyRuns) -> dict[str, list[str]]:
    """{arm label: trials}: trials that differ only in their seed. Without a seed axis every trial is its own arm."""
    if SEED_AXIS not in study.axes:
        return {str(t): [str(t)] for t in study.trials["trial"]}
    axes = arm_axes(study)
    out: dict[str, list[str]] = {}
    for row in study.trials.to_dict("records"):
        label = ", ".join(f"{a}={row[a]}" for a in axes) or "all"
        out.setdefault(label, []).append(str(row["trial"]))
    return out


@dataclass(frozen=True)
class ArmCurve:
    """Mean over seeds per epoch, with a 95 % t-interval across seeds (NaN with one seed)."""

    epochs: np.ndarray
    mean: np.ndarray
    low: np.ndarray
    high: np.ndarray
    seeds: np.ndarray  # seeds contributing at each epoch


def arm_curve(scores: pd.DataFrame, trials: list[str]) -> ArmCurve:
    """The arm's mean IS curve over its trials' seeds (``scores`` of one evaluation, extractor and n)."""
    g = scores[scores["trial"].isin(trials)].groupby("epoch")["is_mean"]
    mean, sd, k = g.mean(), g.std(ddof=1), g.count()
    half = np.array(
        [sps.t.ppf(0.975, n - 1) * s / math.sqrt(n) if n > 1 else math.nan for s, n in zip(sd, k, strict=True)]
    )
    m = mean.to_numpy()
    return ArmCurve(mean.index.to_numpy(dtype=float), m, m - half, m + half, k.to_numpy())


# ------------------------------------------------------------------------------------------ paired differences

_PAIRING_PARAMS = ("evaluation.seed", "evaluation.num_samples", "evaluation.batch_size", "dataset.resolution",
                   "dataset.kind", "evaluation.inception_score.extractor")  # fmt: skip


def paired(study: StudyRuns, trial_a: str, trial_b: str) -> bool:
    """Whether two trials' evaluations start from the same initial noise: same evaluation seed, sample count,
    batch size (the noise is drawn batch by batch from one generator) and image shape, scored alike."""
    pa, pb = study.params.get(trial_a, {}), study.params.get(trial_b, {})
    return all(pa.get(k) == pb.get(k) for k in _PAIRING_PARAMS)


@dataclass(frozen=True)
class Difference:
    """IS(b) - IS(a) at one epoch with its 95 % interval: paired bootstrap when the evaluations share their
    noise and both kept logits, else independent (sqrt of the summed variances)."""

    estimate: float
    low: float
    high: float
    paired: bool

    @property
    def resolved(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


def difference(
    study: StudyRuns, a: tuple[str, str], b: tuple[str, str], epoch: int, epoch_b: int | None = None
) -> Difference:
    """IS of (trial, evaluation) ``b`` minus ``a``, at ``epoch`` (and ``epoch_b`` for ``b`` when it differs).

    Paired (the same resampled images on both sides) when both kept their logits and share their initial noise:
    two samplers of one trial, two epochs of one trial, or two trials with the same evaluation seed, sample count
    and batch size. Otherwise independent: the interval is +-1.96 sqrt(SE_a^2 + SE_b^2).
    """
    from analysis.stats import bootstrap_is

    eb = epoch if epoch_b is None else epoch_b
    la, lb = study.logits.get(a, {}).get(epoch), study.logits.get(b, {}).get(eb)
    splits, shuffle, boot, seed = _is_settings(study.params.get(a[0], {}))
    if la is not None and lb is not None and la.shape[0] == lb.shape[0] and paired(study, a[0], b[0]):
        est, lo, hi = bootstrap_is([la, lb], splits, shuffle, boot, seed).diff_ci(0, 1)
        return Difference(est, lo, hi, True)
    ra, rb = _score_row(study, a, epoch), _score_row(study, b, eb)

    def se(r: pd.Series) -> float:
        return float(r["is_se"]) if math.isfinite(r["is_se"]) else split_std_to_se(float(r["is_std"]), splits)

    d, s = float(rb["is_mean"] - ra["is_mean"]), math.hypot(se(ra), se(rb))
    return Difference(d, d - 1.96 * s, d + 1.96 * s, False)


def _score_row(study: StudyRuns, curve: tuple[str, str], epoch: int) -> pd.Series:
    sc = study.scores
    rows = sc[(sc["trial"] == curve[0]) & (sc["evaluation"] == curve[1]) & (sc["epoch"] == epoch)]
    if rows.empty:
        raise KeyError(f"no IS of {curve[0]} / {curve[1]} at epoch {epoch}")
    return rows.iloc[0]
