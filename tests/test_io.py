"""Atomic output: a write that fails midway leaves the old file (or none), never part of one."""

import errno
import os
import stat
from pathlib import Path

import pytest

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.io import atomic_files, atomic_path


class Interrupted(Exception):
    pass


def plain_open_mode(tmp_path: Path) -> int:
    """The mode `open(path, "w")` gives a new file under the current umask."""
    probe = tmp_path / "probe"
    probe.write_text("")
    mode = stat.S_IMODE(probe.stat().st_mode)
    probe.unlink()
    return mode


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_path_writes_with_the_usual_mode(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        target = tmp_path / "nested" / "out.json"
        with atomic_path(target) as tmp:
            assert tmp.parent == target.parent and tmp != target
            tmp.write_text("new")
        assert target.read_text() == "new"
        assert stat.S_IMODE(target.stat().st_mode) == plain_open_mode(tmp_path) == 0o666 & ~umask
        assert os.listdir(target.parent) == ["out.json"]
    finally:
        os.umask(old)


def test_atomic_files_write_with_the_usual_mode(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_files(target) as tmp:
        (tmp / "weights").write_text("new")
    assert stat.S_IMODE((target / "weights").stat().st_mode) == plain_open_mode(tmp_path)


@pytest.mark.parametrize("exists", [True, False])
def test_atomic_path_failure_midway_keeps_the_old_file_or_none(tmp_path: Path, exists) -> None:
    target = tmp_path / "metrics.json"
    if exists:
        target.write_text("old and complete")
    with pytest.raises(Interrupted):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise Interrupted
    assert os.listdir(tmp_path) == (["metrics.json"] if exists else [])
    if exists:
        assert target.read_text() == "old and complete"


def test_atomic_path_os_errors_are_one_line_naming_the_file(tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    with pytest.raises(BertNERError, match=r"taken: cannot write \(Is a directory\)"):
        with atomic_path(tmp_path / "taken") as tmp:
            tmp.write_text("x")
    assert os.listdir(tmp_path) == ["taken"]

    with pytest.raises(BertNERError, match=r"out.json: cannot write \(No space left on device\)"):
        with atomic_path(tmp_path / "out.json"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert os.listdir(tmp_path) == ["taken"]

    (tmp_path / "file").write_text("")
    with pytest.raises(BertNERError, match="file/out.json: cannot write"):
        with atomic_path(tmp_path / "file" / "out.json"):
            pass


def test_atomic_files_replaces_files_and_drops_ones_the_new_set_lacks(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights").write_text("old")
    (model / "stale.bin").write_text("old")
    with atomic_files(model) as tmp:
        (tmp / "weights").write_text("new")
        (tmp / "config.json").write_text("new")
    assert {p.name: p.read_text() for p in model.iterdir()} == {
        "weights": "new",
        "config.json": "new",
    }
    assert os.listdir(tmp_path) == ["model"]


def test_atomic_files_failure_midway_keeps_every_old_file(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "weights").write_text("old")
    with pytest.raises(Interrupted):
        with atomic_files(model) as tmp:
            (tmp / "weights").write_text("new")
            raise Interrupted
    assert (model / "weights").read_text() == "old"
    assert os.listdir(tmp_path) == ["model"]
