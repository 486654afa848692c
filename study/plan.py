"""The driver's plan step: a spec file read and expanded by the contract, then checked against the trial library.

The contract (``study.contract.spec``) says whether a spec is well formed: pydantic only, no torch. Whether each trial's
samplers and guidance can run on its dynamics is the trial library's knowledge (``trainables.compat``); it is
checked here, once per plan, and reported as a ``SpecError`` like any other problem of the file. Every path that
builds trials from a spec file goes through ``Plan.load`` (``validate``, ``run``, ``report``, ``compare``,
``sample-size``, ``bench``), so each refuses the same spec with the same message.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from study.contract.spec import SpecError, StudySpec, Trial, load_study, spec_fingerprint


def checked(plan: tuple[StudySpec, list[Trial]], source: str = "<spec>") -> tuple[StudySpec, list[Trial]]:
    """``plan`` (a base spec and its trials, as ``expand`` returns them) once every trial's samplers and guidance
    can run on its dynamics; else a ``SpecError`` naming each problem (and the grid combination it is in, unless it
    is in all of them)."""
    from trainables.compat import compatibility_problems

    found = [(trial, compatibility_problems(trial.spec)) for trial in plan[1]]
    everywhere = [p for p in found[0][1] if all(p in ps for _, ps in found)] if found else []
    problems = list(everywhere)  # a problem of every trial is the spec's: said once
    for trial, ps in found:
        label = ", ".join(f"{k}={v}" for k, v in trial.axes.items())
        problems += [f"grid combination {trial.index} ({label}): {p}" for p in ps if p not in everywhere]
    if problems:
        raise SpecError(source, problems)
    return plan


@dataclass(frozen=True)
class Plan:
    """What a spec file asks for: the base spec, its expanded trials and their fingerprint (a resume must match)."""

    spec_path: Path
    base: StudySpec
    trials: list[Trial]
    fingerprint: str

    @classmethod
    def load(cls, spec_path: str | Path) -> Plan:
        """Read, validate, expand and check a spec file. Raises ``SpecError``."""
        path = Path(spec_path).resolve()
        base, trials = checked(load_study(path), str(path))
        return cls(path, base, trials, spec_fingerprint(trials))
