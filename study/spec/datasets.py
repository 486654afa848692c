"""Dataset specs, discriminated by ``kind``.

To add a dataset: a model here with a unique ``kind`` literal, added to ``DatasetSpec``,
and a loader registered under the same kind in ``trainables/data.py``.

Relative ``root`` paths are resolved against the data directory the driver hands to trials
(``STUDY_DATA_DIR``, default ``<storage>/.data``), so one spec works on every machine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from study.spec.base import Strict


class DigitsData(Strict):
    """scikit-learn's 1797 handwritten digits (ships inside the package, works offline).

    8x8 grey-scale images scaled to [-1, 1] and bilinearly upscaled to ``resolution``; a fixed
    stratified split keeps ``held_out_fraction`` of the images for the IS reference.
    """

    kind: Literal["digits"] = "digits"
    resolution: Literal[8, 16, 32] = 16
    held_out_fraction: float = Field(0.25, gt=0.0, lt=1.0)
    split_seed: int = 0


class Cifar10Data(Strict):
    """CIFAR10 training split (50 000 RGB 32x32 images, 10 labelled classes); the test split is the held-out set.

    Read from ``<root>/cifar-10-python.tar.gz`` or ``<root>/cifar-10-batches-py/`` (the official python
    archive). ``study run`` downloads the archive once, in the driver, when it is missing and ``download`` is on.
    """

    kind: Literal["cifar10"] = "cifar10"
    resolution: Literal[32] = 32
    root: str | None = Field(None, description="folder holding the archive; default <data dir>/cifar10")
    download: bool = Field(True, description="fetch the archive in the driver when it is missing (needs network)")


class ImageFolderData(Strict):
    """A folder of images (FFHQ, ImageNet-style): flat, or one sub-folder per class (labels = sorted folder names).

    Images are converted to RGB, resized so the short side is ``resolution`` with ``filter``, and centre-cropped.
    The decoded uint8 tensor is cached once per (file list, resolution, filter), so epochs never decode again.
    """

    kind: Literal["image_folder"] = "image_folder"
    root: str = Field(description="the image folder; relative paths are resolved against the data directory")
    resolution: int = Field(ge=4, le=1024)
    filter: Literal["lanczos", "bicubic", "bilinear", "box", "nearest"] = Field(
        "lanczos", description="PIL resampling filter for the resize (EDM's dataset_tool uses lanczos)"
    )
    extensions: list[str] = Field(default_factory=lambda: ["png", "jpg", "jpeg", "webp", "bmp"], min_length=1)
    max_images: int | None = Field(None, ge=1, le=10**8, description="use only the first N files in sorted order")
    labels: Literal["auto", "none"] = Field(
        "auto", description="auto: class labels from sub-folder names when the images sit in sub-folders"
    )


DatasetSpec = Annotated[DigitsData | Cifar10Data | ImageFolderData, Field(discriminator="kind")]
