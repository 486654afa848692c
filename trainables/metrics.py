"""Inception Score through torch-fidelity, with the feature extractor a spec names (REFERENCE B.8).

``digits-cnn`` (the embedded default's classifier) is registered with torch-fidelity here, in every
process that imports this module: torch-fidelity's registry is per process, so Ray trial workers
register it themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from trainables.digits_classifier import load_digits_classifier

Tensor = torch.Tensor


def to_uint8(x: Tensor) -> Tensor:
    """[-1, 1] -> uint8 by x*127.5 + 128 then truncation (= rounding; EDM generate.py). Fixed for comparability."""
    return (x * 127.5 + 128).clamp(0, 255).to(torch.uint8)


class DigitsFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity extractor over ``DigitCNN``: ``logits_unbiased`` for IS, ``128`` (penultimate) for FID/KID."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path: str | None = None, **kw):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError("digits-cnn needs feature_extractor_weights_path (see ensure_digits_classifier)")
        self.net = load_digits_classifier(feature_extractor_weights_path)
        self.requires_grad_(False)

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return ("logits_unbiased", "128")

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return {"isc": "logits_unbiased", "fid": "128", "kid": "128", "prc": "128"}[metric]

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> Tensor:
        return torch.zeros(1, 1, 16, 16, dtype=torch.uint8)

    def forward(self, x: Tensor) -> tuple[Tensor, ...]:
        x = x.float() / 127.5 - 1 if x.dtype == torch.uint8 else x
        if x.shape[1] == 3:
            x = x.mean(1, keepdim=True)
        if x.shape[-1] != self.net.resolution:
            x = torch.nn.functional.interpolate(x, size=self.net.resolution, mode="bilinear", align_corners=False)
        feats = self.net.penultimate(x)
        out = {"logits_unbiased": self.net.head(feats), "128": feats}
        return tuple(out[f] for f in self.features_list)


if "digits-cnn" not in FEATURE_EXTRACTORS_REGISTRY:
    register_feature_extractor("digits-cnn", DigitsFeatureExtractor)


class _Uint8Images(Dataset):
    def __init__(self, images: Tensor):
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


@dataclass(frozen=True)
class InceptionScore:
    mean: float
    std: float


def inception_score(
    images: Tensor,
    extractor: str,
    weights_path: str | Path | None = None,
    splits: int = 10,
    shuffle: bool = True,
    batch_size: int = 250,
) -> InceptionScore:
    """IS = exp(E_x KL(p(y|x) || p(y))), mean and std over ``splits`` (torch-fidelity's isc, float64 softmax).

    ``images``: uint8 [N, C, H, W]. The Inception extractor expects 3 channels, so grey images are repeated.
    """
    if images.dtype != torch.uint8:
        raise TypeError("inception_score expects uint8 images; convert with to_uint8")
    if extractor.startswith("inception") and images.shape[1] == 1:
        images = images.repeat(1, 3, 1, 1)
    metrics = torch_fidelity.calculate_metrics(
        input1=_Uint8Images(images.cpu()),
        isc=True,
        isc_splits=splits,
        samples_shuffle=shuffle,
        feature_extractor=extractor,
        feature_extractor_weights_path=str(weights_path) if weights_path else None,
        batch_size=batch_size,
        cuda=torch.cuda.is_available(),
        save_cpu_ram=True,
        cache=False,
        verbose=False,
    )
    return InceptionScore(metrics["inception_score_mean"], metrics["inception_score_std"])
