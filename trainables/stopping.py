"""Stopping rules: a registry beside divergence, with one status vocabulary (study/contract/keys.py ``Status``).

After every epoch the trial asks the rules in registry order; the first that fires ends it:

* ``diverged``: the epoch's training loss is not finite (status ``diverged``; the study goes on).
* ``plateau`` (opt-in, ``training.stop``): every (or any) evaluation curve has been plateaued or peaked under the
  plateau rule (study/statistics/plateau.py, ``evaluation.plateau``) at ``persistence`` consecutive evaluations: the
  report's own rule on the same data and the same bootstrap draws (status ``converged``). The persistence is
  what calibrates the stopper over all its looks (the rule's docstring gives the rates).
* ``memorization`` (opt-in, ``training.stop.memorization``): the memorization-onset rule (study/statistics/onset.py,
  ``evaluation.onset``) says ``onset`` on any evaluation's memorized-fraction curve: the fraction rose beyond the
  stated margin above its held-out level, resolved at the rule's ``persistence`` consecutive evaluations (status
  ``converged``, the harness's status for a trial a rule stopped early; the stop-rule tag says ``memorization``).
* ``budget``: the last epoch of ``training.epochs`` (status ``finished``).

The decisions are never held only in memory: ``EvaluationHistory`` is rebuilt from the artifacts the trial logged
(``evaluations/<id>/epoch-*.npz``: the logits, and the nearest-neighbour distances from which the memorized
fractions are recomputed with the same bootstrap) when a trial resumes, so a restored trial decides as an
uninterrupted one would (the distances are kept as float32: a copy ratio within float32 rounding of 1/3 could
flip, which no real distance does).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from study.contract import keys
from study.contract.keys import Status
from study.statistics.neighbours import bootstrap_fraction, copy_flags
from study.statistics.onset import FractionCurve, Onset, OnsetRule, assess_onset
from study.statistics.plateau import Curve, PlateauRule, Verdict, assess
from study.statistics.stats import BootstrapSettings, PairedBootstrap

FRACTION_FIELDS = ("mean", "se", "held_out", "held_out_se")  # what the onset rule reads of a memorization score


@dataclass(frozen=True)
class Stop:
    """Why and when a trial ended."""

    status: Status
    rule: str
    epoch: int
    reason: str


@dataclass
class EvaluationHistory:
    """Per-image IS logits of every evaluation so far, {evaluation id: {epoch: [N, classes] float16}}, and each
    epoch's bootstrap replicates, drawn once when the epoch is added (``study.statistics.stats.bootstrap_is`` draws the
    same image indices for every evaluation of one seed, so the columns stack into the paired bootstrap of the
    whole curve: a decision costs one bootstrap per new evaluation, not one per evaluated epoch)."""

    logits: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    _boot: dict[tuple[str, int], PairedBootstrap] = field(default_factory=dict, repr=False)
    # memorized fractions: {score: {evaluation id: {epoch: {mean, se, held_out, held_out_se}}}}
    fractions: dict[str, dict[str, dict[int, dict[str, float]]]] = field(default_factory=dict)

    def add(self, evaluation: str, epoch: int, logits: np.ndarray) -> None:
        self.logits.setdefault(evaluation, {})[epoch] = logits
        self._boot.pop((evaluation, epoch), None)

    def add_scores(self, evaluation: str, epoch: int, scores: Mapping[str, Mapping[str, float]]) -> None:
        """The memorization scores of one evaluation, as the trial computed and logged them."""
        for name, stats in scores.items():
            if name.startswith("memorization_"):
                row = {k: float(stats.get(k, math.nan)) for k in FRACTION_FIELDS}
                self.fractions.setdefault(name, {}).setdefault(evaluation, {})[epoch] = row

    def add_arrays(self, evaluation: str, epoch: int, arrays: Mapping[str, np.ndarray], replicates: int,
                   seed: int) -> None:  # fmt: skip
        """The memorization scores of one evaluation recomputed from its npz (a restored trial): the copy flags from
        the kept distances and the same bootstrap as trainables/scores.py (``replicates``, ``seed``)."""
        for name in {s for s, _ in filter(None, map(keys.parse_score_array, arrays))}:
            a = {n: arrays.get(keys.score_array(name, n)) for n in ("nn1", "nn2", "held_out_nn1", "held_out_nn2")}
            if not name.startswith("memorization_") or a["nn1"] is None or a["nn2"] is None:
                continue
            stats: dict[str, float] = dict(bootstrap_fraction(copy_flags(a["nn1"], a["nn2"]), replicates, seed).stats())
            if a["held_out_nn1"] is not None and a["held_out_nn2"] is not None:
                held = bootstrap_fraction(copy_flags(a["held_out_nn1"], a["held_out_nn2"]), replicates, seed)
                stats |= {"held_out": held.mean, "held_out_se": held.se}
            self.add_scores(evaluation, epoch, {name: stats})

    def fraction_curve(self, score: str, evaluation: str) -> FractionCurve:
        rows = self.fractions[score][evaluation]
        epochs = sorted(rows)
        return FractionCurve.from_rows(epochs, *([rows[e][k] for e in epochs] for k in FRACTION_FIELDS))

    def onsets(self, rule: OnsetRule, score: str, draws: int = 0) -> dict[str, Onset]:
        """The onset rule on every evaluation's memorized-fraction curve of ``score`` (none when not logged)."""
        return {ev: assess_onset(self.fraction_curve(score, ev), rule, draws=draws)
                for ev in self.fractions.get(score, {})}  # fmt: skip

    def curve(self, evaluation: str, settings: BootstrapSettings, budget: float) -> Curve:
        """The evaluation's IS curve with its paired bootstrap covariance (every epoch shares the initial noise)."""
        epochs = sorted(self.logits[evaluation])
        for e in epochs:
            if (evaluation, e) not in self._boot:
                self._boot[(evaluation, e)] = settings.bootstrap([self.logits[evaluation][e]])
        boot = PairedBootstrap.stack([self._boot[(evaluation, e)] for e in epochs])
        return Curve.from_bootstrap(np.array(epochs), boot, budget)

    def verdicts(self, rule: PlateauRule, settings: BootstrapSettings, budget: float,
                 draws: int = 0) -> dict[str, Verdict]:  # fmt: skip
        return {ev: assess(self.curve(ev, settings, budget), rule, draws=draws) for ev in self.logits}


@dataclass(frozen=True)
class EpochOutcome:
    """What the stopping rules look at after one epoch."""

    epoch: int
    loss: float
    verdicts: Mapping[str, Verdict]  # the plateau rule on every evaluation curve (empty unless evaluated now)
    # the memorization-onset rule on every evaluation's memorized-fraction curve (empty unless evaluated now and a
    # memorization score is logged)
    onsets: Mapping[str, Onset] = field(default_factory=dict)


StopRule = Callable[[EpochOutcome, Any], Stop | None]


def _diverged(o: EpochOutcome, spec: Any) -> Stop | None:
    if math.isfinite(o.loss):
        return None
    return Stop("diverged", "diverged", o.epoch, f"training loss is {o.loss} (not finite)")


def _plateau(o: EpochOutcome, spec: Any) -> Stop | None:
    stop = spec.training.stop
    if stop is None or not stop.plateau or not o.verdicts or o.epoch < stop.min_epochs:
        return None
    persistence = spec.evaluation.plateau.persistence
    done = {ev: v for ev, v in o.verdicts.items() if v.stopped_changing and v.streak >= persistence}
    enough = len(done) == len(o.verdicts) if stop.curves == "all" else bool(done)
    if not enough:
        return None
    parts = [f"{ev} {v.state} since epoch {v.epoch} ({v.streak} evaluations in a row)"
             for ev, v in sorted(done.items())]  # fmt: skip
    return Stop("converged", "plateau", o.epoch, "; ".join(parts))


def _memorization(o: EpochOutcome, spec: Any) -> Stop | None:
    stop = spec.training.stop
    if stop is None or not stop.memorization or o.epoch < stop.min_epochs:
        return None
    found = {ev: v for ev, v in o.onsets.items() if v.state == "onset"}
    if not found:
        return None
    parts = [f"{ev} memorization onset at epoch {v.epoch} (resolved at {v.detected}; {v.reason})"
             for ev, v in sorted(found.items())]  # fmt: skip
    return Stop("converged", "memorization", o.epoch, "; ".join(parts))


def _budget(o: EpochOutcome, spec: Any) -> Stop | None:
    if o.epoch < spec.training.epochs:
        return None
    return Stop("finished", "budget", o.epoch, f"trained all {spec.training.epochs} epochs")


STOPPING_RULES: dict[str, StopRule] = {
    "diverged": _diverged, "plateau": _plateau, "memorization": _memorization, "budget": _budget,
}  # fmt: skip


def first_stop(outcome: EpochOutcome, spec: Any) -> Stop | None:
    """The first rule (in registry order) that ends the trial after this epoch, if any."""
    for rule in STOPPING_RULES.values():
        stop = rule(outcome, spec)
        if stop is not None:
            return stop
    return None


def bootstrap_settings(spec: Any) -> BootstrapSettings:
    """The bootstrap behind a trial's decisions (and its report's): the spec's IS settings and evaluation seed."""
    return BootstrapSettings.of(spec.evaluation)


def plateau_rule(spec: Any) -> PlateauRule:
    """The plateau rule a trial decides with: ``evaluation.plateau``, its margin resolved by the spec."""
    return PlateauRule.of(spec.evaluation.plateau)


def onset_rule(spec: Any) -> OnsetRule:
    """The memorization-onset rule a trial decides with: ``evaluation.onset``."""
    return OnsetRule.of(spec.evaluation.onset)


def onsets(spec: Any, history: EvaluationHistory) -> dict[str, Onset]:
    """The onset rule on every evaluation's curve of the spec's memorization score (empty when it is not logged)."""
    return history.onsets(onset_rule(spec), spec.evaluation.onset.score)


def onset_metrics(found: Mapping[str, Onset]) -> dict[str, float]:
    """The onset verdicts as metrics at the evaluated epoch (``keys.onset_key``): state, onset epoch, rise."""
    out: dict[str, float] = {}
    for ev, v in found.items():
        out[keys.onset_key(ev, "state")] = keys.ONSET_STATES.index(v.state)
        out[keys.onset_key(ev, "epoch")] = v.epoch if v.epoch is not None else math.nan
        out[keys.onset_key(ev, "rise")] = v.rise
    return out
