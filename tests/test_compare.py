"""``python -m study compare``: comparable studies in one report, incomparable ones refused with the reason
(a real SQLite MLflow store, the real CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from study.cli import main

EPOCHS = list(range(10, 110, 10))


def _study(client: MlflowClient, tmp: Path, name: str, extractor: str, n: int, offset: float, inf: bool) -> None:
    exp = client.create_experiment(name, artifact_location=(tmp / name).as_uri())
    client.create_run(exp, tags={"study.name": name, "study.role": "parent"})
    for schedule, rise in (("linear", 0.02), ("cosine", 0.03)):
        tags = {"study.name": name, "study.role": "trial", "study.trial": f"t_{schedule}", "study.status": "finished",
                "study.axes": json.dumps(["schedule"]), "axis.schedule": schedule}
        run = client.create_run(exp, tags=tags).info.run_id
        stem = f"is/{extractor}/n{n}/ddim-20"
        ms = [Metric(f"{stem}/mean", 3 + offset + rise * e, 0, e) for e in EPOCHS]
        ms += [Metric(f"{stem}/std", 0.3, 0, e) for e in EPOCHS]
        ms += [Metric(f"{stem}/inf", 3.5 + offset + rise * e, 0, e) for e in EPOCHS] if inf else []
        client.log_batch(run, metrics=ms, params=[])
        client.set_terminated(run)


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("compare")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(uri)
    _study(client, tmp, "a", "digits-cnn", 400, 0.0, inf=True)
    _study(client, tmp, "b", "digits-cnn", 400, 0.5, inf=False)  # comparable with a
    _study(client, tmp, "c", "digits-cnn", 1000, 0.5, inf=True)  # other n: IS-infinity with a
    _study(client, tmp, "d", "inception-v3-compat", 400, 0.5, inf=True)  # other extractor: refused
    for name in "abcd":
        (tmp / "studies" / name).mkdir(parents=True)
        state = {"tracking_uri": uri, "experiment": name, "parent_run_id": "", "spec": ""}
        (tmp / "studies" / name / "study.json").write_text(json.dumps(state))
    return tmp / "studies"


def _run(storage: Path, *names: str) -> tuple[int, Path]:
    out = storage / ("cmp_" + "".join(names))
    return main(["compare", *names, "--storage", str(storage), "-o", str(out)]), out


def test_comparable_studies_share_one_report(storage: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = _run(storage, "a", "b")
    assert code == 0 and "every study has IS with digits-cnn n=400 (10 splits)" in capsys.readouterr().out
    found = pd.read_csv(out / "findings.csv")
    cross = found[(found["family"] == "axis study") & found["under"].str.startswith("ddim-20, schedule=")]
    assert len(cross) == 2  # linear with linear, cosine with cosine
    assert cross["difference"].round(6).tolist() == [0.5, 0.5] and cross["resolved"].all()
    assert (out / "index.html").read_text().count("a/t_linear") > 0


def test_other_sample_counts_are_compared_on_is_infinity(storage: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = _run(storage, "a", "c")
    assert code == 0 and "compared on IS-infinity" in capsys.readouterr().out
    conv = pd.read_csv(out / "convergence.csv")
    assert set(conv["extractor"]) == {"digits-cnn IS-infinity"}


def test_incomparable_studies_are_refused_with_the_reason(storage: Path, capsys: pytest.CaptureFixture) -> None:
    code, _ = _run(storage, "a", "d")
    err = capsys.readouterr().err
    assert code == 2 and "different extractors" in err and "inception-v3-compat n=400" in err
    code, _ = _run(storage, "b", "c")  # n differs and b logged no IS-infinity
    assert code == 2 and "b logged no IS-infinity" in capsys.readouterr().err


def test_studies_given_by_their_directories(storage: Path, capsys: pytest.CaptureFixture, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """The directory ``run`` prints (``studies/a``) works for ``compare`` and ``report``, from any working directory
    and whatever ``--storage`` says."""
    monkeypatch.chdir(storage.parent)
    out = tmp_path / "cmp"
    assert main(["compare", "studies/a", str(storage / "b"), "--storage", "nowhere", "-o", str(out)]) == 0
    assert "every study has IS with digits-cnn n=400" in capsys.readouterr().out and (out / "index.html").is_file()
    monkeypatch.chdir(tmp_path)
    assert main(["report", str(storage / "a") + "/", "-o", str(tmp_path / "report")]) == 0
    assert f"report: {tmp_path / 'report' / 'index.html'}" in capsys.readouterr().out


def test_one_study_is_refused_with_how_to_make_a_second(storage: Path, capsys: pytest.CaptureFixture,
                                                        tmp_path: Path) -> None:
    """Nothing is announced; the error says how to make a comparable study: a copy of the spec with another training
    seed and a new name, then the compare command to run."""
    from conftest import micro_spec, write_spec

    spec = write_spec(tmp_path / "one.yaml", micro_spec("one", **{"training.seed": 3}))
    code = main(["compare", str(spec), "--storage", str(storage)])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == "" and "Traceback" not in captured.err
    err = captured.err
    assert "compare needs two or more studies; only 'one' was given" in err
    assert f"copy {spec} to {tmp_path / 'one_seed1.yaml'}" in err and "`name: one_seed1`" in err
    assert "`training.seed: 4`" in err and f"`python -m study run {tmp_path / 'one_seed1.yaml'}`" in err
    assert f"`python -m study compare {storage / 'one'} {storage / 'one_seed1'}`" in err
    code = main(["compare", str(storage / "a")])  # a study without its spec: still the recipe, with placeholders
    assert code == 2 and "only 'a' was given" in capsys.readouterr().err
