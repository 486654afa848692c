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
