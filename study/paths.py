"""Where a study keeps everything on disk, resolved once from ``--storage``, ``--data-dir`` and ``--cache-dir``.

``<storage>/<name>/`` holds the study's own state (``study.json``, Ray Tune's ``tune/`` directory with the trial
checkpoints, ``report/``). Two directories are shared by every study of a storage: the data directory (default
``<storage>/.data``: datasets and their downloads) and the cache directory (default ``<storage>/.cache``: trained
extractors and guidance classifiers, prepared image folders, FID/KID reference features). The README documents
both. They travel as values: the driver passes them to what it prepares and to each trial in its runtime
(``trainables.trainable.Runtime``); nothing reads them from the environment except the command line, where two
variables choose the options' defaults (``study.cli.DATA_ENV``, ``study.cli.CACHE_ENV``).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path


class UnsafePath(Exception):
    """A path the harness refuses to write or delete; the message names it and why."""


@dataclass(frozen=True)
class StudyPaths:
    """Absolute paths of one study (``resolve``)."""

    storage: Path
    study: Path
    data: Path
    cache: Path

    @classmethod
    def resolve(
        cls, storage: str | Path, name: str, data: str | Path | None = None, cache: str | Path | None = None
    ) -> StudyPaths:
        """Paths of study ``name`` under ``storage``; ``data`` and ``cache`` (default ``<storage>/.data`` and
        ``<storage>/.cache``) move the shared directories."""
        if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
            raise UnsafePath(f"study name {name!r} is not a plain directory name")
        root = Path(storage).expanduser().absolute()
        data_dir = Path(data or root / ".data").expanduser().resolve()
        cache_dir = Path(cache or root / ".cache").expanduser().resolve()
        return cls(root.resolve(), root.resolve() / name, data_dir, cache_dir)

    @property
    def tune(self) -> Path:
        """Ray Tune's experiment directory (trial checkpoints)."""
        return self.study / "tune"

    @property
    def state(self) -> Path:
        """``study.json``: instance id, spec fingerprint, MLflow ids."""
        return self.study / "study.json"

    @property
    def report(self) -> Path:
        return self.study / "report"

    @property
    def spool(self) -> Path:
        """Tracking writes an outage kept back, one ``<trial>.jsonl`` each (``study.contract.runlog.Spool``)."""
        return self.study / "spool"

    def check_writable(self) -> list[str]:
        """Problems that would stop the study writing its state, data or cache (each names the directory)."""
        problems = []
        for what, path in (("storage", self.storage), ("data", self.data), ("cache", self.cache)):
            try:
                path.mkdir(parents=True, exist_ok=True)
                with tempfile.NamedTemporaryFile(dir=path, prefix=".write-check-"):
                    pass
            except OSError as e:
                problems.append(f"the {what} directory {path} is not writable: {e.strerror or e}")
        return problems

    def remove_study(self) -> bool:
        """Delete the study's own directory (``--fresh``) after checking it is nothing else; True if it existed.

        Refused, before anything is removed: a study directory that is a symlink (its target would be emptied), or
        one that does not resolve to a direct child of the storage directory, or one that holds the storage, data
        or cache directories or the current working directory. ``shutil.rmtree`` itself never follows symlinks
        inside the tree.
        """
        if not os.path.lexists(self.study):
            return False
        if self.study.is_symlink():
            raise UnsafePath(f"{self.study} is a symlink (to {os.readlink(self.study)}); --fresh removes only a real "
                             "study directory: remove the link yourself")  # fmt: skip
        real = self.study.resolve()
        if real.parent != self.storage or real.name != self.study.name:
            raise UnsafePath(f"{self.study} resolves to {real}, outside the storage directory {self.storage}")
        for other in (self.storage, self.data, self.cache, Path.cwd().resolve()):
            if other == real or real in other.parents:
                raise UnsafePath(f"--fresh would delete {real}, which holds {other}; nothing was removed")
        shutil.rmtree(real)
        return True


STATE_FILE = "study.json"


def locate_study(target: str | Path, storage: str | Path) -> tuple[str, Path]:
    """(name, storage) of a study given by its name under ``storage`` or by its directory.

    ``run`` prints the study's directory (``studies/quickstart``), so that path must work wherever a study name
    does: a target that is a directory holding ``study.json``, or any target with a path separator, is the study's
    own directory and its parent is the storage (``--storage`` is then ignored). Anything else is a name.
    """
    text = str(target)
    path = Path(text).expanduser()
    if (path / STATE_FILE).is_file() or os.sep in text.rstrip(os.sep) or (os.altsep and os.altsep in text):
        real = path.absolute()
        return real.name, real.parent
    return text.rstrip(os.sep), Path(storage)
