"""IS / FID / KID through torch-fidelity, offline: digits-cnn and a random-init Inception v3 weights file.

The Inception weights file made here has the real structure (torch-fidelity's ``FeatureExtractorInceptionV3``
state dict, 566 tensors, 95 MB) with random values, so the whole ``inception-v3-compat`` path runs on CPU with
no download. Inception at 299x299 costs about a second per image on 2 CPU cores: sample counts stay tiny.
"""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pytest
import torch
import torch_fidelity
from mlflow import MlflowClient
from test_data_real import make_cifar_archive, no_network  # noqa: F401  (no_network is an autouse fixture)
from torch.utils.data import Dataset, TensorDataset
from torch_fidelity import feature_extractor_inceptionv3 as fi

from trainables import metrics
from trainables.data import digits_tensors
from trainables.files import UnsafeFile
from trainables.metrics import (
    INCEPTION,
    INCEPTION_WEIGHTS_FILE,
    WeightsUnavailable,
    image_metrics,
    inception_score,
    reference_features,
    reference_uint8,
    to_uint8,
)
from trainables.scores import ScoreSettings


class Images(Dataset):
    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def direct(images: torch.Tensor, **kwargs: object) -> dict[str, float]:
    """torch-fidelity called directly, as a user would, on the same uint8 images."""
    return torch_fidelity.calculate_metrics(
        input1=Images(images), cuda=False, save_cpu_ram=True, verbose=False, batch_size=250, **kwargs
    )


@pytest.fixture(scope="session")
def inception_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init state dict of torch-fidelity's InceptionV3, saved like the real weights file."""
    with pytest.MonkeyPatch.context() as mp:
        # The constructor loads weights (downloading them when no path is given): skip exactly that step.
        mp.setattr(fi, "load_state_dict_from_url", lambda *a, **k: {})
        mp.setattr(fi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd, *a, **k: None)
        torch.manual_seed(0)
        net = fi.FeatureExtractorInceptionV3(INCEPTION, ["logits_unbiased"])
    state = net.state_dict()
    # Random BN statistics shrink the pool features to ~1e-8; scaling the classifier keeps softmax unsaturated
    # and away from uniform, so IS differs between image sets (with the raw random fc it is always 1.0).
    state["fc.weight"] = state["fc.weight"] * 1e9
    path = tmp_path_factory.mktemp("weights") / INCEPTION_WEIGHTS_FILE
    torch.save(state, path)
    return path


@pytest.fixture(autouse=True)
def _trust_the_test_weights(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The random test weights are not torch-fidelity's file: name their sha256 explicitly, as a user would."""
    if "inception_weights" in request.fixturenames:
        path: Path = request.getfixturevalue("inception_weights")
        monkeypatch.setenv(metrics.INCEPTION_SHA256_ENV, hashlib.sha256(path.read_bytes()).hexdigest())


@pytest.fixture(scope="module")
def tiny_cifar(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding ``cifar10/cifar-10-python.tar.gz`` with 4 images per batch."""
    data_dir = tmp_path_factory.mktemp("data")
    make_cifar_archive(data_dir / "cifar10", per_batch=4)
    return data_dir


def test_weights_file_has_the_real_structure(inception_weights: Path) -> None:
    state = torch.load(inception_weights, weights_only=False)
    assert len(state) == 566 and state["fc.weight"].shape == (1008, 2048)
    assert state["Conv2d_1a_3x3.conv.weight"].shape == (32, 3, 3, 3)


def test_digits_metrics_are_torch_fidelitys(classifier_r8, tmp_path: Path) -> None:
    weights = str(classifier_r8[0])
    tx, ty, hx, _ = digits_tensors(resolution=8)
    samples = to_uint8(hx[:200])
    for shuffle in (True, False):
        ours = inception_score(samples, "digits-cnn", weights, splits=5, shuffle=shuffle)
        theirs = direct(samples, isc=True, isc_splits=5, samples_shuffle=shuffle, feature_extractor="digits-cnn",
                        feature_extractor_weights_path=weights)  # fmt: skip
        assert (ours.mean, ours.std) == (theirs["inception_score_mean"], theirs["inception_score_std"])
    assert ours.mean > 5  # real digits under the digits classifier

    train = TensorDataset(tx, ty)
    ref = reference_features(train, "digits-test", "digits-cnn", weights, tmp_path)
    settings = ScoreSettings(splits=5, bootstrap=0, infinity_points=0, kid_subset_size=100, reference=ref)
    ours = image_metrics(samples, "digits-cnn", weights, ("fid", "kid", "precision", "recall"), settings)
    theirs = direct(
        samples, input2=Images(reference_uint8(train)), isc=True, fid=True, kid=True, prc=True, isc_splits=5,
        kid_subset_size=100, feature_extractor="digits-cnn", feature_extractor_weights_path=weights,
    )  # fmt: skip
    # generated = input1, real = input2 (torch-fidelity >= 0.4.0)
    assert (ours.scores["precision"]["mean"], ours.scores["recall"]["mean"]) == (theirs["precision"], theirs["recall"])
    assert ours.is_mean == theirs["inception_score_mean"]
    assert ours.scores["fid"]["value"] == pytest.approx(theirs["frechet_inception_distance"], rel=1e-12, abs=1e-9)
    assert (ours.scores["kid"]["mean"], ours.scores["kid"]["std"]) == (
        theirs["kernel_inception_distance_mean"],
        theirs["kernel_inception_distance_std"],
    )
    noise = to_uint8(torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1)
    worse = image_metrics(noise, "digits-cnn", weights, ("fid",), settings)
    assert worse.scores["fid"]["value"] > ours.scores["fid"]["value"] and "kid" not in worse.scores


def test_reference_features_are_cached_on_disk(classifier_r8, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights = str(classifier_r8[0])
    tx, ty, _, _ = digits_tensors(resolution=8)
    first = reference_features(TensorDataset(tx, ty), "digits-cache", "digits-cnn", weights, tmp_path, 300)
    assert first.features.shape == (300, 128) and first.path.is_file() and first.path.parent == tmp_path / "reference"
    metrics._REFERENCES.clear()  # a new process: only the file is left

    def no_extraction(*args: object, **kwargs: object) -> None:
        raise AssertionError("reference features recomputed although cached")

    monkeypatch.setattr(metrics, "extract_features", no_extraction)
    again = reference_features(TensorDataset(tx, ty), "digits-cache", "digits-cnn", weights, tmp_path, 300)
    assert torch.equal(first.features, again.features)


def test_inception_is_matches_torch_fidelity_with_local_weights(inception_weights: Path, tiny_cifar: Path) -> None:
    from study.contract.spec.datasets import Cifar10Data
    from trainables.data import load_dataset

    images = load_dataset(Cifar10Data(), tiny_cifar, tiny_cifar / "cache").train.images[:6]
    ours = inception_score(images, INCEPTION, inception_weights, splits=2, shuffle=False)
    theirs = direct(images, isc=True, isc_splits=2, samples_shuffle=False, feature_extractor=INCEPTION,
                    feature_extractor_weights_path=str(inception_weights))  # fmt: skip
    assert (ours.mean, ours.std) == (theirs["inception_score_mean"], theirs["inception_score_std"])
    assert ours.mean > 1.01  # the random classifier is not flat: the numbers are not trivially equal


def test_missing_inception_weights_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("torch-fidelity was allowed to start a download")

    monkeypatch.setattr(fi, "load_state_dict_from_url", no_download)
    hub = tmp_path / "torch" / "hub" / "checkpoints"
    images = torch.zeros(4, 3, 32, 32, dtype=torch.uint8)
    with pytest.raises(WeightsUnavailable) as err:
        inception_score(images, INCEPTION, None, splits=2)
    msg = str(err.value)
    assert INCEPTION_WEIGHTS_FILE in msg and str(hub / INCEPTION_WEIGHTS_FILE) in msg and "weights_path" in msg
    assert metrics.INCEPTION_WEIGHTS_URL in msg
    with pytest.raises(WeightsUnavailable, match="configured weights_path .*nothere.pth does not exist"):
        inception_score(images, INCEPTION, tmp_path / "nothere.pth", splits=2)
    with pytest.raises(WeightsUnavailable, match="download failed"):  # the driver's download, with no network
        metrics.ensure_inception_weights(None, allow_download=True)
    assert not hub.exists() or not any(hub.iterdir())  # no partial file
    monkeypatch.setenv("STUDY_OFFLINE", "1")
    with pytest.raises(WeightsUnavailable, match="STUDY_OFFLINE"):
        metrics.ensure_inception_weights(None, allow_download=True)

    hub.mkdir(parents=True, exist_ok=True)
    (hub / INCEPTION_WEIGHTS_FILE).write_bytes(b"x")  # torch hub's cached copy is found without configuration
    assert metrics.find_inception_weights(None) == hub / INCEPTION_WEIGHTS_FILE
    with pytest.raises(UnsafeFile, match=f"refused to load the Inception weights {hub / INCEPTION_WEIGHTS_FILE}"):
        metrics.resolve_inception_weights(None)  # ... but only used when it is torch-fidelity's file
    monkeypatch.setenv(metrics.INCEPTION_SHA256_ENV, hashlib.sha256(b"x").hexdigest())
    assert metrics.resolve_inception_weights(None) == hub / INCEPTION_WEIGHTS_FILE


def test_micro_study_on_tiny_cifar_logs_inception_metrics(
    inception_weights: Path, tiny_cifar: Path, tmp_path: Path
) -> None:
    """One trial (no Ray) on the tiny archive: train 1 epoch, DDIM 2 steps, 20 samples, IS + FID + KID."""
    from study.contract.spec.load import expand
    from study.runner import prepare_extractor
    from trainables.trainable import LocalSession, Runtime, run_trial

    isc = {"extractor": INCEPTION, "splits": 2, "shuffle": False, "weights_path": str(inception_weights),
           "extra_metrics": ["fid", "kid"], "reference_samples": 4}  # fmt: skip
    spec = {
        "name": "cifar-micro",
        "dataset": {"kind": "cifar10", "download": False},
        "dynamics": {"kind": "ddpm", "timesteps": 50},
        "network": {"kind": "ddpm_unet", "channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1,
                    "attention_resolutions": [], "dropout": 0.0, "norm_groups": 4},
        "training": {"epochs": 1, "batch_size": 8, "lr": 1e-3, "eval_every": 1},
        "evaluation": {"num_samples": 20, "batch_size": 20, "grid_images": 4,
                       "samplers": [{"kind": "ddim", "steps": 2}], "inception_score": isc},
    }  # fmt: skip
    base, trials = expand(spec)
    weights, _ = prepare_extractor(base, tmp_path / "cache")
    assert weights == str(inception_weights.resolve())

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    eid = client.create_experiment("cifar-micro", artifact_location=str(tmp_path / "artifacts"))
    parent = client.create_run(eid).info.run_id
    runtime = Runtime(uri, eid, parent, uuid.uuid4().hex[:8], "cifar-micro", str(tiny_cifar), str(tmp_path / "cache"),
                      extractor_weights=weights, log_images=True)  # fmt: skip
    t = trials[0]
    assert run_trial(t, runtime, LocalSession(tmp_path / "ckpt")) == "finished"

    (run,) = client.search_runs([eid], f"tags.`study.instance` = '{runtime.instance}'")
    m = run.data.metrics
    stem = f"{INCEPTION}/n20/ddim-2"
    assert m[f"is/{stem}/mean"] >= 1.0 and m[f"is/{stem}/std"] >= 0.0
    assert m[f"fid/{stem}/value"] > 0 and f"kid/{stem}/mean" in m and f"kid/{stem}/std" in m
    assert m[f"is/{stem}/ci_low"] <= m[f"is/{stem}/mean"] <= m[f"is/{stem}/ci_high"] and f"is/{stem}/inf" in m
    assert [x.step for x in client.get_metric_history(run.info.run_id, f"is/{stem}/mean")] == [1]
    assert len(list((tmp_path / "cache" / "reference").glob(f"cifar10-train-r32-*-n4-{INCEPTION}-*-2048.pt"))) == 1


def test_reference_is_command(inception_weights: Path, tiny_cifar: Path, capsys: pytest.CaptureFixture) -> None:
    """``python -m trainables.metrics``: the command that reproduces CIFAR10's 11.24 with the real weights."""
    argv = ["--data-dir", str(tiny_cifar), "--weights", str(inception_weights), "--splits", "2", "--no-shuffle",
            "--num-samples", "4"]  # fmt: skip
    assert metrics.main(argv) == 0
    out = capsys.readouterr().out
    assert f"IS ({INCEPTION}, 4 cifar10 training images, 2 splits, shuffle=False):" in out
