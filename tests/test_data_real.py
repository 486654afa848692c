"""Real-dataset loaders on files made here in the official formats, with the network blocked.

CIFAR10: a tiny archive with the official layout (python pickles ``data_batch_1..5``, ``test_batch`` and
``batches.meta`` inside ``cifar-10-batches-py/``, tar.gz'ed). Image folders: flat and class sub-folders of
PNG/JPEG files of odd sizes. The offline error paths must name the exact file and place.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import socket
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_spec
from PIL import Image

from study.contract.spec.study import StudySpec
from trainables import data
from trainables.data import DatasetUnavailable, image_shape, load_dataset

TINY_NET = {"kind": "ddpm_unet", "channels": 8, "channel_mult": [1], "attention_resolutions": [], "norm_groups": 4}
INCEPTION_EVAL = {"samplers": [{"kind": "ddim", "steps": 2}], "inception_score": {"extractor": "inception-v3-compat"}}
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


class _NoNetwork(OSError):
    pass


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refuse every AF_INET/AF_INET6 socket and name lookup; AF_UNIX (DataLoader workers, Ray) stays usable."""
    real_socket = socket.socket

    class GuardedSocket(real_socket):
        def __init__(self, family: int = -1, type: int = -1, proto: int = -1, fileno: int | None = None):
            if fileno is None and family in (-1, socket.AF_INET, socket.AF_INET6):
                raise _NoNetwork("network access is blocked in tests")
            super().__init__(family, type, proto, fileno)

    def refuse(*args: object, **kwargs: object) -> None:
        raise _NoNetwork("network access is blocked in tests")

    monkeypatch.setattr(socket, "socket", GuardedSocket)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def make_cifar_archive(root: Path, per_batch: int = 4, seed: int = 0) -> tuple[Path, dict[str, dict]]:
    """``root/cifar-10-python.tar.gz`` in the official layout; returns (archive, {member: content})."""
    rng = np.random.default_rng(seed)
    staging = root / "_staging" / data.CIFAR10_FOLDER
    staging.mkdir(parents=True)
    members: dict[str, dict] = {}
    for name in (*data.CIFAR10_TRAIN, data.CIFAR10_TEST):
        members[name] = {
            "batch_label": f"{name} of 1",
            "labels": [int(v) for v in rng.integers(0, 10, per_batch)],
            "data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            "filenames": [f"img_{name}_{i}.png" for i in range(per_batch)],
        }
    members[data.CIFAR10_META] = {"num_cases_per_batch": per_batch, "label_names": CLASSES, "num_vis": 3072}
    for name, content in members.items():
        (staging / name).write_bytes(pickle.dumps(content, protocol=2))
    root.mkdir(parents=True, exist_ok=True)
    archive = root / data.CIFAR10_ARCHIVE
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(staging, arcname=data.CIFAR10_FOLDER)
    for f in staging.iterdir():
        f.unlink()
    staging.rmdir()
    staging.parent.rmdir()
    return archive, members


def cifar_spec(**fields: object) -> object:
    return StudySpec.model_validate(
        {
            "name": "c",
            "dataset": {"kind": "cifar10", **fields},
            "dynamics": {"kind": "ddpm", "timesteps": 10},
            "network": TINY_NET,
            "training": {"epochs": 1},
            "evaluation": {
                "samplers": [{"kind": "ddim", "steps": 2}],
                "inception_score": {"extractor": "inception-v3-compat"},
            },
        }
    ).dataset


def test_network_is_blocked() -> None:
    with pytest.raises(OSError):
        urllib.request.urlopen("https://www.cs.toronto.edu/", timeout=5)
    a, b = socket.socketpair(socket.AF_UNIX)  # local sockets still work
    a.close(), b.close()


def test_cifar10_archive_is_read_with_labels_and_pixel_layout(tmp_path: Path) -> None:
    _, members = make_cifar_archive(tmp_path / "cifar10")
    spec = cifar_spec()
    d = load_dataset(spec, tmp_path, tmp_path / "cache")
    assert (d.name, d.channels, d.resolution, d.num_classes) == ("cifar10", 3, 32, 10)
    assert image_shape(spec) == (3, 32, 32) and len(d.train) == 20 and len(d.held_out) == 4
    x, y = d.train[5]  # the second image of data_batch_2
    raw = members["data_batch_2"]["data"][1]
    assert y == members["data_batch_2"]["labels"][1] and x.dtype == torch.float32 and x.shape == (3, 32, 32)
    assert float(x[1, 2, 3]) == pytest.approx(raw[1 * 1024 + 2 * 32 + 3] / 127.5 - 1)  # channel-major rows
    assert x.min() >= -1 and x.max() <= 1
    assert d.train.images.dtype == torch.uint8  # held as uint8 in memory
    assert d.key == load_dataset(spec, tmp_path, tmp_path / "cache").key and d.key.startswith("cifar10-train-r32-")


def test_cifar10_extracted_folder_and_explicit_root(tmp_path: Path) -> None:
    archive, members = make_cifar_archive(tmp_path / "elsewhere")
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path / "elsewhere", filter="data")
    archive.unlink()
    d = load_dataset(cifar_spec(root=str(tmp_path / "elsewhere"), download=False), tmp_path / "unused", tmp_path)
    assert torch.equal(d.train.images[0].flatten(), torch.from_numpy(members["data_batch_1"]["data"][0]))
    d2 = load_dataset(cifar_spec(root="elsewhere"), tmp_path, tmp_path / "cache")  # relative to the data directory
    assert torch.equal(d.train.images, d2.train.images)


def test_torchvision_integrity_check_rejects_a_user_made_archive(tmp_path: Path) -> None:
    """Why the loader reads the pickles itself: torchvision compares every file with the official md5."""
    from torchvision.datasets import CIFAR10

    archive, _ = make_cifar_archive(tmp_path)
    with tarfile.open(archive) as tar:
        tar.extractall(tmp_path, filter="data")
    with pytest.raises(RuntimeError, match="not found or corrupted"):
        CIFAR10(str(tmp_path), train=True, download=False)


def test_cifar10_missing_offline_names_url_and_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = f"download {data.CIFAR10_URL} and place it at {tmp_path / 'cifar10' / 'cifar-10-python.tar.gz'}"
    with pytest.raises(DatasetUnavailable) as err:  # download allowed: it is tried, fails, and says why
        load_dataset(cifar_spec(), tmp_path, tmp_path / "cache")
    assert expected in str(err.value) and "download failed" in str(err.value)
    assert not list((tmp_path / "cifar10").glob("*"))  # no partial file left behind
    with pytest.raises(DatasetUnavailable, match="place it at") as err:
        load_dataset(cifar_spec(download=False), tmp_path, tmp_path / "cache")
    assert expected in str(err.value)
    monkeypatch.setenv("STUDY_OFFLINE", "1")
    with pytest.raises(DatasetUnavailable, match="STUDY_OFFLINE") as err:
        load_dataset(cifar_spec(), tmp_path, tmp_path / "cache")
    assert expected in str(err.value)


def _save(img: Image.Image, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _wide_image(colour: tuple[int, int, int], size: tuple[int, int] = (40, 20)) -> Image.Image:
    """A centre square of ``colour`` with blue side bands that centre-cropping must remove."""
    img = Image.new("RGB", size, (0, 0, 255))
    w, h = size
    img.paste(Image.new("RGB", (h, h), colour), ((w - h) // 2, 0))
    return img


def folder_spec(root: Path, **fields: object) -> object:
    spec = {"kind": "image_folder", "root": str(root), "resolution": 8, **fields}
    return StudySpec.model_validate(
        {
            "name": "f", "dataset": spec, "dynamics": {"kind": "ddpm", "timesteps": 10},
            "network": TINY_NET,
            "training": {"epochs": 1},
            "evaluation": INCEPTION_EVAL,
        }
    ).dataset  # fmt: skip


def test_image_folder_flat_resizes_and_centre_crops(tmp_path: Path) -> None:
    root = tmp_path / "ffhq"
    _save(_wide_image((255, 0, 0)), root / "a.png")
    _save(_wide_image((0, 255, 0), (20, 30)).convert("L").convert("RGB"), root / "b.jpg")  # tall, grey JPEG
    _save(Image.new("RGB", (8, 8), (10, 20, 30)), root / "c.jpeg")
    (root / "notes.txt").write_text("not an image")
    d = load_dataset(folder_spec(root, filter="box"), tmp_path, tmp_path / "cache")
    assert (len(d.train), d.channels, d.resolution, d.num_classes) == (3, 3, 8, 0)
    img = d.train.images[0]
    assert img.shape == (3, 8, 8) and img[0].min() == 255 and img[2].max() == 0  # side bands cropped away
    assert torch.equal(d.train.images[2], torch.tensor([10, 20, 30], dtype=torch.uint8).view(3, 1, 1).expand(3, 8, 8))
    assert d.train[1][1] == 0 and d.train[0][0].shape == (3, 8, 8)


def test_image_folder_class_subfolders_give_labels(tmp_path: Path) -> None:
    root = tmp_path / "imagenet"
    for cls, colour in (("n02", (0, 0, 200)), ("n01", (200, 0, 0))):
        for i in range(2):
            _save(Image.new("RGB", (12, 10), colour), root / cls / f"{i}.JPEG")
    d = load_dataset(folder_spec(root), tmp_path, tmp_path / "cache")
    assert d.num_classes == 2 and [d.train[i][1] for i in range(4)] == [0, 0, 1, 1]  # n01 sorts first
    assert d.train.images[0][0].float().mean() > 150
    assert load_dataset(folder_spec(root, labels="none"), tmp_path, tmp_path / "cache").num_classes == 0
    _save(Image.new("RGB", (8, 8)), root / "stray.png")
    with pytest.raises(ValueError, match="mixes images"):
        load_dataset(folder_spec(root), tmp_path, tmp_path / "cache")


def test_image_folder_cache_is_reused_and_invalidated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "faces"
    for i in range(3):
        _save(Image.new("RGB", (16, 16), (i * 40, 0, 0)), root / f"{i}.png")
    first = load_dataset(folder_spec(root), tmp_path, tmp_path / "cache")
    cached = list((tmp_path / "cache" / "image_folder").glob("*.pt"))
    assert len(cached) == 1

    def no_decode(*args: object) -> None:
        raise AssertionError("decoded again although the prepared tensor is cached")

    monkeypatch.setattr(data, "decode_image", no_decode)
    second = load_dataset(folder_spec(root), tmp_path, tmp_path / "cache")
    assert torch.equal(first.train.images, second.train.images) and first.key == second.key

    monkeypatch.undo()
    _save(Image.new("RGB", (16, 16), (255, 255, 255)), root / "1.png")  # changed file -> new cache entry
    os.utime(root / "1.png", ns=(1, 1))
    third = load_dataset(folder_spec(root), tmp_path, tmp_path / "cache")
    assert third.train.images[1].min() == 255 and third.key != first.key
    other = load_dataset(folder_spec(root, resolution=4), tmp_path, tmp_path / "cache")  # resolution is part of the key
    assert other.train.images.shape[-1] == 4
    assert len(list((tmp_path / "cache" / "image_folder").glob("*.pt"))) == 3


def test_image_folder_missing_is_reported(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable, match="does not exist"):
        load_dataset(folder_spec(tmp_path / "nowhere"), tmp_path, tmp_path / "cache")


def test_dataset_spec_union_is_strict() -> None:
    from pydantic import TypeAdapter, ValidationError

    from study.contract.spec.datasets import DatasetSpec

    ta = TypeAdapter(DatasetSpec)
    assert ta.validate_python({"kind": "cifar10"}).root is None
    assert ta.validate_python({"kind": "image_folder", "root": "ffhq", "resolution": 64}).filter == "lanczos"
    with pytest.raises(ValidationError, match="resolutoin"):
        ta.validate_python({"kind": "cifar10", "resolutoin": 32})
    with pytest.raises(ValidationError):
        ta.validate_python({"kind": "image_folder", "resolution": 64})  # root is required


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "digits", "held_out_fraction": float("nan")},
        {"kind": "digits", "held_out_fraction": float("inf")},
        {"kind": "digits", "held_out_fraction": 1.0},
        {"kind": "digits", "split_seed": True},
        {"kind": "digits", "split_seed": -1},
        {"kind": "digits", "split_seed": 2**32},
        {"kind": "digits", "resolution": 64},
        {"kind": "cifar10", "resolution": 64},
        {"kind": "cifar10", "root": ""},
        {"kind": "cifar10", "root": "x" * 5000},
        {"kind": "cifar10", "download": "yes"},
        {"kind": "image_folder", "root": "f", "resolution": 100_000},
        {"kind": "image_folder", "root": "f", "resolution": True},
        {"kind": "image_folder", "root": "f", "resolution": 64.5},
        {"kind": "image_folder", "root": "f", "resolution": 64, "max_images": 10**29},
        {"kind": "image_folder", "root": "f", "resolution": 64, "max_images": 0},
        {"kind": "image_folder", "root": "f", "resolution": 64, "max_images": True},
        {"kind": "image_folder", "root": "f", "resolution": 64, "extensions": []},
        {"kind": "image_folder", "root": "f", "resolution": 64, "extensions": ["png"] * 33},
        {"kind": "image_folder", "root": "f", "resolution": 64, "extensions": ["../*"]},
    ],
)
def test_dataset_fields_have_sane_ranges(fields: dict) -> None:
    from pydantic import TypeAdapter, ValidationError

    from study.contract.spec.datasets import DatasetSpec

    with pytest.raises(ValidationError):
        TypeAdapter(DatasetSpec).validate_python(fields)
    valid = {"digits": {}, "cifar10": {}, "image_folder": {"root": "f", "resolution": 64}}[fields["kind"]]
    TypeAdapter(DatasetSpec).validate_python({"kind": fields["kind"], **valid})  # only the one field is wrong


def _study_dict(tmp_path: Path, dataset: dict, isc: dict) -> dict:
    return {
        "name": "preflight",
        "dataset": dataset,
        "dynamics": {"kind": "ddpm", "timesteps": 10},
        "network": TINY_NET,
        "training": {"epochs": 1},
        "evaluation": {"num_samples": 10, "samplers": [{"kind": "ddim", "steps": 2}], "inception_score": isc},
        "tracking": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    }


def test_validate_warns_and_run_stops_before_trials(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    from study.cli import main

    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = write_spec(
        tmp_path / "s.yaml", _study_dict(tmp_path, {"kind": "cifar10"}, {"extractor": "inception-v3-compat"})
    )
    assert main(["validate", str(spec)]) == 0
    err = capsys.readouterr().err
    assert f"place it at {tmp_path / 'data' / 'cifar10' / 'cifar-10-python.tar.gz'}" in err
    assert "weights-inception-2015-12-05-6726825d.pth" in err and str(tmp_path / "torch" / "hub" / "checkpoints") in err

    assert main(["run", str(spec), "--storage", str(tmp_path / "studies")]) == 2  # Ray is never started
    err = capsys.readouterr().err
    assert "cannot start" in err and "download failed" in err and "weights-inception" in err
    assert not (tmp_path / "studies" / "preflight" / "tune").exists()

    make_cifar_archive(tmp_path / "data" / "cifar10")
    weights = tmp_path / "w.pth"
    weights.write_bytes(b"")  # existence and the hash are what preflight checks
    spec2 = write_spec(
        tmp_path / "s2.yaml",
        _study_dict(tmp_path, {"kind": "cifar10"}, {"extractor": "inception-v3-compat", "weights_path": str(weights)}),
    )
    assert main(["validate", str(spec2)]) == 0
    assert f"refused to load the Inception weights {weights}: sha256" in capsys.readouterr().err
    monkeypatch.setenv("STUDY_INCEPTION_SHA256", hashlib.sha256(b"").hexdigest())  # trusted explicitly
    assert main(["validate", str(spec2)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_preflight_flags_extractor_dataset_mismatch_and_unlabelled_conditioning(tmp_path: Path) -> None:
    from study.preflight import preflight

    root = tmp_path / "flat"
    _save(Image.new("RGB", (8, 8)), root / "0.png")
    d = _study_dict(tmp_path, {"kind": "image_folder", "root": str(root), "resolution": 8}, {"extractor": "digits-cnn"})
    d["class_conditional"] = True
    problems = preflight(StudySpec.model_validate(d), tmp_path, tmp_path / "cache", fetch=True)
    assert any("needs labels" in p for p in problems) and any("only scores the digits" in p for p in problems)
