"""Stopping rules: a registry beside divergence, with one status vocabulary (study/keys.py ``Status``).

After every epoch the trial asks the rules in registry order; the first that fires ends it:

* ``diverged``: the epoch's training loss is not finite (status ``diverged``; the study goes on).
* ``plateau`` (opt-in, ``training.stop``): every (or any) evaluation curve has plateaued or peaked under the
  plateau rule (analysis/plateau.py), the report's own rule on the same data: the paired bootstrap over the kept
  per-image logits of all evaluations so far (status ``converged``).
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
from study.keys import Status


@dataclass(frozen=True)
class Stop:
    """Why and when a trial ended."""

    status: Status
    rule: str
    epoch: int
    reason: str


@dataclass
class EvaluationHistory:
    """Per-image IS logits of every evaluation so far: {evaluation id: {epoch: [N, classes] float16}}."""

    logits: dict[str, dict[int, np.ndarray]] = field(default_factory=dict)

    def add(self, evaluation: str, epoch: int, logits: np.ndarray) -> None:
        self.logits.setdefault(evaluation, {})[epoch] = logits

    def curve(self, evaluation: str, splits: int, shuffle: bool, replicates: int, seed: int) -> Curve:
        """The evaluation's IS curve with its paired bootstrap covariance (every epoch shares the initial noise)."""
        epochs = sorted(self.logits[evaluation])
        mats = [self.logits[evaluation][e] for e in epochs]
        return Curve.from_logits(np.array(epochs), mats, splits, shuffle, max(replicates, 2), seed)

    def verdicts(self, rule: PlateauRule, splits: int, shuffle: bool, replicates: int, seed: int,
                 draws: int = 0) -> dict[str, Verdict]:  # fmt: skip
        return {
            ev: assess(self.curve(ev, splits, shuffle, replicates, seed), rule, draws=draws) for ev in self.logits
        }


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
    done = {ev: v for ev, v in o.verdicts.items() if v.converged}
    enough = len(done) == len(o.verdicts) if stop.curves == "all" else bool(done)
    if not enough:
        return None
    parts = [f"{ev} {v.state} since epoch {v.epoch}" for ev, v in sorted(done.items())]
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


def plateau_rule(spec: Any) -> PlateauRule:
    """The plateau rule a trial decides with (the spec's ``training.stop.plateau``, else the calibrated default)."""
    stop = spec.training.stop
    return stop.plateau.rule() if stop is not None else PlateauRule()
