"""Datasets, each declared once (``DatasetDecl`` in ``DATASETS``, under the ``kind`` its spec model names); every
loader returns images in [-1, 1] with integer labels.

Real datasets are held in memory as uint8 (CIFAR10's 50k images are 150 MB that way, 600 MB as float32) and
converted to [-1, 1] per item. Nothing here downloads unless a spec allows it and ``STUDY_OFFLINE`` is unset;
a missing file raises ``DatasetUnavailable`` whose message says exactly which file to put where.

CIFAR10 and integrity: the download (torchvision's ``download_url``) is checked against the official archive
md5. Reading does not go through ``torchvision.datasets.CIFAR10(download=False)`` because its
``_check_integrity`` rejects any other archive of the same layout (a re-packed archive, a subset, the tiny
archives the tests build). We read the same python pickles ourselves (straight from the ``.tar.gz`` or from the
extracted ``cifar-10-batches-py/``): each is md5-checked against the official file before it is unpickled, and
one that differs is read with an unpickler that only builds numpy arrays (``UnsafeFile`` for anything else), so
a crafted batch cannot run code. A non-official archive is logged, since IS against the literature needs the
official images. Caches are loaded with ``load_tensors`` (``weights_only=True``).
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import pickle
import socket
import tarfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, TensorDataset

from trainables.files import UnsafeFile, atomic_torch_save, atomic_write, load_tensors

Tensor = torch.Tensor
log = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TGZ_MD5 = "c58f30108f718f92721af3b95e74349a"  # torchvision.datasets.CIFAR10.tgz_md5
CIFAR10_TGZ_BYTES = 170_498_071
CIFAR10_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST = "test_batch"
CIFAR10_META = "batches.meta"
# The md5 of every official python pickle (torchvision.datasets.CIFAR10.train_list / test_list / meta).
CIFAR10_MEMBER_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
DOWNLOAD_TIMEOUT_S = 60.0  # a firewall that drops packets must not hang the driver for the TCP timeout


class DatasetUnavailable(FileNotFoundError):
    """A dataset file is missing and cannot be fetched; the message says which file to place where."""


@dataclass(frozen=True)
class ImageData:
    """A training set (and optionally a held-out set) of (image in [-1, 1], label) pairs.

    ``key`` identifies the exact training images (kind, resolution, source files) for on-disk caches of
    reference features; two loads of the same files give the same key.
    """

    name: str
    train: Dataset
    held_out: Dataset | None
    channels: int
    resolution: int
    num_classes: int
    key: str = ""


class Uint8Pixels(Dataset):
    """uint8 images [N, C, H, W] -> the stored uint8 image per item: what torch-fidelity's feature extractors read
    (``metrics.extract_features``)."""

    def __init__(self, images: Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(f"expected uint8 [N, C, H, W] images, got {images.dtype} {tuple(images.shape)}")
        self.images = images

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, i: int) -> Tensor:
        return self.images[i]


class Uint8Images(Uint8Pixels):
    """uint8 images [N, C, H, W] and int64 labels [N] -> (float32 image in [-1, 1], int label) per item.

    ``images`` stays accessible so metrics can score the exact pixels without a float round trip.
    """

    def __init__(self, images: Tensor, labels: Tensor):
        super().__init__(images)
        if labels.shape[0] != images.shape[0]:
            raise ValueError("images and labels differ in length")
        self.labels = labels.long()

    def __getitem__(self, i: int) -> tuple[Tensor, int]:  # type: ignore[override]  # a training item, not pixels
        # u / 127.5 - 1 is the inverse of metrics.to_uint8 (x * 127.5 + 128, truncated): real images round-trip.
        return self.images[i].float().div(127.5).sub(1.0), int(self.labels[i])


def dataset_root(spec: Any, data_dir: Path | str, default: str) -> Path:
    """``spec.root`` (absolute, or relative to the data directory), else ``<data dir>/<default>``."""
    base = Path(data_dir).expanduser().resolve()
    root = getattr(spec, "root", None)
    if root is None:
        return base / default
    path = Path(root).expanduser()
    return path if path.is_absolute() else base / path


def offline() -> bool:
    """``STUDY_OFFLINE=1`` forbids every download attempt (air-gapped machines, CI)."""
    return os.environ.get("STUDY_OFFLINE", "").strip().lower() not in ("", "0", "false", "no")


@contextmanager
def download_timeout(seconds: float = DOWNLOAD_TIMEOUT_S) -> Iterator[None]:
    """Sockets opened inside time out after ``seconds`` (the dataset and the Inception weights downloads)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


# ---------------------------------------------------------------------------------------------------- digits


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


def load_digits_data(spec: Any, data_dir: Path, cache_dir: Path) -> ImageData:
    """The embedded default: ships with scikit-learn, so it works offline."""
    tx, ty, hx, hy = digits_tensors(spec.resolution, spec.held_out_fraction, spec.split_seed)
    key = f"digits-r{spec.resolution}-h{spec.held_out_fraction:g}-s{spec.split_seed}"
    return ImageData("digits", TensorDataset(tx, ty), TensorDataset(hx, hy), 1, spec.resolution, 10, key)


# --------------------------------------------------------------------------------------------------- CIFAR10


def cifar10_missing_message(root: Path) -> str:
    """The exact instruction for an offline user."""
    return (
        f"CIFAR10 not found: download {CIFAR10_URL} and place it at {root / CIFAR10_ARCHIVE} "
        f"(or extract it there, so that {root / CIFAR10_FOLDER / CIFAR10_TRAIN[0]} exists)"
    )


def cifar10_source(root: Path) -> Path | None:
    """The extracted folder when it holds every training batch, else the archive when present, else None."""
    folder = root / CIFAR10_FOLDER
    if all((folder / name).is_file() for name in CIFAR10_TRAIN):
        return folder
    archive = root / CIFAR10_ARCHIVE
    return archive if archive.is_file() else None


def fetch_cifar10(root: Path) -> Path:
    """Download the official archive into ``root`` (md5-checked by torchvision); raises ``DatasetUnavailable``."""
    if offline():
        raise DatasetUnavailable(cifar10_missing_message(root) + " [STUDY_OFFLINE is set, no download attempted]")
    from torchvision.datasets.utils import download_url

    log.info("downloading %s to %s", CIFAR10_URL, root / CIFAR10_ARCHIVE)
    try:
        with download_timeout():
            return atomic_write(root / CIFAR10_ARCHIVE, lambda tmp: download_url(
                CIFAR10_URL, str(tmp.parent), filename=tmp.name, md5=CIFAR10_TGZ_MD5))  # fmt: skip
    except Exception as e:  # URLError, socket errors, md5 mismatch: all mean "not available here"
        raise DatasetUnavailable(f"{cifar10_missing_message(root)} [download failed: {e}]") from e


def ensure_cifar10(spec: Any, data_dir: Path | str, allow_download: bool | None = None) -> Path:
    """Path of the CIFAR10 archive or extracted folder, downloading it when allowed; else ``DatasetUnavailable``."""
    root = dataset_root(spec, data_dir, "cifar10")
    source = cifar10_source(root)
    if source is not None:
        return source
    if allow_download if allow_download is not None else spec.download:
        return fetch_cifar10(root)
    raise DatasetUnavailable(cifar10_missing_message(root))


# What a CIFAR10 batch pickle may reference: numpy's array reconstruction (the numpy 1 and 2 module names and
# the protocol-5 buffer path) and _codecs.encode (protocol 2 written by Python 3 stores bytes as latin1 text).
# Anything else (os.system, subprocess, builtins.eval ...) is refused before it runs.
_NUMPY_PICKLE_GLOBALS = frozenset(
    {(m, n) for m in ("numpy.core.multiarray", "numpy._core.multiarray") for n in ("_reconstruct", "scalar")}
    | {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
       ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}
)  # fmt: skip


class _NumpyOnlyUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_PICKLE_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR10 batch")
        return super().find_class(module, name)


def _unpickle(data: bytes, where: str) -> dict[str, Any]:
    """Unpickle one CIFAR10 batch; ``UnsafeFile`` naming ``where`` when it is not the official file and references
    anything beyond numpy arrays.

    The md5 is checked first: the seven official pickles (torchvision's list) are known plain data. Any other
    file (a re-packed or subset archive, the tests' tiny ones) is read with an unpickler that only resolves numpy's
    array reconstruction, so a crafted ``__reduce__`` payload is refused instead of run.
    """
    name = Path(where).name
    official = CIFAR10_MEMBER_MD5.get(name) == hashlib.md5(data).hexdigest()
    # The official batches were pickled by Python 2: latin1 keeps the byte strings of the numpy payload intact.
    if official:
        return pickle.loads(data, encoding="latin1")
    try:
        return _NumpyOnlyUnpickler(io.BytesIO(data), encoding="latin1").load()
    except pickle.UnpicklingError as e:
        raise UnsafeFile(
            f"refused to unpickle {where}: it is not the official CIFAR10 {name} (md5 differs) and {e}; "
            f"replace it with the file from {CIFAR10_URL}"
        ) from None


def _read_cifar_members(source: Path) -> dict[str, dict[str, Any]]:
    """{member name: unpickled dict} for the batches and meta, from the archive or the extracted folder."""
    wanted = {*CIFAR10_TRAIN, CIFAR10_TEST, CIFAR10_META}
    out: dict[str, dict[str, Any]] = {}
    if source.is_dir():
        for name in wanted:
            if (source / name).is_file():
                out[name] = _unpickle((source / name).read_bytes(), str(source / name))
        return out
    with tarfile.open(source, "r:gz") as tar:
        for member in tar:  # sequential: a gzip stream cannot seek back cheaply
            parts = Path(member.name).parts
            if member.isfile() and len(parts) == 2 and parts[0] == CIFAR10_FOLDER and parts[1] in wanted:
                f = tar.extractfile(member)
                if f is not None:
                    out[parts[1]] = _unpickle(f.read(), f"{source}:{member.name}")
    return out


def _cifar_batches(members: dict[str, dict[str, Any]], names: tuple[str, ...]) -> tuple[Tensor, Tensor]:
    images, labels = [], []
    for name in names:
        entry = members[name]
        data = np.asarray(entry["data"], dtype=np.uint8)
        images.append(data.reshape(-1, 3, 32, 32))  # rows are 1024 R, then G, then B values, row-major
        labels.extend(entry["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def _file_md5(path: Path) -> str:
    h = hashlib.md5()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_key(*paths: Path) -> str:
    """16 hex naming these files' paths, sizes and mtimes: an ``ImageData.key`` that changes when a file does."""
    h = hashlib.sha1()
    for p in paths:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def load_cifar10_data(spec: Any, data_dir: Path, cache_dir: Path) -> ImageData:
    """CIFAR10 train split (labels kept) with the test split as held-out set, from the python archive."""
    source = ensure_cifar10(spec, data_dir)
    members = _read_cifar_members(source)
    missing = [n for n in (*CIFAR10_TRAIN, CIFAR10_META) if n not in members]
    if missing:
        raise DatasetUnavailable(
            f"{source} lacks {missing} inside {CIFAR10_FOLDER}/; {cifar10_missing_message(source.parent)}"
        )
    if source.is_file() and _file_md5(source) != CIFAR10_TGZ_MD5:
        log.warning("%s is not the official CIFAR10 archive (md5 differs): IS is not comparable to papers", source)
    train_x, train_y = _cifar_batches(members, CIFAR10_TRAIN)
    held = Uint8Images(*_cifar_batches(members, (CIFAR10_TEST,))) if CIFAR10_TEST in members else None
    classes = list(members[CIFAR10_META]["label_names"])
    files = [source] if source.is_file() else [source / n for n in CIFAR10_TRAIN]
    key = f"cifar10-train-r32-{files_key(*files)}"
    log.info("CIFAR10: %d training images from %s", len(train_y), source)
    return ImageData("cifar10", Uint8Images(train_x, train_y), held, 3, 32, len(classes), key)


# ---------------------------------------------------------------------------------------------- image folder


def _pil_filter(name: str) -> int:
    from PIL import Image

    return {
        "lanczos": Image.Resampling.LANCZOS, "bicubic": Image.Resampling.BICUBIC,
        "bilinear": Image.Resampling.BILINEAR, "box": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST,
    }[name]  # fmt: skip


def list_image_folder(spec: Any, root: Path) -> tuple[list[Path], list[int], list[str]]:
    """(files in sorted order, labels, class names); labels come from the first sub-folder level when present."""
    if not root.is_dir():
        raise DatasetUnavailable(f"image folder {root} does not exist: put the images there (flat or in class folders)")
    exts = {"." + e.lower().lstrip(".") for e in spec.extensions}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in exts)
    if spec.max_images is not None:
        files = files[: spec.max_images]
    if not files:
        raise DatasetUnavailable(f"image folder {root} holds no {sorted(exts)} files")
    rel = [p.relative_to(root) for p in files]
    nested = [len(r.parts) > 1 for r in rel]
    if spec.labels == "none" or not any(nested):
        return files, [0] * len(files), []
    if not all(nested):
        raise ValueError(
            f"{root} mixes images at the top level with images in sub-folders: with labels: auto every image "
            "must sit in a class sub-folder (or set labels: none)"
        )
    classes = sorted({r.parts[0] for r in rel})
    index = {c: i for i, c in enumerate(classes)}
    return files, [index[r.parts[0]] for r in rel], classes


def decode_image(path: Path, resolution: int, filter_name: str) -> np.ndarray:
    """RGB uint8 [3, R, R]: resize so the short side is ``resolution``, then centre-crop (ADM/EDM style)."""
    from PIL import Image

    with Image.open(path) as img:
        img = img.convert("RGB")
        w, h = img.size
        scale = resolution / min(w, h)
        size = (max(resolution, round(w * scale)), max(resolution, round(h * scale)))
        if size != (w, h):
            img = img.resize(size, resample=_pil_filter(filter_name))
        left, top = (size[0] - resolution) // 2, (size[1] - resolution) // 2
        img = img.crop((left, top, left + resolution, top + resolution))
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()


def image_folder_cache_path(spec: Any, root: Path, files: list[Path], cache_dir: Path) -> Path:
    """Cache file keyed by the folder path, every file's (path, size, mtime), the resolution, filter and labels."""
    h = hashlib.sha1(f"{root.resolve()}|r{spec.resolution}|{spec.filter}|{spec.labels}\n".encode())
    for p in files:
        st = p.stat()
        h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return cache_dir / "image_folder" / f"{root.name}-r{spec.resolution}-{spec.filter}-{h.hexdigest()[:16]}.pt"


def prepare_image_folder(spec: Any, data_dir: Path | str, cache_dir: Path | str) -> tuple[dict[str, Any], Path]:
    """Decode the folder once into a uint8 tensor file under ``cache_dir`` (reused while no file changes); returns
    (content, path)."""
    root = dataset_root(spec, data_dir, "")
    files, labels, classes = list_image_folder(spec, root)
    path = image_folder_cache_path(spec, root, files, Path(cache_dir).expanduser().resolve())
    if path.is_file():
        log.info("image folder %s: %d prepared images from %s", root, len(files), path)
        return load_tensors(path), path
    log.info(
        "image folder %s: decoding %d images at %dpx (once, cached at %s)", root, len(files), spec.resolution, path
    )
    images = torch.empty((len(files), 3, spec.resolution, spec.resolution), dtype=torch.uint8)

    def one(i: int) -> None:
        images[i] = torch.from_numpy(decode_image(files[i], spec.resolution, spec.filter))

    # PIL releases the GIL while decoding and resizing, so threads scale with the cores for JPEG folders.
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1))) as pool:
        list(pool.map(one, range(len(files))))
    content = {"images": images, "labels": torch.tensor(labels, dtype=torch.long), "classes": classes,
               "root": str(root)}  # fmt: skip
    atomic_torch_save(content, path)
    return content, path


def load_image_folder_data(spec: Any, data_dir: Path, cache_dir: Path) -> ImageData:
    """FFHQ / ImageNet-style folders: RGB at ``spec.resolution``, labels from class sub-folders (or all 0)."""
    content, path = prepare_image_folder(spec, data_dir, cache_dir)
    name = Path(content["root"]).name or "image_folder"
    train = Uint8Images(content["images"], content["labels"])
    return ImageData(name, train, None, 3, spec.resolution, len(content["classes"]), f"folder-{path.stem}")


# ------------------------------------------------------------------------------------------------- registry


@dataclass(frozen=True)
class Footprint:
    """What a dataset costs before training: its image count (None: known only after listing) and the bytes a
    first ``study run`` downloads."""

    images: int | None
    download_bytes: int = 0

    def memory_bytes(self, shape: tuple[int, int, int]) -> int | None:
        """Bytes of the uint8 images held in memory (None when the count is unknown before listing)."""
        return None if self.images is None else self.images * shape[0] * shape[1] * shape[2]


def _nothing_missing(spec: Any, data_dir: Path) -> list[str]:
    return []


def _nothing_to_fetch(spec: Any, data_dir: Path, cache_dir: Path) -> None:
    return None


@dataclass(frozen=True)
class DatasetDecl:
    """One dataset kind, declared once (its spec model, same ``kind`` literal: study/contract/spec/datasets.py).

    ``load(spec, data_dir, cache_dir)`` returns the images (anything derived from them, e.g. decoded tensors, is
    cached under ``cache_dir``); ``classes(spec, data_dir)`` the number of labelled classes (0: unlabelled)
    without decoding images; ``problems(spec, data_dir)`` what keeps it from loading here, only looking
    (``study validate``); ``fetch(spec, data_dir, cache_dir)`` downloads or prepares it once in the driver
    (``study run``), raising ``DatasetUnavailable`` (or ``ValueError`` / ``OSError``) with the instruction;
    ``footprint(spec)`` its size.
    """

    kind: str
    load: Callable[[Any, Path, Path], ImageData]
    channels: int
    classes: Callable[[Any, Path], int]
    footprint: Callable[[Any], Footprint]
    problems: Callable[[Any, Path], list[str]] = _nothing_missing
    fetch: Callable[[Any, Path, Path], None] = _nothing_to_fetch

    def shape(self, spec: Any) -> tuple[int, int, int]:
        """(channels, height, width) of ``spec``'s images without loading them."""
        return (self.channels, spec.resolution, spec.resolution)


def _cifar10_problems(spec: Any, data_dir: Path) -> list[str]:
    root = dataset_root(spec, data_dir, "cifar10")
    if cifar10_source(root) is not None:
        return []
    hint = " (`study run` tries to download it first)" if spec.download and not offline() else ""
    return [cifar10_missing_message(root) + hint]


def _image_folder_problems(spec: Any, data_dir: Path) -> list[str]:
    try:
        list_image_folder(spec, dataset_root(spec, data_dir, ""))
    except (DatasetUnavailable, ValueError) as e:
        return [str(e)]
    return []


def _fetch_cifar10(spec: Any, data_dir: Path, cache_dir: Path) -> None:
    ensure_cifar10(spec, data_dir)


def _prepare_image_folder(spec: Any, data_dir: Path, cache_dir: Path) -> None:
    prepare_image_folder(spec, data_dir, cache_dir)  # decoded once by the driver instead of by every trial at once


def _image_folder_classes(spec: Any, data_dir: Path) -> int:
    return len(list_image_folder(spec, dataset_root(spec, data_dir, ""))[2])


DATASETS: dict[str, DatasetDecl] = {
    "digits": DatasetDecl("digits", load_digits_data, 1, lambda s, d: 10, lambda s: Footprint(1797)),
    "cifar10": DatasetDecl(
        "cifar10", load_cifar10_data, 3, lambda s, d: 10, lambda s: Footprint(60_000, CIFAR10_TGZ_BYTES),
        problems=_cifar10_problems, fetch=_fetch_cifar10,
    ),
    "image_folder": DatasetDecl(
        "image_folder", load_image_folder_data, 3, _image_folder_classes, lambda s: Footprint(s.max_images),
        problems=_image_folder_problems, fetch=_prepare_image_folder,
    ),
}  # fmt: skip


def register_dataset(decl: DatasetDecl) -> DatasetDecl:
    """Add a dataset kind (its spec model goes into ``study.contract.spec.datasets.DatasetSpec``); refuses a taken
    kind."""
    if DATASETS.get(decl.kind, decl) is not decl:
        raise ValueError(f"dataset kind {decl.kind!r} is already declared")
    DATASETS[decl.kind] = decl
    return decl


def dataset_decl(spec: Any) -> DatasetDecl:
    """The declaration of ``spec.kind``; a clear error for a kind with a spec model but no declaration."""
    try:
        return DATASETS[spec.kind]
    except KeyError:
        raise ValueError(f"dataset kind {spec.kind!r} has no declaration in trainables.data.DATASETS") from None


def subset_indices(n: int, size: int, seed: int) -> Tensor:
    """Sorted indices of the first ``size`` of a permutation of ``range(n)`` seeded by ``seed`` (torch's CPU
    generator: the same on every machine). Prefixes of one permutation, so subsets of one seed are nested."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:size].sort().values


def _take(dataset: Dataset, idx: Tensor) -> Dataset:
    # The two in-memory kinds keep their type (metrics read Uint8Images.images as the exact stored pixels).
    if isinstance(dataset, Uint8Images):
        return Uint8Images(dataset.images[idx], dataset.labels[idx])
    if isinstance(dataset, TensorDataset):
        return TensorDataset(*(t[idx] for t in dataset.tensors))
    return torch.utils.data.Subset(dataset, idx.tolist())


def subset_size_problem(data: ImageData, size: int) -> str | None:
    """Why ``data``'s training set cannot give a subset of ``size`` images (None when it can)."""
    n = len(data.train)
    if size <= n:
        return None
    return (
        f"dataset.subset.size is {size}, but the {data.name} training set ({data.key or data.name}) has only "
        f"{n} images: choose a size of at most {n}"
    )


def training_subset(data: ImageData, size: int, seed: int) -> ImageData:
    """``data`` with its training set cut to a fixed, seeded subset of ``size`` images (``SubsetSpec``).

    The held-out set is kept whole. ``key`` names the subset, so caches of training-set features (FID/KID
    references) never mix a subset with the full set. A ``size`` above the training set's is a ``ValueError``
    naming both: the count is known only here, after loading.
    """
    n = len(data.train)
    if (problem := subset_size_problem(data, size)) is not None:
        raise ValueError(problem)
    if size == n:  # the same images in the same order: the same data, the same caches
        return data
    train = _take(data.train, subset_indices(n, size, seed))
    return replace(data, train=train, key=f"{data.key}-sub{size}-s{seed}" if data.key else "")


def load_dataset(spec: Any, data_dir: Path | str, cache_dir: Path | str) -> ImageData:
    """Load the dataset declared under ``spec.kind`` from ``data_dir`` (what it derives cached under
    ``cache_dir``: ``StudyPaths``), cut to ``spec.subset`` when it names one."""
    data = dataset_decl(spec).load(spec, Path(data_dir).expanduser().resolve(), Path(cache_dir).expanduser().resolve())
    subset = getattr(spec, "subset", None)
    if subset is None:
        return data
    data = training_subset(data, subset.size, subset.seed)
    log.info("%s: training on a subset of %d images (seed %d)", data.name, subset.size, subset.seed)
    return data


def image_shape(spec: Any) -> tuple[int, int, int]:
    """(channels, height, width) of a dataset spec without loading it."""
    return dataset_decl(spec).shape(spec)


def dataset_problems(spec: Any, data_dir: Path | str) -> list[str]:
    """What keeps ``spec``'s dataset from loading on this machine (without downloading or decoding anything)."""
    return dataset_decl(spec).problems(spec, Path(data_dir).expanduser().resolve())


def subset_problems(specs: list[Any], data_dir: Path | str, cache_dir: Path | str) -> list[str]:
    """Subset sizes (``spec.subset``) larger than their training set, for the dataset specs of a study's trials.

    The driver asks before any trial starts, so a gridded size that does not fit is reported once, up front,
    instead of erroring one trial. Each underlying dataset is loaded once (without its subset).
    """
    wanted: dict[str, tuple[Any, int]] = {}
    for spec in specs:
        subset = getattr(spec, "subset", None)
        if subset is None:
            continue
        whole = spec.model_copy(update={"subset": None})
        key = whole.model_dump_json()
        if key not in wanted or wanted[key][1] < subset.size:
            wanted[key] = (whole, subset.size)
    problems = []
    for whole, size in wanted.values():
        problem = subset_size_problem(load_dataset(whole, data_dir, cache_dir), size)
        if problem is not None:
            problems.append(problem)
    return problems
