"""The report reads each trial's typed spec back from what the trial logged (``analysis.runs.logged_spec``): the
flattened config (``study.contract.runlog.flatten`` / ``split_params``) validated again, never parsed by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO

from analysis.convergence import bootstrap_of, budget_of, trial_onset_rule, trial_rule
from analysis.runs import logged_spec
from study.contract.runlog import flatten, split_params, unflatten
from study.contract.spec.load import load_study
from study.statistics.onset import OnsetRule
from study.statistics.plateau import PlateauRule

SPECS = sorted((REPO / "specs").rglob("*.yaml"))


def _logged(spec_json: dict) -> tuple[dict[str, str], dict[str, str]]:
    """What ``TrialRun.open`` logs: short values as params, long ones as tags (plus tags of other kinds)."""
    params, tags = split_params(flatten(spec_json))
    return params, tags | {"study.trial": "t0", "network.parameters": "598921"}


@pytest.mark.parametrize("path", SPECS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_trial_of_every_spec_reads_back_as_the_spec_it_ran(path: Path) -> None:
    _, trials = load_study(path)
    for trial in trials:
        assert logged_spec(*_logged(trial.spec.model_dump(mode="json"))) == trial.spec


def test_a_grid_with_dotted_paths_and_a_relative_margin_read_back() -> None:
    _, trials = load_study(REPO / "specs" / "digits" / "ddpm_schedules.yaml")
    data = trials[0].spec.model_dump(mode="json")
    data["grid"] = {"training.lr": [0.001, 0.002]}
    data["evaluation"]["plateau"]["margin"] = "2%"
    spec = logged_spec(*_logged(data))
    assert spec is not None and spec.grid == {"training.lr": [0.001, 0.002]}
    assert trial_rule(spec) == PlateauRule(margin=0.02, relative=True)


def test_values_decode_as_flatten_wrote_them() -> None:
    flat = {"a.none": "None", "a.yes": "True", "a.n": "3", "a.x": "0.25", "a.list": "[1, 2]", "a.text": "ddim-20",
            "a.pct": "2%", "a.cut": '[{"kind": "ddim", "na'}  # fmt: skip
    assert unflatten(flat) == {"a": {"none": None, "yes": True, "n": 3, "x": 0.25, "list": [1, 2],
                                     "text": "ddim-20", "pct": "2%", "cut": '[{"kind": "ddim", "na'}}  # fmt: skip


def test_a_partial_or_older_record_keeps_what_validates() -> None:
    """A record that is not a whole spec today (hand-written, or logged under an older schema) keeps each value
    that validates on its own; the models' defaults stand for the rest."""
    spec = logged_spec({"training.epochs": "120", "evaluation.plateau.margin": "0.25",
                        "evaluation.onset.persistence": "3", "evaluation.inception_score.splits": "5",
                        "evaluation.no_longer_a_field": "1", "evaluation.seed": "not a seed"}, {})  # fmt: skip
    assert spec is not None
    assert trial_rule(spec) == PlateauRule(margin=0.25)
    assert trial_onset_rule(spec) == ("memorization_feature", OnsetRule(persistence=3))
    assert budget_of(spec, 40.0) == 120.0 and bootstrap_of(spec).splits == 5 and bootstrap_of(spec).seed == 1234
    # no margin logged: the extractor's default margin when the extractor was logged, else the default rule
    only_extractor = logged_spec({"evaluation.inception_score.extractor": "inception-v3-compat"}, {})
    assert trial_rule(only_extractor) == PlateauRule(margin=0.2)
    assert trial_rule(logged_spec({"evaluation.plateau.persistence": "2"}, {})) == PlateauRule()
    assert logged_spec({}, {"study.trial": "t0"}) is None and trial_rule(None) == PlateauRule()
    assert budget_of(None, 40.0) == 40.0 and bootstrap_of(None).splits == 10
