"""StudyPaths: one resolution of a study's directories, and a ``--fresh`` that deletes nothing but the study."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import micro_spec, write_spec

from study.cli import main
from study.paths import StudyPaths, UnsafePath


def _tree(root: Path) -> Path:
    """A storage with a study, another study, data, cache, and an unrelated file beside the storage."""
    storage = root / "studies"
    for d in ("mine/tune", "other/tune", ".data", ".cache"):
        (storage / d).mkdir(parents=True)
    (storage / "mine" / "study.json").write_text("{}")
    (storage / "other" / "study.json").write_text("{}")
    (root / "unrelated.txt").write_text("keep me")
    return storage


def _everything(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_resolve_uses_the_storage_and_the_directories_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STUDY_CACHE_DIR", str(tmp_path / "ignored"))  # only the command line reads it
    paths = StudyPaths.resolve(tmp_path / "studies", "s1")
    assert paths.study == (tmp_path / "studies" / "s1").resolve()
    assert (paths.tune, paths.state, paths.report) == (paths.study / "tune", paths.study / "study.json",
                                                       paths.study / "report")  # fmt: skip
    assert paths.data == (tmp_path / "studies" / ".data").resolve()
    assert paths.cache == (tmp_path / "studies" / ".cache").resolve()
    moved = StudyPaths.resolve(tmp_path / "studies", "s1", cache=tmp_path / "c")
    assert moved.cache == (tmp_path / "c").resolve() and moved.data == paths.data


def test_the_cli_reads_the_directories_from_its_options_whose_defaults_the_environment_chooses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from study import cli

    calls = []

    def run_study(spec: str, **kw: object) -> None:
        calls.append(kw)
        raise KeyboardInterrupt  # stops the command before anything runs

    monkeypatch.setattr("study.runner.run_study", run_study)
    monkeypatch.setenv("STUDY_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("STUDY_CACHE_DIR", raising=False)
    cli.main(["run", "s.yaml", "--cache-dir", str(tmp_path / "c")])
    assert (calls[-1]["data_dir"], calls[-1]["cache_dir"]) == (str(tmp_path / "d"), str(tmp_path / "c"))
    monkeypatch.delenv("STUDY_DATA_DIR")
    cli.main(["run", "s.yaml"])
    assert (calls[-1]["data_dir"], calls[-1]["cache_dir"]) == (None, None)  # StudyPaths' <storage>/.data, .cache


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "../x", "/abs", "a\\b", "a\0b"])
def test_names_that_are_not_plain_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UnsafePath):
        StudyPaths.resolve(tmp_path, name)


def test_fresh_removes_only_the_study(tmp_path: Path) -> None:
    storage = _tree(tmp_path)
    before = _everything(tmp_path)
    assert StudyPaths.resolve(storage, "mine").remove_study()
    gone = before - _everything(tmp_path)
    assert gone == {"studies/mine", "studies/mine/tune", "studies/mine/study.json"}
    assert not StudyPaths.resolve(storage, "mine").remove_study()  # nothing there: nothing to do


def test_fresh_refuses_a_study_directory_that_is_a_symlink(tmp_path: Path) -> None:
    storage = _tree(tmp_path)
    (storage / "linked").symlink_to(storage / "other")
    before = _everything(tmp_path)
    with pytest.raises(UnsafePath, match="symlink"):
        StudyPaths.resolve(storage, "linked").remove_study()
    assert _everything(tmp_path) == before


def test_fresh_refuses_a_study_that_holds_the_cache_or_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = _tree(tmp_path)
    before = _everything(tmp_path)
    with pytest.raises(UnsafePath, match="holds"):
        StudyPaths.resolve(storage, "mine", cache=storage / "mine" / "cache").remove_study()
    monkeypatch.chdir(storage / "mine" / "tune")
    with pytest.raises(UnsafePath, match="holds"):
        StudyPaths.resolve(storage, "mine").remove_study()
    assert _everything(tmp_path) >= before


def test_fresh_through_the_storage_symlinked_elsewhere_still_removes_only_the_study(tmp_path: Path) -> None:
    """``--storage`` itself may be a symlink (a scratch disk); the study under its target is what goes."""
    real = _tree(tmp_path / "disk")
    (tmp_path / "link").symlink_to(real)
    assert StudyPaths.resolve(tmp_path / "link", "mine").remove_study()
    assert not (real / "mine").exists() and (real / "other" / "study.json").exists()


def test_unwritable_storage_is_refused_with_its_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    problems = StudyPaths.resolve(blocker / "studies", "s").check_writable()
    assert problems and all(str(blocker) in p for p in problems)
    assert StudyPaths.resolve(tmp_path / "ok", "s").check_writable() == []


@pytest.mark.parametrize("name", ["..", "."])
def test_cli_fresh_with_a_dangerous_name_deletes_nothing(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The name pattern refuses these at validation; the exit is 2 and every file is still there."""
    storage = _tree(tmp_path)
    spec = write_spec(tmp_path / "bad.yaml", micro_spec(name))
    monkeypatch.chdir(storage / "mine")
    before = _everything(tmp_path)
    assert main(["run", str(spec), "--storage", str(storage), "--fresh"]) == 2
    assert _everything(tmp_path) == before
