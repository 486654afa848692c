"""Files that several processes may write or read at once (caches shared by trials, checkpoints, downloads)."""

from __future__ import annotations

import functools
import hashlib
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """``write(tmp)`` to a private temporary file beside ``path``, then rename it into place.

    The rename is atomic on POSIX, so a concurrent reader sees the old file or the new one, never half of one, and
    two writers of the same cache each finish a whole file. A failed write leaves no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_torch_save(obj: Any, path: Path) -> Path:
    """``torch.save`` through :func:`atomic_write`."""
    import torch

    return atomic_write(path, lambda tmp: torch.save(obj, tmp))


def sha256_of(path: str | Path) -> str:
    """The file's sha256 (hex), computed once per process for each (path, size, mtime)."""
    path = Path(path).resolve()
    st = path.stat()
    return _sha256(path, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    # keyed by size and mtime: a trial scoring every few epochs hashes a 95 MB weights file once per process
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class UnsafeFile(ValueError):
    """A data, weights or checkpoint file that would run code (or is not the file it claims to be) if unpickled;
    it was refused, and the message names it and what to do."""


def load_tensors(path: str | Path, map_location: Any = "cpu", mmap: bool = False) -> Any:
    """``torch.load`` of a checkpoint or cache file with ``weights_only=True``: tensors and plain containers only.

    A file whose pickle asks for anything else (a crafted ``__reduce__`` that would run a command) is refused
    before any of it runs, with ``UnsafeFile`` naming the file instead of torch's generic message.
    """
    import pickle

    import torch

    try:
        return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
        raise UnsafeFile(
            f"refused to load {path}: it holds more than tensors ({first}); delete it if it is a cache "
            "(it is rebuilt), or replace it with a file you trust"
        ) from None
