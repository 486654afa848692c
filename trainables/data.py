"""Datasets by the ``kind`` a spec names; every loader returns images in [-1, 1] with integer labels."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset, TensorDataset

Tensor = torch.Tensor


@dataclass(frozen=True)
class ImageData:
    """A training set (and optionally a held-out set) of (image in [-1, 1], label) pairs."""

    name: str
    train: Dataset
    held_out: Dataset | None
    channels: int
    resolution: int
    num_classes: int


def digits_tensors(resolution: int = 16, held_out_fraction: float = 0.25, split_seed: int = 0) -> tuple[Tensor, ...]:
    """scikit-learn digits (1797 8x8 images, values 0..16) -> [-1, 1], bilinearly resized, stratified split.

    Returns (train_x, train_y, held_x, held_y) with x of shape [N, 1, R, R] float32.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = torch.from_numpy(digits.images).float().div(16.0).mul(2.0).sub(1.0).unsqueeze(1)
    if resolution != 8:
        x = torch.nn.functional.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False)
    x = x.clamp(-1.0, 1.0)
    y = torch.from_numpy(digits.target).long()
    idx_train, idx_held = train_test_split(
        torch.arange(len(y)).numpy(), test_size=held_out_fraction, random_state=split_seed, stratify=y.numpy()
    )
    return x[idx_train], y[idx_train], x[idx_held], y[idx_held]


def load_digits_data(spec: Any, data_dir: Path | None = None) -> ImageData:
    """The embedded default: ships with scikit-learn, so it works offline."""
    tx, ty, hx, hy = digits_tensors(spec.resolution, spec.held_out_fraction, spec.split_seed)
    return ImageData("digits", TensorDataset(tx, ty), TensorDataset(hx, hy), 1, spec.resolution, 10)


DATASETS: dict[str, Callable[..., ImageData]] = {
    "digits": load_digits_data,
}


def load_dataset(spec: Any, data_dir: Path | None = None) -> ImageData:
    """Load the dataset registered under ``spec.kind``."""
    return DATASETS[spec.kind](spec, data_dir)


def image_shape(spec: Any) -> tuple[int, int, int]:
    """(channels, height, width) of a dataset spec without loading it."""
    return (1, spec.resolution, spec.resolution) if spec.kind == "digits" else (3, spec.resolution, spec.resolution)
