"""Datasets and extractors are declared once: the README's "Adding a dataset" example, registered as written,
goes through validation, preflight (look and fetch) and loading; the built-in declarations answer what the
kind-string switches used to."""

from __future__ import annotations

import functools
import hashlib
import operator
import re
from pathlib import Path
from typing import Annotated, Any, get_args

import numpy as np
import pytest
from conftest import REPO
from pydantic import Field, ValidationError, create_model

from study.contract.spec import study as study_module
from study.contract.spec.datasets import Cifar10Data, DatasetSpec, DigitsData, ImageFolderData
from study.contract.spec.study import StudySpec
from study.preflight import preflight
from trainables import data, metrics

TINY_NET = {"kind": "ddpm_unet", "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
            "attention_resolutions": [], "dropout": 0.0, "norm_groups": 4}  # fmt: skip


@pytest.fixture
def npy(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """The README block executed against a private copy of the registry; returns its names."""
    monkeypatch.setattr(data, "DATASETS", dict(data.DATASETS))
    text = (REPO / "README.md").read_text()
    found = re.search(r"### Adding a dataset.*?```python\n(.*?)```", text, re.S)
    assert found, "README.md lost its '### Adding a dataset' example"
    scope: dict[str, Any] = {"__name__": "readme_npy"}
    exec(compile(found.group(1), "README.md", "exec"), scope)
    return scope


def study_model(extra: type) -> type[StudySpec]:
    """StudySpec whose dataset union also holds ``extra``: what adding the model to ``DatasetSpec`` does."""
    union = functools.reduce(operator.or_, (*get_args(get_args(DatasetSpec)[0]), extra))
    dataset = (Annotated[union, Field(discriminator="kind")], Field(default_factory=DigitsData))
    model = create_model("ExtendedStudySpec", __base__=StudySpec, dataset=dataset)
    model.model_rebuild(_types_namespace=vars(study_module))  # StudySpec's own annotations are strings there
    return model


def study(model: type[StudySpec], dataset: dict, isc: dict, **extra: Any) -> StudySpec:
    return model.model_validate({
        "name": "toy", "dataset": dataset, "dynamics": {"kind": "ddpm", "timesteps": 10}, "network": TINY_NET,
        "training": {"epochs": 1}, **extra,
        "evaluation": {"num_samples": 10, "samplers": [{"kind": "ddim", "steps": 2}], "inception_score": isc},
    })  # fmt: skip


def test_readme_dataset_registers_validates_preflights_and_loads(
    npy: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = study_model(npy["NpyImages"])
    with pytest.raises(ValidationError):
        study(model, {"kind": "npy", "resolution": 2}, {})  # the spec model's own ranges
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"trusted test weights")
    monkeypatch.setenv(metrics.INCEPTION_SHA256_ENV, hashlib.sha256(weights.read_bytes()).hexdigest())
    inception = {"extractor": "inception-v3-compat", "weights_path": str(weights)}
    spec = study(model, {"kind": "npy", "resolution": 8}, inception, class_conditional=True)
    assert data.image_shape(spec.dataset) == (3, 8, 8)

    images, labels = tmp_path / "npy" / "images.npy", tmp_path / "npy" / "labels.npy"
    for fetch in (False, True):  # validate looks; run fetches (nothing to fetch here) and looks again
        problems = preflight(spec, tmp_path, tmp_path / "cache", fetch=fetch)
        how = "numpy.save the uint8 images [N, 3, 8, 8] and the labels [N] there"
        assert problems == [f"{images} is missing: {how}", f"{labels} is missing: {how}"]

    rng = np.random.default_rng(0)
    images.parent.mkdir()
    np.save(images, rng.integers(0, 256, (6, 3, 8, 8), dtype=np.uint8))
    np.save(labels, np.array([0, 1, 2, 0, 1, 2]))
    assert preflight(spec, tmp_path, tmp_path / "cache", fetch=False) == []
    assert preflight(spec, tmp_path, tmp_path / "cache", fetch=True) == []

    loaded = data.load_dataset(spec.dataset, tmp_path, tmp_path / "cache")
    x, y = loaded.train[4]
    assert (loaded.channels, loaded.resolution, loaded.num_classes, len(loaded.train)) == (3, 8, 3, 6)
    assert x.shape == (3, 8, 8) and -1.0 <= x.min() and x.max() <= 1.0 and y == 1
    assert loaded.key.startswith("npy-")
    assert loaded.key == data.load_dataset(spec.dataset, tmp_path, tmp_path / "cache").key

    digits_cnn = study(model, {"kind": "npy", "resolution": 8}, {"extractor": "digits-cnn"})
    assert preflight(digits_cnn, tmp_path, tmp_path / "cache") == [
        "the digits-cnn extractor only scores the digits dataset, not npy: "
        "set evaluation.inception_score.extractor: inception-v3-compat"
    ]
    with pytest.raises(ValueError, match="only scores the digits dataset, not npy"):
        metrics.extractor_decl("digits-cnn").prepare(digits_cnn, tmp_path / "cache")

    with pytest.raises(ValueError, match="already declared"):
        data.register_dataset(data.DatasetDecl("npy", npy["load_npy"], 1, lambda s, d: 0, lambda s: data.Footprint(0)))


def test_a_kind_without_declaration_is_a_clear_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = study(StudySpec, {"kind": "cifar10", "download": False}, {"extractor": "inception-v3-compat"})
    monkeypatch.setattr(data, "DATASETS", {k: v for k, v in data.DATASETS.items() if k != "cifar10"})
    problems = preflight(spec, tmp_path, tmp_path / "cache")
    assert problems[0] == "dataset kind 'cifar10' has no declaration in trainables.data.DATASETS"
    with pytest.raises(ValueError, match="no declaration"):
        data.load_dataset(spec.dataset, tmp_path, tmp_path / "cache")


def test_builtin_declarations() -> None:
    """Every spec model has a declaration and vice versa; shapes, classes and sizes as the datasets are."""
    kinds = {m.model_fields["kind"].default for m in get_args(get_args(DatasetSpec)[0])}
    assert kinds == set(data.DATASETS) == {"digits", "cifar10", "image_folder"}
    assert data.image_shape(DigitsData(resolution=8)) == (1, 8, 8)
    assert data.image_shape(Cifar10Data()) == (3, 32, 32)
    assert data.image_shape(ImageFolderData(root="x", resolution=64)) == (3, 64, 64)
    cifar = data.DATASETS["cifar10"].footprint(Cifar10Data())
    assert cifar.memory_bytes((3, 32, 32)) == 60_000 * 3072 and cifar.download_bytes == data.CIFAR10_TGZ_BYTES
    assert (
        data.DATASETS["image_folder"].footprint(ImageFolderData(root="x", resolution=8)).memory_bytes((3, 8, 8)) is None
    )
    assert data.DATASETS["digits"].classes(DigitsData(), Path(".")) == 10
    # the extractor names are the metric keys' extractor segment and torch-fidelity's registry names, and exactly
    # the names a spec may choose
    spec_names = set(get_args(study_module.InceptionScoreSpec.model_fields["extractor"].annotation))
    assert set(metrics.EXTRACTORS) == spec_names == {"digits-cnn", "digits-cnn-local", "inception-v3-compat"}
    assert metrics.EXTRACTORS["digits-cnn"].scores("digits") and not metrics.EXTRACTORS["digits-cnn"].scores("cifar10")
    assert metrics.EXTRACTORS["inception-v3-compat"].scores("npy")
    assert all(name in metrics.FEATURE_EXTRACTORS_REGISTRY for name in metrics.EXTRACTORS)


def test_metrics_cli_takes_the_declared_datasets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        metrics.main(["--dataset", "nope"])
    err = capsys.readouterr().err
    assert "invalid choice" in err and all(kind in err for kind in ("cifar10", "digits", "image_folder"))
