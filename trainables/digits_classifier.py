"""The embedded default's IS feature extractor: a small CNN trained on the digits training split.

The Inception network knows nothing about 8x8 grey digits, so on the embedded default the Inception Score is
computed with this classifier's logits instead (same formula, different extractor: metric keys name the extractor
so the two are never mixed).

``digits-cnn`` means the weights shipped in ``trainables/weights/`` (one file per resolution, sha256-checked,
loaded with ``weights_only=True``): float results differ between CPUs, so a classifier trained on each user's
machine would make each user's IS a slightly different metric. This module's ``main`` is the script that trained
them (``python -m trainables.digits_classifier --check`` retrains and compares). ``digits-cnn-local`` trains a
new one on the study's own split instead, cached per storage directory.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from trainables.data import digits_tensors
from trainables.files import UnsafeFile, atomic_torch_save, atomic_write, load_tensors, sha256_of
from trainables.machine import cpu_description
from trainables.training import fit_epoch

log = logging.getLogger(__name__)
Tensor = torch.Tensor


class DigitCNN(nn.Module):
    """conv32-pool-conv64-pool-fc128-fc10 with dropout (about 150K parameters at 16x16)."""

    def __init__(self, resolution: int = 16, num_classes: int = 10):
        super().__init__()
        self.resolution = resolution
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * (resolution // 4) ** 2, 128), nn.ReLU(),
        )  # fmt: skip
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(128, num_classes)

    def penultimate(self, x: Tensor) -> Tensor:
        return self.features(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.dropout(self.features(x)))


def _train(
    resolution: int, held_out_fraction: float, split_seed: int, epochs: int, seed: int
) -> tuple[DigitCNN, float]:
    tx, ty, hx, hy = digits_tensors(resolution, held_out_fraction, split_seed)
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = DigitCNN(resolution)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)

    def batches() -> Iterator[Tensor]:
        # one generator across epochs (not epoch_seed): the cached classifier stays the one the results used
        yield from torch.randperm(len(tx), generator=g).split(64)

    def loss_of(idx: Tensor) -> tuple[Tensor, int]:
        # +-1 pixel shifts: cheap augmentation that makes the extractor less brittle to generated strokes
        dx, dy = torch.randint(-1, 2, (2,), generator=g).tolist()
        xb = torch.roll(tx[idx], shifts=(dx, dy), dims=(2, 3))
        return nn.functional.cross_entropy(net(xb), ty[idx]), idx.shape[0]

    for _ in range(epochs):
        fit_epoch(net, opt, batches(), loss_of)
    net.eval()
    with torch.no_grad():
        accuracy = (net(hx).argmax(1) == hy).float().mean().item()
    return net, accuracy


def ensure_digits_classifier(
    cache_dir: Path, resolution: int = 16, held_out_fraction: float = 0.25, split_seed: int = 0, epochs: int = 20
) -> tuple[Path, float]:
    """Path of the cached classifier weights (training it first if needed) and its held-out accuracy."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    stem = f"digits-cnn-r{resolution}-h{held_out_fraction:g}-s{split_seed}-e{epochs}"
    path, meta_path = cache_dir / f"{stem}.pt", cache_dir / f"{stem}.json"
    if path.exists() and meta_path.exists():
        return path, json.loads(meta_path.read_text())["held_out_accuracy"]
    log.info("training the digits IS classifier (once; cached at %s)", path)
    with torch.random.fork_rng():
        net, accuracy = _train(resolution, held_out_fraction, split_seed, epochs, seed=0)
    atomic_torch_save({"state_dict": net.state_dict(), "resolution": resolution}, path)
    meta_path.write_text(json.dumps({"held_out_accuracy": accuracy, "resolution": resolution, "epochs": epochs}))
    log.info("digits classifier held-out accuracy %.4f", accuracy)
    return path, accuracy


# The shipped classifiers: trained by ``main`` with these settings on the digits split every shipped spec uses.
WEIGHTS_DIR = Path(__file__).parent / "weights"
MANIFEST = WEIGHTS_DIR / "digits-cnn.json"
SHIPPED_RESOLUTIONS = (8, 16, 32)
SHIPPED_SETTINGS = {"held_out_fraction": 0.25, "split_seed": 0, "epochs": 20}


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text())


def shipped_weights_file(resolution: int) -> Path:
    """The shipped weights file of ``resolution`` in this installation (absent: a clear error)."""
    if resolution not in SHIPPED_RESOLUTIONS:
        raise ValueError(f"digits-cnn ships weights for resolutions {SHIPPED_RESOLUTIONS}, not {resolution}")
    return WEIGHTS_DIR / f"digits-cnn-r{resolution}.pt"


def shipped_digits_classifier(resolution: int) -> tuple[Path, float]:
    """The shipped ``digits-cnn`` weights of ``resolution``, checked against the manifest's sha256, and their
    held-out accuracy. ``UnsafeFile`` when the file is not the one that shipped (nothing is unpickled)."""
    path = shipped_weights_file(resolution)
    entry = _manifest()["weights"][str(resolution)]
    actual = sha256_of(path)
    if actual != entry["sha256"]:
        raise UnsafeFile(
            f"refused to load the digits-cnn weights {path}: sha256 {actual} is not the shipped {entry['sha256']}; "
            "restore the file from the repository (git checkout trainables/weights), or use the extractor "
            "digits-cnn-local to train one on this machine"
        )
    return path, float(entry["held_out_accuracy"])


def resolve_shipped(path: str | Path) -> str:
    """The shipped file named like ``path`` in this node's installation (the driver's absolute path may not exist
    on another node of a cluster), sha256-checked."""
    name = Path(path).name
    for resolution in SHIPPED_RESOLUTIONS:
        if shipped_weights_file(resolution).name == name:
            return str(shipped_digits_classifier(resolution)[0])
    raise ValueError(f"{path} is not a shipped digits-cnn weights file ({WEIGHTS_DIR})")


def load_digits_classifier(path: str | Path) -> DigitCNN:
    state = load_tensors(path, map_location="cpu")  # weights_only: a planted cache file cannot run code
    net = DigitCNN(state["resolution"])
    net.load_state_dict(state["state_dict"])
    return net.eval()


def _state_digest(net: DigitCNN) -> str:
    """sha256 of the parameters' bytes: equal for two trainings that produced the same weights (a file's own
    sha256 is not, since ``torch.save`` writes a random serialization id)."""
    import hashlib

    h = hashlib.sha256()
    for name, value in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def main(argv: list[str] | None = None) -> int:
    """Train the shipped classifiers (``--write``) or retrain and compare with them (``--check``)."""
    parser = argparse.ArgumentParser(prog="python -m trainables.digits_classifier", description=main.__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", action="store_true", help=f"train and write the weights and {MANIFEST.name}")
    mode.add_argument("--check", action="store_true", help="retrain and compare with the shipped parameters")
    parser.add_argument("--resolution", type=int, action="append", choices=SHIPPED_RESOLUTIONS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    manifest = _manifest() if MANIFEST.exists() else {"weights": {}}
    same = True
    for resolution in args.resolution or SHIPPED_RESOLUTIONS:
        with torch.random.fork_rng():
            net, accuracy = _train(resolution, **SHIPPED_SETTINGS, seed=0)
        digest = _state_digest(net)
        if args.check:
            shipped = manifest["weights"].get(str(resolution), {})
            match = shipped.get("parameters_sha256") == digest
            same &= match
            log.info("r%d: held-out accuracy %.4f; parameters %s the shipped ones (trained on %s)", resolution,
                     accuracy, "equal" if match else "DIFFER from", shipped.get("cpu", "?"))  # fmt: skip
            continue
        path = atomic_torch_save({"state_dict": net.state_dict(), "resolution": resolution},
                                 shipped_weights_file(resolution))  # fmt: skip
        manifest["weights"][str(resolution)] = {
            "file": path.name, "sha256": sha256_of(path), "parameters_sha256": digest,
            "held_out_accuracy": accuracy, "resolution": resolution, **SHIPPED_SETTINGS, "seed": 0,
            "torch": torch.__version__, "cpu": cpu_description(),
        }  # fmt: skip
        log.info("r%d: held-out accuracy %.4f -> %s", resolution, accuracy, path)
    if args.write:
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        atomic_write(MANIFEST, lambda tmp: tmp.write_text(text))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
