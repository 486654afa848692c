"""The sample-size study (paper Fig. A.1) on a micro study built without Ray: one trial run with LocalSession,
its checkpoints placed where Ray Tune keeps them, a real SQLite MLflow store."""

from __future__ import annotations

import json
import math
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from conftest import micro_spec, write_spec
from mlflow import MlflowClient

from study.cli import main
from study.contract.spec import StudySpec, Trial, load_study, spec_fingerprint
from study.paths import StudyPaths
from study.runner import StudyError
from study.sample_size import COLUMNS, sample_size_study, trial_directory, tune_dirname
from trainables.trainable import CHECKPOINT_FILE, LocalSession, Runtime, run_trial

pytestmark = pytest.mark.integration
EVAL = "ancestral-5"


@dataclass(frozen=True)
class MicroStudy:
    storage: Path
    spec: Path
    name: str
    trial: str
    state: dict
    trial_run_id: str


def _state(spec: Path, storage: Path, name: str) -> dict:
    """study.json as ``study run`` writes it, with an MLflow store, experiment and parent run made here."""
    _, trials = load_study(spec)
    uri = f"sqlite:///{storage}/mlflow.db"
    client = MlflowClient(uri)
    eid = client.create_experiment(name, artifact_location=str(storage / "artifacts"))
    parent = client.create_run(eid, tags={"study.role": "parent", "study.name": name}).info.run_id
    return {"instance": uuid.uuid4().hex[:12], "fingerprint": spec_fingerprint(trials), "parent_run_id": parent,
            "experiment_id": eid, "tracking_uri": uri, "experiment": name, "spec": str(spec)}  # fmt: skip


# the trained trial's name has parentheses, as the quickstart's ``t0_schedule=linear(scale=1)`` has: Ray Tune keeps it
# in a folder spelled differently (``t1_schedule=cosine_s=0.008_``), which the fixture reproduces
GRID = {"dynamics.schedule": [{"kind": "linear"}, {"kind": "cosine", "s": 0.008}]}


@pytest.fixture(scope="module")
def micro_study(tmp_path_factory: pytest.TempPathFactory, classifier_r8: tuple[Path, float]) -> MicroStudy:
    """Trial ``schedule=cosine(s=0.008)`` (IS and FID) trained 2 epochs; checkpoints of epochs 1 and 2 in the folder
    Ray Tune makes for it, with the ``params.json`` Tune writes there."""
    root = tmp_path_factory.mktemp("sample_size")
    storage, name = root / "studies", "ss"
    spec = write_spec(root / "ss.yaml", micro_spec(name, **{"evaluation.inception_score.extra_metrics": ["fid"],
                                                              "grid": GRID}))  # fmt: skip
    (storage / name).mkdir(parents=True)
    state = _state(spec, storage, name)
    (storage / name / "study.json").write_text(json.dumps(state))
    _, trials = load_study(spec)
    trial = trials[1]
    paths = StudyPaths.resolve(storage, name)
    runtime = Runtime(state["tracking_uri"], state["experiment_id"], state["parent_run_id"], state["instance"], name,
                      str(paths.data), str(paths.cache), extractor_weights=str(classifier_r8[0]),
                      log_images=False)  # fmt: skip
    session = LocalSession(root / "local")
    for epochs, folder in ((1, "checkpoint_000000"), (2, "checkpoint_000001")):
        spec_json = trial.spec.model_dump(mode="json")
        spec_json["training"]["epochs"] = epochs  # epoch 1 first, then resumed: Tune's two kept checkpoints
        run_trial(Trial(trial.index, trial.name, trial.axes, StudySpec.model_validate(spec_json)), runtime, session)
        target = storage / name / "tune" / tune_dirname(trial.name) / folder
        target.mkdir(parents=True)
        shutil.copy(session.directory / CHECKPOINT_FILE, target / CHECKPOINT_FILE)
    (target.parent / "params.json").write_text(json.dumps({"trial": trial.to_config(), "runtime": {}}))
    run_id = MlflowClient(state["tracking_uri"]).search_runs(
        [state["experiment_id"]], f"tags.`study.trial` = '{trial.name}'"
    )[0].info.run_id  # fmt: skip
    return MicroStudy(storage, spec, name, trial.name, state, run_id)


def test_sample_size_table_figure_and_run(micro_study: MicroStudy, classifier_r8, one_thread) -> None:
    s = micro_study
    result = sample_size_study(s.spec, s.trial, EVAL, [80, 20, 40], storage=s.storage,
                               extractor_weights=str(classifier_r8[0]))  # fmt: skip
    table = pd.read_csv(result.csv)
    assert list(table.columns) == list(COLUMNS) and table["n"].tolist() == [20, 40, 80]
    assert all(math.isfinite(v) and v > 1 for v in table["is_mean"])
    assert (table["is_ci_low"] <= table["is_ci_high"]).all() and (table["fid"] > 0).all()
    assert result.epoch == 2 and math.isfinite(result.is_inf) and result.figure.is_file()
    assert result.figure == s.storage / s.name / "sample_size" / f"{s.trial}-e2-{EVAL}.png"

    # The trial's batches and evaluation seed: the first num_samples (40) images are the ones it scored at epoch 2.
    client = MlflowClient(s.state["tracking_uri"])
    logged = client.get_metric_history(s.trial_run_id, f"is/digits-cnn/n40/{EVAL}/mean")
    assert table.loc[table["n"] == 40, "is_mean"].item() == pytest.approx(logged[-1].value, rel=1e-5)
    logged = client.get_metric_history(s.trial_run_id, f"fid/digits-cnn/n40/{EVAL}/value")
    assert table.loc[table["n"] == 40, "fid"].item() == pytest.approx(logged[-1].value, rel=1e-4)

    run = client.get_run(result.run_id)
    tags = run.data.tags
    assert tags["study.role"] == "sample-size" and tags["study.trial"] == s.trial
    assert tags["mlflow.parentRunId"] == s.state["parent_run_id"] and run.info.status == "FINISHED"
    assert run.info.run_name == f"sample-size {s.trial} e2 {EVAL}" and run.data.params["n_max"] == "80"
    history = client.get_metric_history(result.run_id, f"sample_size/digits-cnn/{EVAL}/is_mean")
    assert sorted(m.step for m in history) == [20, 40, 80]
    assert len(client.get_metric_history(result.run_id, f"sample_size/digits-cnn/{EVAL}/fid")) == 3
    assert run.data.metrics[f"sample_size/digits-cnn/{EVAL}/is_inf"] == pytest.approx(result.is_inf)
    files = {Path(a.path).name for a in client.list_artifacts(result.run_id, "sample_size")}
    assert files == {result.figure.name, result.csv.name}


def test_unknown_epoch_trial_and_eval_are_errors(micro_study: MicroStudy) -> None:
    s = micro_study
    with pytest.raises(StudyError, match=r"available epochs: 1, 2 \(Ray Tune keeps only the last 2"):
        sample_size_study(s.name, s.trial, EVAL, [20], epoch=7, storage=s.storage)
    with pytest.raises(StudyError, match=r"its trials: t0_schedule=linear, t1_schedule=cosine\(s=0.008\)"):
        sample_size_study(s.name, "nope", EVAL, [20], storage=s.storage)
    with pytest.raises(ValueError, match="its evaluations: ancestral-5, ddim-3"):
        sample_size_study(s.name, s.trial, "ddim-50", [20], storage=s.storage)


def test_cli_prints_one_line_per_n(micro_study: MicroStudy, classifier_r8, one_thread, capsys) -> None:
    s = micro_study
    code = main(["sample-size", s.name, "--trial", s.trial, "--epoch", "1", "--eval", "ddim-3", "--n", "20,40",
                 "--storage", str(s.storage)])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0 and out[1].startswith("n=   20  IS ") and out[2].startswith("n=   40  IS ")
    assert out[3].startswith("IS-infinity: ") and f"{s.trial}-e1-ddim-3.png" in out[4]
    assert main(["sample-size", s.name, "--trial", s.trial, "--epoch", "9", "--eval", "ddim-3", "--n", "20",
                 "--storage", str(s.storage)]) == 2  # fmt: skip


def test_cli_takes_the_study_directory_and_the_report_trial_name(
    micro_study: MicroStudy, classifier_r8, one_thread, capsys, monkeypatch
) -> None:
    """``sample-size studies/ss --trial 't1_schedule=cosine(s=0.008)'`` from the study's working directory, as a user
    types what ``run`` and the report print; the first line says what ± and [...] are."""
    s = micro_study
    monkeypatch.chdir(s.storage.parent)
    assert "(" in s.trial and not (s.storage / s.name / "tune" / s.trial).exists()
    code = main(["sample-size", f"{s.storage.name}/{s.name}", "--trial", s.trial, "--eval", "ddim-3", "--n", "20",
                 "--storage", "elsewhere"])  # fmt: skip
    out = capsys.readouterr().out.splitlines()
    assert code == 0, out
    assert "mean ± split std (10 splits" in out[0] and "[95 % bootstrap interval of the mean" in out[0]
    assert "FID of the first N images" in out[0] and out[1].startswith("n=   20  IS ")
    # Ray Tune's folder name is accepted too
    code = main(["sample-size", str(s.storage / s.name), "--trial", tune_dirname(s.trial), "--eval", "ddim-3",
                 "--n", "20"])  # fmt: skip
    assert code == 0 and capsys.readouterr().out.splitlines()[1].startswith("n=   20  IS ")


def test_trial_directory_follows_the_recorded_name(tmp_path: Path) -> None:
    """The name recorded in params.json wins over the folder's spelling (Tune adds a suffix to a folder that already
    exists); without params.json, Tune's spelling of the name; then the name itself."""
    tune = tmp_path / "tune"
    name = "t0_schedule=linear(scale=1)"
    assert tune_dirname(name) == "t0_schedule=linear_scale=1_"
    assert trial_directory(tune, name) == tune / name  # nothing there yet: the error will name this folder
    (tune / "t0_schedule=linear_scale=1_").mkdir(parents=True)
    assert trial_directory(tune, name) == tune / "t0_schedule=linear_scale=1_"
    moved = tune / "t0_schedule=linear_scale=1__ab12"
    (moved / "checkpoint_000003").mkdir(parents=True)
    (moved / "checkpoint_000003" / CHECKPOINT_FILE).write_bytes(b"")
    (moved / "params.json").write_text(json.dumps({"trial": {"name": name}}))
    (tune / "other").mkdir()
    (tune / "other" / "params.json").write_text("{not json")
    assert trial_directory(tune, name) == moved


def test_every_command_that_builds_trials_refuses_an_incompatible_spec_as_validate_does(
    tmp_path: Path, capsys
) -> None:
    """sample-size, report and compare read the spec through the plan's compatibility check: a sampler that cannot
    sample the dynamics is the same SpecError (exit code 2, same message) as ``validate`` prints."""
    spec = write_spec(tmp_path / "bad.yaml", micro_spec("bad", **{"dynamics": {"kind": "ncsnv2", "num_levels": 10},
                                                                  "grid": {}}))  # fmt: skip
    assert main(["validate", str(spec)]) == 2
    expected = capsys.readouterr().err
    assert "cannot sample 'ncsnv2'" in expected
    for argv in (["sample-size", str(spec), "--trial", "t0", "--eval", EVAL, "--n", "20"],
                 ["report", str(spec)], ["compare", str(spec), str(spec)]):  # fmt: skip
        assert main([*argv, "--storage", str(tmp_path / "studies")]) == 2, argv
        assert capsys.readouterr().err == expected, argv
