"""Issue 11 item 3 (data parts): a crafted pickle planted where the harness reads a cached classifier, prepared
data, a CIFAR10 batch or the Inception weights is refused with an error naming the file, and its payload (create
a file, via ``__reduce__``) never runs."""

from __future__ import annotations

import pickle
import tarfile
from pathlib import Path

import pytest
import torch
from test_data_real import _study_dict, make_cifar_archive, no_network  # noqa: F401  (no_network is an autouse fixture)
from torch.utils.data import TensorDataset

from study.contract.spec.datasets import Cifar10Data, ImageFolderData
from study.contract.spec.networks import NoisyClassifier
from trainables import data, metrics
from trainables.digits_classifier import load_digits_classifier
from trainables.files import UnsafeFile
from trainables.guidance import load_classifier


class Payload:
    """Unpickling this calls ``open(marker, "w")``: the file appearing proves code ran."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self) -> tuple:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def marker(tmp_path: Path) -> Path:
    """The payload's target; the payload is shown to be live (it does create a file when unpickled naively)."""
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(Payload(control))).close()
    assert control.exists()
    return tmp_path / "pwned"


def plant_checkpoint(path: Path, marker: Path) -> Path:
    """A torch checkpoint in the shape the loader expects, with the payload inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "resolution": 8, "evil": Payload(marker)}, path)
    return path


def test_cached_classifiers_are_refused(tmp_path: Path, marker: Path) -> None:
    digits = plant_checkpoint(tmp_path / "cache" / "digits-cnn-r8-h0.25-s0-e20.pt", marker)
    with pytest.raises(UnsafeFile, match=f"refused to load {digits}: it holds more than tensors"):
        load_digits_classifier(digits)
    noisy = plant_checkpoint(tmp_path / "cache" / "noisy-classifier-k.pt", marker)
    net = NoisyClassifier(channels=8, channel_mult=(1, 2), num_res_blocks=1, attention_resolutions=(),
                          head_channels=16, norm_groups=4)  # fmt: skip
    with pytest.raises(UnsafeFile, match=f"refused to load {noisy}"):
        load_classifier(noisy, net, 1, 8, 10)
    assert not marker.exists()


def test_prepared_data_is_refused(tmp_path: Path, marker: Path) -> None:
    from PIL import Image

    root = tmp_path / "folder"
    root.mkdir()
    Image.new("RGB", (8, 8)).save(root / "0.png")
    spec = ImageFolderData(root=str(root), resolution=8)
    files, _, _ = data.list_image_folder(spec, root)
    prepared = plant_checkpoint(data.image_folder_cache_path(spec, root, files, tmp_path / "cache"), marker)
    with pytest.raises(UnsafeFile, match=f"refused to load {prepared}"):
        data.load_dataset(spec, tmp_path, tmp_path / "cache")

    reference = tmp_path / "cache" / "reference" / "toy-n4-digits-cnn-wnone-128.pt"
    plant_checkpoint(reference, marker)
    images = TensorDataset(torch.zeros(4, 1, 8, 8), torch.zeros(4, dtype=torch.long))
    with pytest.raises(UnsafeFile, match=f"refused to load {reference}"):
        metrics.reference_features(images, "toy", "digits-cnn", None, tmp_path / "cache")
    assert not marker.exists()


@pytest.mark.parametrize("layout", ["archive", "folder"])
def test_cifar10_batches_are_refused(tmp_path: Path, marker: Path, layout: str) -> None:
    root = tmp_path / "cifar10"
    archive, _ = make_cifar_archive(root)
    folder = root / data.CIFAR10_FOLDER
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    evil = {"data": Payload(marker), "labels": [0]}
    (folder / "data_batch_3").write_bytes(pickle.dumps(evil, protocol=2))
    if layout == "archive":
        archive.unlink()
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(folder, arcname=data.CIFAR10_FOLDER)
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
        where = f"{archive}:{data.CIFAR10_FOLDER}/data_batch_3"
    else:
        where = str(folder / "data_batch_3")
    with pytest.raises(UnsafeFile, match=f"refused to unpickle {where}: it is not the official CIFAR10 data_batch_3"):
        data.load_dataset(Cifar10Data(download=False), tmp_path, tmp_path / "cache")
    assert not marker.exists()


def test_cifar10_official_md5s_are_torchvisions() -> None:
    from torchvision.datasets import CIFAR10

    official = dict(CIFAR10.train_list + CIFAR10.test_list) | {CIFAR10.meta["filename"]: CIFAR10.meta["md5"]}
    assert data.CIFAR10_MEMBER_MD5 == official


def test_inception_weights_are_hash_checked_before_unpickling(
    tmp_path: Path, marker: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from study.contract.spec.study import StudySpec
    from study.preflight import preflight
    from study.runner import StudyError, prepare_extractor

    weights = plant_checkpoint(tmp_path / metrics.INCEPTION_WEIGHTS_FILE, marker)
    images = torch.zeros(2, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(UnsafeFile, match=f"refused to load the Inception weights {weights}: sha256 [0-9a-f]{{64}} is "
                       f"not the expected {metrics.INCEPTION_WEIGHTS_SHA256}"):  # fmt: skip
        metrics.inception_score(images, metrics.INCEPTION, weights, splits=1)
    isc = {"extractor": "inception-v3-compat", "weights_path": str(weights)}
    spec = StudySpec.model_validate(_study_dict(tmp_path, {"kind": "cifar10", "download": False}, isc))
    problems = preflight(spec, tmp_path, tmp_path / "cache")
    assert any(f"refused to load the Inception weights {weights}" in p for p in problems)
    with pytest.raises(StudyError, match="refused to load the Inception weights"):
        prepare_extractor(spec, tmp_path / "cache")
    assert not marker.exists()

    monkeypatch.setenv(metrics.INCEPTION_SHA256_ENV, "not-a-hash")  # an override must be a real sha256
    with pytest.raises(ValueError, match="must be 64 hex digits"):
        metrics.resolve_inception_weights(weights)


def test_a_planted_trial_checkpoint_stops_the_trial_before_it_runs(tmp_path: Path, marker: Path, classifier_r8) -> None:
    """The trial's own checkpoint (``state.pt``, restored by ``run_trial``) goes through the same refusal."""
    from conftest import micro_spec

    from study.contract.memory_backend import MemoryTracker
    from study.contract.spec.load import expand
    from trainables.trainable import CHECKPOINT_FILE, LocalSession, Runtime, run_trial

    plant_checkpoint(tmp_path / "ckpt" / CHECKPOINT_FILE, marker)
    _, trials = expand(micro_spec())
    runtime = Runtime("memory:", "1", "parent", "inst", "micro", str(tmp_path), str(tmp_path / "cache"),
                      extractor_weights=str(classifier_r8[0]), log_images=False)  # fmt: skip
    with pytest.raises(UnsafeFile, match=CHECKPOINT_FILE):
        run_trial(trials[0], runtime, LocalSession(tmp_path / "ckpt"), tracker=MemoryTracker())
    assert not marker.exists()
