"""Nothing the harness reads from disk can run code: a crafted pickle planted in each place it deserialises is refused
with an error naming the file, and its payload (creating a marker file) never runs.

Places: a trial checkpoint (through ``run_trial``'s restore), the cached digits classifier, the cached noisy
classifier, a prepared image-folder cache, a CIFAR10 batch, and Inception weights named by ``weights_path``.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from study.spec.datasets import Cifar10Data, ImageFolderData
from trainables import data
from trainables.digits_classifier import load_digits_classifier
from trainables.files import UntrustedFile, load_tensors
from trainables.metrics import INCEPTION, WeightsUnavailable, feature_extractor, verify_inception_weights


class Payload:
    """Unpickling this creates ``marker``: what an attacker's ``os.system`` would be."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self) -> tuple:
        return (open, (self.marker, "w"))


def _plant(path: Path, marker: Path, torch_format: bool = True) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    content = {"state_dict": {"w": torch.zeros(2)}, "epoch": 3, "evil": Payload(marker)}
    if torch_format:
        torch.save(content, path)
    else:
        path.write_bytes(pickle.dumps(content, protocol=2))
    return path


def test_the_payload_really_runs_when_unpickled_unsafely(tmp_path: Path) -> None:
    """The control: the same file does create the marker through an unrestricted load (so the refusals count)."""
    marker = tmp_path / "pwned"
    torch.load(_plant(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()


def test_checkpoints_and_caches_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for name in ("state.pt", "digits-cnn-r8.pt", "noisy-classifier-abc.pt", "image_folder/x-r8.pt"):
        path = _plant(tmp_path / name, marker)
        with pytest.raises(UntrustedFile, match=str(path)):
            load_tensors(path)
    with pytest.raises(UntrustedFile, match="digits-cnn-r8.pt"):
        load_digits_classifier(tmp_path / "digits-cnn-r8.pt")
    assert not marker.exists()


def test_a_planted_checkpoint_stops_the_trial_before_it_runs(tmp_path: Path, classifier_r8) -> None:
    from conftest import micro_spec

    from study.memory_backend import MemoryTracker
    from study.spec.load import expand
    from trainables.trainable import CHECKPOINT_FILE, LocalSession, Runtime, run_trial

    marker = tmp_path / "pwned"
    _plant(tmp_path / "ckpt" / CHECKPOINT_FILE, marker)
    _, trials = expand(micro_spec())
    runtime = Runtime("memory:", "1", "parent", "inst", "micro", str(tmp_path), str(classifier_r8[0]), False)
    with pytest.raises(UntrustedFile, match=CHECKPOINT_FILE):
        run_trial(trials[0], runtime, LocalSession(tmp_path / "ckpt"), tracker=MemoryTracker())
    assert not marker.exists()


def test_a_planted_image_folder_cache_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * i, dtype=np.uint8)).save(folder / f"{i}.png")
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "cache"))
    spec = ImageFolderData(root=str(folder), resolution=8)
    _, cache = data.prepare_image_folder(spec, tmp_path)
    marker = tmp_path / "pwned"
    _plant(cache, marker)
    with pytest.raises(UntrustedFile, match=cache.name):
        data.prepare_image_folder(spec, tmp_path)
    assert not marker.exists()


def test_a_planted_cifar10_batch_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / data.CIFAR10_FOLDER
    marker = tmp_path / "pwned"
    for name in data.CIFAR10_TRAIN:
        _plant(folder / name, marker, torch_format=False)
    with pytest.raises(UntrustedFile, match="data_batch_"):
        data.load_cifar10_data(Cifar10Data(download=False), tmp_path)
    assert not marker.exists()


def test_untrusted_inception_weights_are_refused_before_torch_fidelity_loads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("STUDY_INCEPTION_SHA256", raising=False)
    marker = tmp_path / "pwned"
    weights = _plant(tmp_path / "inception.pth", marker)
    with pytest.raises(WeightsUnavailable, match="sha256"):
        feature_extractor(INCEPTION, ("logits_unbiased",), str(weights))
    assert not marker.exists()
    import hashlib

    monkeypatch.setenv("STUDY_INCEPTION_SHA256", hashlib.sha256(weights.read_bytes()).hexdigest())
    assert verify_inception_weights(weights) == weights  # trusted explicitly: the user's own choice
