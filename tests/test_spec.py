"""Spec validation: good specs pass, each kind of bad spec fails with the field, the line and the allowed values."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, micro_spec, write_spec

from study.contract.spec import SpecError, load_study
from study.contract.spec.load import expand

SPECS = sorted((REPO / "specs").rglob("*.yaml"))


@pytest.mark.parametrize("path", SPECS, ids=[str(p.relative_to(REPO)) for p in SPECS])
def test_every_shipped_spec_validates(path: Path) -> None:
    base, trials = load_study(path)
    assert trials and base.name


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(SpecError) as info:
        load_study(path)
    return info.value.problems


GOOD = (REPO / "specs" / "quickstart.yaml").read_text()


def test_unknown_key_names_path_line_and_allowed_keys(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("num_res_blocks: 1", "num_res_block: 1"))
    assert "network.num_res_block" in p and "unknown key" in p
    assert "allowed keys:" in p and "num_res_blocks" in p
    line = GOOD.splitlines().index("  num_res_blocks: 1") + 1
    assert f"[line {line}]" in p


def test_unknown_kind_lists_allowed_kinds(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("{kind: cosine}", "{kind: cosin}"))
    assert "cosin" in p and "'cosine'" in p and "'linear'" in p


def test_bad_literal_lists_allowed_values(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD.replace("variance: fixed_large", "variance: huge"))
    assert "evaluation.samplers[0].variance" in p and "fixed_large" in p and "fixed_small" in p


def test_missing_field_and_wrong_type(tmp_path: Path) -> None:
    no_epochs = re.sub(r"\n  epochs: \d+[^\n]*\n", "\n", GOOD)
    problems = _problems(tmp_path, no_epochs.replace("lr: 3.0e-3", "lr: fast"))
    assert any("training.epochs" in p and "missing" in p for p in problems)
    assert any("training.lr" in p for p in problems)


def test_grid_on_a_sampling_axis_is_rejected(tmp_path: Path) -> None:
    (p,) = _problems(tmp_path, GOOD + "  evaluation.num_samples: [100, 200]\n")
    assert "evaluation.num_samples" in p and "sampling axes" in p


def test_invalid_grid_value_names_the_combination(tmp_path: Path) -> None:
    spec = micro_spec(grid={"dynamics.schedule": [{"kind": "linear"}, {"kind": "cosine", "s": -1}]})
    with pytest.raises(SpecError) as info:
        expand(spec)
    (p,) = info.value.problems
    assert "grid combination 1" in p and "dynamics.schedule.s" in p


def test_duplicate_sampler_ids_are_rejected() -> None:
    spec = micro_spec(**{"evaluation.samplers": [{"kind": "ddim", "steps": 3}, {"kind": "ddim", "steps": 3}]})
    with pytest.raises(SpecError, match="ddim-3"):
        expand(spec)


def test_yaml_1_2_floats(tmp_path: Path) -> None:
    # PyYAML (YAML 1.1) would read 1e-3 as a string; the spec loader uses YAML 1.2.
    path = tmp_path / "s.yaml"
    path.write_text(GOOD.replace("lr: 3.0e-3", "lr: 1e-3"))
    _, trials = load_study(path)
    assert trials[0].spec.training.lr == pytest.approx(1e-3)


def test_cli_validate_prints_trials_and_exits_2_on_bad_spec(tmp_path: Path) -> None:
    ok = subprocess.run(
        [sys.executable, "-m", "study", "validate", str(REPO / "specs" / "quickstart.yaml")],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert "t0_schedule=linear" in ok.stdout and "t1_schedule=cosine" in ok.stdout
    assert "alpha_bar_T" in ok.stdout and "NFE 20" in ok.stdout and "parameters" in ok.stdout
    bad = write_spec(tmp_path / "bad.yaml", micro_spec(**{"training.optimizer": "sgd"}))
    out = subprocess.run([sys.executable, "-m", "study", "validate", str(bad)], capture_output=True, text=True)
    assert out.returncode == 2
    assert "training.optimizer" in out.stderr and "adam" in out.stderr


def test_run_with_bad_spec_starts_nothing(tmp_path: Path) -> None:
    bad = write_spec(tmp_path / "bad.yaml", micro_spec(**{"network.kind": "transformer"}))
    out = subprocess.run([sys.executable, "-m", "study", "run", str(bad)], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 2 and "network" in out.stderr
    assert not (tmp_path / "studies").exists() and not (tmp_path / "mlflow.db").exists()


def test_schema_is_json_with_discriminated_kinds() -> None:
    out = subprocess.run([sys.executable, "-m", "study", "schema"], capture_output=True, text=True, check=True)
    schema = json.loads(out.stdout)
    assert schema["additionalProperties"] is False
    assert "dynamics" in schema["required"]
    text = json.dumps(schema)
    assert '"ddpm_unet"' in text and '"ancestral"' in text


@pytest.mark.parametrize("name", [".", "..", "-x", ".hidden"])
def test_study_names_cannot_address_the_storage_or_its_parent(tmp_path: Path, name: str) -> None:
    """`run --fresh` deletes <storage>/<name>: a name of '.' or '..' would delete the storage or the working dir."""
    problems = _problems(tmp_path, re.sub(r"^name: .*$", f"name: '{name}'", GOOD, count=1, flags=re.M))
    assert any(p.startswith("[line") and "name" in p and "pattern" in p for p in problems), problems
