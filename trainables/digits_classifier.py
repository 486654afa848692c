"""The embedded default's IS feature extractor: a small CNN trained once on the digits training split.

The Inception network knows nothing about 16x16 grey digits, so on the embedded default the Inception
Score is computed with this classifier's logits instead (same formula, different extractor: metric keys
name the extractor so the two are never mixed). Trained in seconds, cached by its settings.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn

from trainables.data import digits_tensors
from trainables.files import atomic_torch_save, load_tensors
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


def load_digits_classifier(path: str | Path) -> DigitCNN:
    state = load_tensors(path, map_location="cpu")  # weights_only: a planted cache file cannot run code
    net = DigitCNN(state["resolution"])
    net.load_state_dict(state["state_dict"])
    return net.eval()
