"""Stopping rules: a registry beside divergence, with one status vocabulary (study/contract/keys.py ``Status``).

After every epoch the trial asks the rules in registry order; the first that fires ends it:

* ``diverged``: the epoch's training loss is not finite (status ``diverged``; the study goes on).
* ``plateau`` (opt-in, ``training.stop``): every (or any) evaluation curve has been plateaued or peaked under the
  plateau rule (analysis/plateau.py, ``evaluation.plateau``) at ``persistence`` consecutive evaluations: the
  report's own rule on the same data and the same bootstrap draws (status ``converged``). The persistence is
  what calibrates the stopper over all its looks (the rule's docstring gives the rates).
* ``budget``: the last epoch of ``training.epochs`` (status ``finished``).

The plateau decision is never held only in memory: ``EvaluationHistory`` is rebuilt from the logits artifacts the
trial logged (``evaluations/<id>/epoch-*.npz``) when a trial resumes, so a restored trial decides exactly as an
uninterrupted one would.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.plateau import Curve, PlateauRule, Verdict, assess
from analysis.stats import BootstrapSettings, PairedBootstrap
from study.contract.keys import Status


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
    epoch's bootstrap replicates, drawn once when the epoch is added (``analysis.stats.bootstrap_is`` draws the
    same image indices for every evaluation of one seed, so the columns stack into the paired bootstrap of the
    whole curve: a decision costs one bootstrap per new evaluation, not one per evaluated epoch)."""

    logits: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)
    _boot: dict[tuple[str, int], PairedBootstrap] = field(default_factory=dict, repr=False)

    def add(self, evaluation: str, epoch: int, logits: np.ndarray) -> None:
        self.logits.setdefault(evaluation, {})[epoch] = logits
        self._boot.pop((evaluation, epoch), None)

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


StopRule = Callable[[EpochOutcome, Any], Stop | None]


def _diverged(o: EpochOutcome, spec: Any) -> Stop | None:
    if math.isfinite(o.loss):
        return None
    return Stop("diverged", "diverged", o.epoch, f"training loss is {o.loss} (not finite)")


def _plateau(o: EpochOutcome, spec: Any) -> Stop | None:
    stop = spec.training.stop
    if stop is None or not o.verdicts or o.epoch < stop.min_epochs:
        return None
    persistence = spec.evaluation.plateau.persistence
    done = {ev: v for ev, v in o.verdicts.items() if v.stopped_changing and v.streak >= persistence}
    enough = len(done) == len(o.verdicts) if stop.curves == "all" else bool(done)
    if not enough:
        return None
    parts = [f"{ev} {v.state} since epoch {v.epoch} ({v.streak} evaluations in a row)"
             for ev, v in sorted(done.items())]  # fmt: skip
    return Stop("converged", "plateau", o.epoch, "; ".join(parts))


def _budget(o: EpochOutcome, spec: Any) -> Stop | None:
    if o.epoch < spec.training.epochs:
        return None
    return Stop("finished", "budget", o.epoch, f"trained all {spec.training.epochs} epochs")


STOPPING_RULES: dict[str, StopRule] = {"diverged": _diverged, "plateau": _plateau, "budget": _budget}


def first_stop(outcome: EpochOutcome, spec: Any) -> Stop | None:
    """The first rule (in registry order) that ends the trial after this epoch, if any."""
    for rule in STOPPING_RULES.values():
        stop = rule(outcome, spec)
        if stop is not None:
            return stop
    return None


def bootstrap_settings(spec: Any) -> BootstrapSettings:
    """The bootstrap behind a trial's decisions (and its report's): the spec's IS settings and evaluation seed."""
    isc = spec.evaluation.inception_score
    return BootstrapSettings(isc.splits, isc.shuffle, isc.decision_replicates, spec.evaluation.seed)


def plateau_rule(spec: Any) -> PlateauRule:
    """The plateau rule a trial decides with: ``evaluation.plateau``, its margin resolved by the spec."""
    return PlateauRule(**spec.evaluation.plateau.rule_fields())
