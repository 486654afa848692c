"""Dataset specs, discriminated by ``kind``.

To add a dataset: a model here with a unique ``kind`` literal, added to ``DatasetSpec``, and a
``DatasetDecl`` registered under the same kind in ``trainables/data.py`` (README "Adding a dataset").

Every field has a range: counts and seeds are integers (``true`` is not a count), fractions finite, sizes
bounded (a typo such as ``max_images: 1e29`` or a 100 000-pixel resolution must not exhaust memory), paths and
extension lists short.

Every dataset takes ``subset: {size, seed}`` (``SubsetSpec``): a fixed, seeded subset of its training set, so the
training-set size can be a grid axis (``dataset.subset.size: [64, 256, 1347]``). That the size fits the training
set is checked where the data is loaded (``trainables.data.training_subset``): the count is known only then.

Relative ``root`` paths are resolved against the data directory the driver hands to trials in their runtime
(``--data-dir``, default ``$STUDY_DATA_DIR``, else ``<storage>/.data``), so one spec works on every machine.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from study.contract.spec.base import SEED_MAX, Strict

MAX_PATH = 4096  # PATH_MAX on Linux
MAX_IMAGES = 50_000_000  # above ImageNet-21k (14M); a uint8 copy of 50M 32x32 RGB images is already 150 GB


class SubsetSpec(Strict):
    """A fixed, seeded subset of the training set: the first ``size`` images of one permutation seeded by ``seed``.

    Subsets of one seed are nested (the 64 images of ``size: 64`` are among the 256 of ``size: 256``), so a
    training-set-size axis adds images instead of drawing new ones (the setting of Bonnaire et al. 2025, where the
    memorization time is compared across training-set sizes). The held-out set is never subset.
    """

    size: int = Field(ge=1, le=MAX_IMAGES, strict=True, description="training images kept (at most the training set)")
    seed: int = Field(0, ge=0, le=SEED_MAX, strict=True, description="seed of the permutation the subset is cut from")


SUBSET_DESCRIPTION = "train on a fixed, seeded subset of the training set (default: all of it)"


class DigitsData(Strict):
    """scikit-learn's 1797 handwritten digits (ships inside the package, works offline).

    8x8 grey-scale images scaled to [-1, 1] and bilinearly upscaled to ``resolution``; a fixed
    stratified split keeps ``held_out_fraction`` of the images for the IS reference.
    """

    kind: Literal["digits"] = "digits"
    resolution: Literal[8, 16, 32] = 16
    held_out_fraction: float = Field(0.25, gt=0.0, lt=1.0, allow_inf_nan=False)
    split_seed: int = Field(0, ge=0, le=SEED_MAX, strict=True)
    subset: SubsetSpec | None = Field(None, description=SUBSET_DESCRIPTION)


class Cifar10Data(Strict):
    """CIFAR10 training split (50 000 RGB 32x32 images, 10 labelled classes); the test split is the held-out set.

    Read from ``<root>/cifar-10-python.tar.gz`` or ``<root>/cifar-10-batches-py/`` (the official python
    archive). ``study run`` downloads the archive once, in the driver, when it is missing and ``download`` is on.
    """

    kind: Literal["cifar10"] = "cifar10"
    resolution: Literal[32] = 32
    root: str | None = Field(
        None, min_length=1, max_length=MAX_PATH, description="folder holding the archive; default <data dir>/cifar10"
    )
    download: bool = Field(
        True, strict=True, description="fetch the archive in the driver when it is missing (needs network)"
    )
    subset: SubsetSpec | None = Field(None, description=SUBSET_DESCRIPTION)


class ImageFolderData(Strict):
    """A folder of images (FFHQ, ImageNet-style): flat, or one sub-folder per class (labels = sorted folder names).

    Images are converted to RGB, resized so the short side is ``resolution`` with ``filter``, and centre-cropped.
    The decoded uint8 tensor is cached once per (file list, resolution, filter), so epochs never decode again.
    """

    kind: Literal["image_folder"] = "image_folder"
    root: str = Field(
        min_length=1, max_length=MAX_PATH,
        description="the image folder; relative paths are resolved against the data directory",
    )  # fmt: skip
    resolution: int = Field(ge=4, le=1024, strict=True)
    filter: Literal["lanczos", "bicubic", "bilinear", "box", "nearest"] = Field(
        "lanczos", description="PIL resampling filter for the resize (EDM's dataset_tool uses lanczos)"
    )
    extensions: list[Annotated[str, Field(pattern=r"^\.?[A-Za-z0-9]{1,10}$")]] = Field(
        default_factory=lambda: ["png", "jpg", "jpeg", "webp", "bmp"], min_length=1, max_length=32
    )
    max_images: int | None = Field(
        None, ge=1, le=MAX_IMAGES, strict=True, description="use only the first N files in sorted order"
    )
    labels: Literal["auto", "none"] = Field(
        "auto", description="auto: class labels from sub-folder names when the images sit in sub-folders"
    )
    subset: SubsetSpec | None = Field(None, description=SUBSET_DESCRIPTION)


DatasetSpec = Annotated[DigitsData | Cifar10Data | ImageFolderData, Field(discriminator="kind")]
