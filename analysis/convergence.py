"""The plateau rule (study/statistics/plateau.py) applied to a study read back from MLflow: one verdict per curve,
and per arm of seeds.

A curve is one (trial, evaluation, extractor, sample count). Where the trial kept its per-image logits, the curve
carries the paired bootstrap covariance (every epoch of a trial starts from the same noise) and the verdict is the
one the trial itself reached when it decided to stop; otherwise (runs logged before logits were kept, imported
numbers) it enters by its summary statistics: the logged bootstrap SE, or the split std converted to a standard
error (``split_std / sqrt(S - 1)``). Each trial is judged with its own rule parameters (``evaluation.plateau`` of
its logged spec).

Arms: trials that differ only in ``training.seed`` form an arm. The arm's curve is the mean over its seeds with a
95 % t-interval across seeds (seeds are independent: between-seed spread usually dominates, STATISTICS.md 2).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as sps

from analysis.runs import StudyRuns
from study.contract.spec.study import EvaluationSpec, OnsetSpec, StudySpec
from study.statistics.onset import FractionCurve, Onset, OnsetRule, assess_onset
from study.statistics.plateau import Curve, PlateauRule, Verdict, assess, two_sided
from study.statistics.stats import BootstrapSettings, PairedBootstrap, split_std_to_se

CurveKey = tuple[str, str, str, int]  # (trial, evaluation, extractor, n_samples)
CURVE_KEYS = ["trial", "evaluation", "extractor", "n_samples"]
SEED_AXIS = "seed"


def _section(spec: StudySpec | None, name: str) -> Any:
    """A section of a trial's typed spec (``StudyRuns.specs``); None where the trial logged none (a required section
    that did not validate is absent from a spec read field by field: ``analysis.runs.logged_spec``)."""
    return getattr(spec, name, None)


def trial_rule(spec: StudySpec | None) -> PlateauRule:
    """The plateau rule a trial was run with: its ``evaluation.plateau`` (the margin resolved when the spec was
    read), else its extractor's default margin (runs logged before the margin was stated), else the default
    rule (no margin and no extractor logged)."""
    evaluation = _section(spec, "evaluation")
    if evaluation is None:
        return PlateauRule()
    plateau, isc = evaluation.plateau, evaluation.inception_score
    if plateau.margin is None:
        if "extractor" not in isc.model_fields_set:
            return PlateauRule()
        plateau = plateau.model_copy(update={"margin": isc.default_margin})
    return PlateauRule.of(plateau)


def bootstrap_of(spec: StudySpec | None) -> BootstrapSettings:
    """The trial's bootstrap settings, as its stopper used them (``BootstrapSettings.of``)."""
    evaluation = _section(spec, "evaluation")
    # no evaluation logged: the spec's defaults (no sampler: none is read)
    return BootstrapSettings.of(evaluation if evaluation is not None else EvaluationSpec.model_construct())


def budget_of(spec: StudySpec | None, last_epoch: float) -> float:
    """The trial's training budget in epochs (the stopper's horizon); the last evaluated epoch when unknown."""
    epochs = getattr(_section(spec, "training"), "epochs", None)
    return float(last_epoch if epochs is None else epochs)


def curve_of(study: StudyRuns, key: CurveKey, rows: pd.DataFrame) -> Curve:
    """The curve of one (trial, evaluation, extractor, n): paired from logits when all its epochs kept them, with
    the bootstrap draws the trial's stopper made (one evaluation at a time, the same seed)."""
    trial, evaluation, _, n = key
    spec = study.specs.get(trial)
    settings = bootstrap_of(spec)
    rows = rows.sort_values("epoch")
    epochs = rows["epoch"].to_numpy(dtype=float)
    budget = budget_of(spec, float(epochs[-1]) if len(epochs) else 0.0)
    kept = study.logits.get((trial, evaluation), {})
    if len(epochs) and all(int(e) in kept and kept[int(e)].shape[0] == n for e in epochs):
        boot = PairedBootstrap.stack([settings.bootstrap([kept[int(e)]]) for e in epochs])
        return Curve.from_bootstrap(epochs, boot, budget)
    se = rows["is_se"].to_numpy(dtype=float)
    fallback = np.array([split_std_to_se(s, settings.splits) for s in rows["is_std"].to_numpy(dtype=float)])
    df = None if np.all(np.isfinite(se)) else settings.splits - 1  # split-std SEs: Student t on S - 1
    return Curve.from_summary(epochs, rows["is_mean"].to_numpy(dtype=float), np.where(np.isfinite(se), se, fallback),
                              df=df, budget=budget)  # fmt: skip


def verdicts(study: StudyRuns, draws: int = 200) -> tuple[dict[CurveKey, Verdict], dict[CurveKey, Curve]]:
    """The plateau rule's verdict (with the plateau epoch's interval) and the curve, for every IS curve."""
    out, curves = {}, {}
    for key, g in study.scores.groupby(CURVE_KEYS, sort=True):
        k: CurveKey = (str(key[0]), str(key[1]), str(key[2]), int(key[3]))
        curves[k] = curve_of(study, k, g)
        out[k] = assess(curves[k], trial_rule(study.specs.get(k[0])), draws=draws)
    return out, curves


def trial_onset_rule(spec: StudySpec | None) -> tuple[str, OnsetRule]:
    """(memorization score, onset rule) a trial was run with: its ``evaluation.onset``, else the spec's defaults
    (runs logged before the rule existed)."""
    evaluation = _section(spec, "evaluation")
    onset = evaluation.onset if evaluation is not None else OnsetSpec()
    return onset.score, OnsetRule.of(onset)


def onset_verdicts(study: StudyRuns, draws: int = 200) -> tuple[dict[CurveKey, Onset], dict[CurveKey, FractionCurve]]:
    """The memorization-onset rule (study/statistics/onset.py) on every (trial, evaluation, extractor, n) curve of the
    memorized fraction the trial's rule reads (``evaluation.onset.score``), from the logged mean, SE and held-out
    level: the numbers the trial's stopper decided on. Empty when no trial logged a memorization score."""
    m = study.metrics
    out: dict[CurveKey, Onset] = {}
    curves: dict[CurveKey, FractionCurve] = {}
    if m.empty:
        return out, curves
    m = m[m["score"].astype(str).str.startswith("memorization_")]
    for (trial, score, extractor, n, evaluation), g in m.groupby(
        ["trial", "score", "extractor", "n_samples", "evaluation"], sort=True
    ):
        wanted, rule = trial_onset_rule(study.specs.get(str(trial)))
        if score != wanted:
            continue
        wide = g.pivot_table(index="epoch", columns="stat", values="value", aggfunc="last").sort_index()
        if "mean" not in wide:
            continue

        def col(stat: str, wide: pd.DataFrame = wide) -> np.ndarray | None:
            return wide[stat].to_numpy(dtype=float) if stat in wide else None

        k: CurveKey = (str(trial), str(evaluation), str(extractor), int(n))
        curves[k] = FractionCurve.from_rows(wide.index.to_numpy(dtype=float), col("mean"), col("se"),
                                            col("held_out"), col("held_out_se"))  # fmt: skip
        out[k] = assess_onset(curves[k], rule, draws=draws)
    return out, curves


def verdict_of(found: dict[CurveKey, Verdict], trial: str, evaluation: str) -> Verdict | None:
    """The verdict of a (trial, evaluation) curve (any extractor and n; one per curve in practice)."""
    return next((v for k, v in found.items() if (k[0], k[1]) == (trial, evaluation)), None)


def onset_of(found: dict[CurveKey, Onset], trial: str, evaluation: str) -> Onset | None:
    """The memorization-onset verdict of a (trial, evaluation) curve (any extractor and n)."""
    return next((o for k, o in found.items() if (k[0], k[1]) == (trial, evaluation)), None)


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

def _pairing(spec: StudySpec | None) -> tuple[Any, ...]:
    """What decides whether two trials' evaluations share their initial noise (``paired``)."""
    evaluation, dataset = _section(spec, "evaluation"), _section(spec, "dataset")
    isc = getattr(evaluation, "inception_score", None)
    return (getattr(evaluation, "seed", None), getattr(evaluation, "num_samples", None),
            getattr(evaluation, "batch_size", None), getattr(dataset, "resolution", None),
            getattr(dataset, "kind", None), getattr(isc, "extractor", None))  # fmt: skip


def paired(study: StudyRuns, trial_a: str, trial_b: str) -> bool:
    """Whether two trials' evaluations start from the same initial noise: same evaluation seed, sample count,
    batch size (the noise is drawn batch by batch from one generator) and image shape, scored alike."""
    return _pairing(study.specs.get(trial_a)) == _pairing(study.specs.get(trial_b))


@dataclass(frozen=True)
class Difference:
    """IS(b) - IS(a) with its interval at ``level``: the measurement (paired bootstrap when the evaluations share
    their noise and both kept logits, else independent) plus, between checkpoints, the training noise of both
    curves (``noise``: their checkpoint-to-checkpoint sd, estimated from each curve, added in quadrature)."""

    estimate: float
    low: float
    high: float
    paired: bool
    noise: float = 0.0  # training noise in the interval (score units); 0 on one shared checkpoint
    seeds: int = 1  # seeds behind the estimate (1: training noise estimated from the curve, not measured)
    level: float = 0.95

    @property
    def resolved(self) -> bool:
        """The interval excludes 0."""
        return self.low > 0 or self.high < 0


def difference(
    study: StudyRuns, a: tuple[str, str], b: tuple[str, str], epoch: int, epoch_b: int | None = None, *,
    noise: Mapping[tuple[str, str], float] | None = None, level: float = 0.95,
) -> Difference:  # fmt: skip
    """IS of (trial, evaluation) ``b`` minus ``a``, at ``epoch`` (and ``epoch_b`` for ``b`` when it differs).

    Paired (the same resampled images on both sides) when both kept their logits and share their initial noise:
    two samplers of one trial, two epochs of one trial, or two trials with the same evaluation seed, sample count
    and batch size. Otherwise independent: +-q sqrt(SE_a^2 + SE_b^2), q Student t on S - 1 for split-std SEs.
    Unless both sides are the same checkpoint (one trial, one epoch), the training noise of both curves
    (``noise``, score units) is added to the variance: a comparison between configurations or epochs must carry
    the checkpoint wander, not only the sampling noise (shared/STATISTICS.md section 3).
    """
    eb = epoch if epoch_b is None else epoch_b
    same_checkpoint = a[0] == b[0] and epoch == eb
    tau = 0.0 if same_checkpoint or noise is None else math.hypot(noise.get(a, 0.0), noise.get(b, 0.0))
    la, lb = study.logits.get(a, {}).get(epoch), study.logits.get(b, {}).get(eb)
    settings = bootstrap_of(study.specs.get(a[0]))
    z = two_sided(level, None)
    if la is not None and lb is not None and la.shape[0] == lb.shape[0] and paired(study, a[0], b[0]):
        boot = settings.bootstrap([la, lb])
        est, lo, hi = boot.diff_ci(0, 1, level)
        if tau > 0:
            s = math.sqrt(float(np.var(boot.replicates[:, 1] - boot.replicates[:, 0], ddof=1)) + tau**2)
            lo, hi = est - z * s, est + z * s
        return Difference(est, lo, hi, True, tau, level=level)
    ra, rb = _score_row(study, a, epoch), _score_row(study, b, eb)
    split = not (math.isfinite(ra["is_se"]) and math.isfinite(rb["is_se"]))

    def se(r: pd.Series) -> float:
        return float(r["is_se"]) if math.isfinite(r["is_se"]) else split_std_to_se(float(r["is_std"]), settings.splits)

    q = two_sided(level, settings.splits - 1 if split else None)
    d, s = float(rb["is_mean"] - ra["is_mean"]), math.sqrt(se(ra) ** 2 + se(rb) ** 2 + tau**2)
    return Difference(d, d - q * s, d + q * s, False, tau, level=level)


def noise_of(found: Mapping[CurveKey, Verdict]) -> dict[tuple[str, str], float]:
    """{(trial, evaluation): tau}: each curve's training noise as its verdict estimated it."""
    return {(k[0], k[1]): v.noise for k, v in found.items()}


def seed_mean(diffs: list[Difference], level: float = 0.95) -> Difference:
    """The mean of per-seed differences with a Student-t interval across seeds: the training noise measured."""
    x = np.array([d.estimate for d in diffs])
    m = float(x.mean())
    half = two_sided(level, len(x) - 1) * float(x.std(ddof=1)) / math.sqrt(len(x)) if len(x) > 1 else math.nan
    return Difference(m, m - half, m + half, False, 0.0, len(x), level)


def _score_row(study: StudyRuns, curve: tuple[str, str], epoch: int) -> pd.Series:
    sc = study.scores
    rows = sc[(sc["trial"] == curve[0]) & (sc["evaluation"] == curve[1]) & (sc["epoch"] == epoch)]
    if rows.empty:
        raise KeyError(f"no IS of {curve[0]} / {curve[1]} at epoch {epoch}")
    return rows.iloc[0]
