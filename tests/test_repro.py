"""Results reproduce: the same spec and seed on one machine give identical numbers (a two-trial study run twice,
each run in its own storage and MLflow store, through a real local Ray)."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest
from conftest import micro_spec, write_spec
from mlflow import MlflowClient

from study.runner import run_study

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# what measures the machine rather than the model: wall times, overheads, memory
_MACHINE = re.compile(r"seconds|time|memory|rss|bytes|_s$")


def _exact(value: float) -> float | str:
    """The value as compared: bit for bit, NaN (an undecided plateau epoch) equal to NaN."""
    return "nan" if math.isnan(value) else value


def _metrics(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Run the study in ``workdir``; every trial's full metric histories, keyed by trial name."""
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    spec = micro_spec("repro", **{"training.epochs": 2, "evaluation.inception_score": {"extra_metrics": ["fid"]}})
    outcome = run_study(write_spec(workdir / "r.yaml", spec), storage=workdir / "studies", write_report=False)
    assert sorted(outcome.finished) == ["t0_schedule=linear", "t1_schedule=cosine"]
    client = MlflowClient(f"sqlite:///{workdir}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("repro").experiment_id])
    out = {}
    for run in runs:
        if run.data.tags.get("study.role") != "trial":
            continue
        names = [k for k in run.data.metrics if not _MACHINE.search(k)]
        out[run.data.tags["study.trial"]] = {
            k: sorted((m.step, _exact(m.value)) for m in client.get_metric_history(run.info.run_id, k)) for k in names
        }
    return out


def test_a_study_run_twice_logs_identical_metrics(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    first = _metrics(tmp_path / "first", monkeypatch)
    second = _metrics(tmp_path / "second", monkeypatch)
    assert set(first) == set(second) == {"t0_schedule=linear", "t1_schedule=cosine"}
    for trial, histories in first.items():
        assert histories.keys() == second[trial].keys()
        # the model's numbers: losses, IS with intervals, FID, plateau decisions, all at every logged step
        assert any(k.startswith("is/") for k in histories) and any(k.startswith("fid/") for k in histories)
        assert "train/loss" in histories and len(histories["train/loss"]) == 2
        different = [k for k in histories if histories[k] != second[trial][k]]
        assert not different, f"{trial}: {different[:5]} differ between two runs of one spec and seed"
