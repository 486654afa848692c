"""The one atomic-write helper every cache, checkpoint and download goes through."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainables.files import atomic_torch_save, atomic_write


def test_atomic_write_replaces_whole_files_and_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "cache.bin"
    atomic_write(target, lambda tmp: tmp.write_bytes(b"old"))
    assert target.read_bytes() == b"old"

    def half_then_fail(tmp: Path) -> None:
        tmp.write_bytes(b"ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_bytes() == b"old"  # the reader still sees the whole old file
    assert sorted(p.name for p in target.parent.iterdir()) == ["cache.bin"]  # no temporary file left


def test_atomic_torch_save_round_trips(tmp_path: Path) -> None:
    atomic_torch_save({"w": torch.arange(3)}, tmp_path / "x.pt")
    assert torch.equal(torch.load(tmp_path / "x.pt", weights_only=True)["w"], torch.arange(3))
