"""Start-up talks: every preparation stage logs one line with its duration before the first epoch."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest
from conftest import micro_spec, write_spec

from study.paths import StudyPaths
from study.plan import Plan
from study.runner import Stages, StudyInterrupted, prepare, run_study

STAGE_LINE = r"stage {} done in \d+\.\d s"


def test_each_preparation_stage_logs_its_duration(tmp_path: Path, caplog) -> None:
    plan = Plan.load(write_spec(tmp_path / "s.yaml", micro_spec("stages")))
    paths = StudyPaths.resolve(tmp_path / "studies", "stages")
    caplog.set_level(logging.INFO, logger="study.runner")
    prepare(plan, paths, Stages())
    lines = [r.getMessage() for r in caplog.records if r.name == "study.runner"]
    for stage in ("data", "IS extractor", "reference scores", "guidance classifiers"):
        assert sum(bool(re.fullmatch(STAGE_LINE.format(stage), line)) for line in lines) == 1, (stage, lines)


def test_an_interrupted_stage_is_named_and_logs_no_duration(caplog) -> None:
    stages = Stages()
    caplog.set_level(logging.INFO, logger="study.runner")
    with pytest.raises(KeyboardInterrupt), stages("Ray start-up"):
        raise KeyboardInterrupt
    assert stages.current == "Ray start-up" and not caplog.records


def test_an_interrupt_before_ray_says_nothing_started(tmp_path: Path, monkeypatch) -> None:
    """Ctrl-C during the preparation (here: while the extractor is prepared) leaves no study behind."""
    import study.runner as runner

    def interrupted(*args: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setattr(runner, "prepare_extractor", interrupted)
    with pytest.raises(StudyInterrupted) as e:
        run_study(write_spec(tmp_path / "s.yaml", micro_spec("early")), storage=tmp_path / "studies")
    assert e.value.stage == "IS extractor" and "no trial had started" in e.value.saved
    assert not (tmp_path / "studies" / "early" / "study.json").exists()
