"""The digits IS extractor is fixed: ``digits-cnn`` is the shipped weights (sha256-checked, tensors only), the same
on every machine; ``digits-cnn-local`` still trains a classifier on the study's own split."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import micro_spec

from study.contract.spec.study import StudySpec
from trainables import digits_classifier as dc
from trainables.files import UnsafeFile, sha256_of
from trainables.metrics import extractor_decl


def _spec(name: str, **overrides: object) -> StudySpec:
    data = micro_spec(name, **overrides)
    del data["grid"]
    return StudySpec.model_validate(data)


def test_every_shipped_file_matches_its_manifest_entry() -> None:
    manifest = json.loads(dc.MANIFEST.read_text())["weights"]
    assert sorted(int(r) for r in manifest) == sorted(dc.SHIPPED_RESOLUTIONS)
    for resolution in dc.SHIPPED_RESOLUTIONS:
        path, accuracy = dc.shipped_digits_classifier(resolution)
        entry = manifest[str(resolution)]
        assert sha256_of(path) == entry["sha256"] and accuracy == entry["held_out_accuracy"]
        assert 0.95 <= accuracy <= 1.0  # held out: a quarter of the digits, stratified (split seed 0)
        assert entry["held_out_fraction"] == 0.25 and entry["split_seed"] == 0 and entry["cpu"]
        assert dc.load_digits_classifier(path).resolution == resolution


def test_a_changed_weights_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copytree(dc.WEIGHTS_DIR, tmp_path / "weights")
    monkeypatch.setattr(dc, "WEIGHTS_DIR", tmp_path / "weights")
    monkeypatch.setattr(dc, "MANIFEST", tmp_path / "weights" / dc.MANIFEST.name)
    dc.shipped_digits_classifier(8)  # the copy is the shipped file
    with (tmp_path / "weights" / "digits-cnn-r8.pt").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(UnsafeFile, match="is not the shipped"):
        dc.shipped_digits_classifier(8)
    assert extractor_decl("digits-cnn").weight_problems(None, False)[0].startswith("the shipped digits-cnn weights")


def test_a_study_scores_with_the_shipped_weights_and_trains_none(tmp_path: Path) -> None:
    spec = _spec("shipped")
    path, facts = extractor_decl("digits-cnn").prepare(spec, tmp_path / "cache")
    assert Path(path) == dc.shipped_weights_file(spec.dataset.resolution)
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").iterdir())
    # a trial on another node resolves the driver's path by name in its own installation
    assert extractor_decl("digits-cnn").weights(f"/elsewhere/{Path(path).name}") == str(path)


def test_the_local_extractor_trains_on_the_study_split(tmp_path: Path) -> None:
    spec = _spec("local", **{"evaluation.inception_score": {"extractor": "digits-cnn-local"}})
    path, facts = extractor_decl("digits-cnn-local").prepare(spec, tmp_path / "cache")
    assert Path(path).parent == tmp_path / "cache" and Path(path).name.startswith("digits-cnn-r8-h0.25-s0")
    assert 0.9 <= next(iter(facts.values())) <= 1.0


def test_the_training_script_reproduces_the_shipped_classifier_s_accuracy(caplog) -> None:
    """``--check`` retrains r8; its parameters are bit-equal only on the CPU that trained them (named in the
    manifest), so across machines the held-out accuracy is compared, within a digit or two of the 450 held out."""
    import logging

    caplog.set_level(logging.INFO, logger=dc.__name__)
    dc.main(["--check", "--resolution", "8"])
    line = next(r.getMessage() for r in caplog.records if r.getMessage().startswith("r8: held-out accuracy"))
    accuracy = float(line.split("accuracy ")[1].split(";")[0])
    assert abs(accuracy - dc.shipped_digits_classifier(8)[1]) <= 0.01


def test_readme_quotes_the_shipped_accuracies() -> None:
    from conftest import REPO

    readme = " ".join((REPO / "README.md").read_text().split())
    manifest = json.loads(dc.MANIFEST.read_text())["weights"]
    for r in dc.SHIPPED_RESOLUTIONS:
        assert f"{100 * manifest[str(r)]['held_out_accuracy']:.1f} % ({r}x{r})" in readme
