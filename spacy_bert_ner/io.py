"""Output files that are either complete or absent, never half-written.

`convert` and `evaluate` are rerun by `spacy project` whenever an output is missing, and the
project trusts any output that exists. A write cut short (a full disk, Ctrl-C, a killed job)
must therefore leave no file at all, or the previous complete one: every output is written to
a temporary file in the target's directory and renamed over the target only once complete
(`os.replace` is atomic within one file system).

Temporary files get the mode a plain `open(path, "w")` would give (0666 less the umask) from
the kernel, by being created with `os.open(..., 0o666)`: reading the umask would mean setting
it, a process-wide race in threaded hosts (a web server, Ray actors).
"""

import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import srsly

from .errors import BertNERError, one_line


@contextmanager
def atomic_path(path: Path | str) -> Iterator[Path]:
    """Yield a temporary path to write `path`'s content to; it becomes `path` on success.

    Parent directories are created. If the body raises, the temporary file is removed and
    `path` keeps whatever it held before. An OSError (no space, no permission, a directory in
    the way) becomes one BertNERError line naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_path = _new_file(path.parent, prefix=f".{path.name}.")
    except OSError as err:
        raise BertNERError(f"{path}: cannot write ({err.strerror or err})") from None
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    except OSError as err:
        tmp_path.unlink(missing_ok=True)
        raise BertNERError(f"{path}: cannot write ({err.strerror or err})") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_files(directory: Path | str) -> Iterator[Path]:
    """Yield a temporary directory whose files then replace those of `directory`, one by one.

    Each file of `directory` is always whole, the old version or the new one: a save killed
    midway (spaCy rewrites `model-last` at every evaluation) leaves a loadable model instead
    of a truncated weights file. Files of `directory` the new set lacks are removed after.
    Temporary directories of saves killed earlier are removed first.
    """
    directory = Path(directory)
    prefix = f".{directory.name}."
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        for stale in directory.parent.glob(f"{prefix}*.tmp"):
            shutil.rmtree(stale, ignore_errors=True)
        tmp_dir = Path(tempfile.mkdtemp(dir=directory.parent, prefix=prefix, suffix=".tmp"))
    except OSError as err:
        raise BertNERError(f"{directory}: cannot write ({err.strerror or err})") from None
    try:
        yield tmp_dir
        directory.mkdir(exist_ok=True)
        new_names = set()
        for new_file in sorted(tmp_dir.iterdir()):
            os.replace(new_file, directory / new_file.name)
            new_names.add(new_file.name)
        for old_file in directory.iterdir():
            if old_file.name not in new_names and old_file.is_file():
                old_file.unlink()
    except OSError as err:
        raise BertNERError(f"{directory}: cannot write ({err.strerror or err})") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


@contextmanager
def atomic_directory(directory: Path | str) -> Iterator[Path]:
    """Yield a temporary directory that becomes `directory` on success, in one rename.

    For a new directory tree written from nothing (a pipeline with its subdirectories), where
    `atomic_files`' file-by-file swap cannot apply: a reader sees the whole tree or none.
    `directory` must not exist, or be empty (rename(2) replaces an empty directory). If the
    body raises, the temporary tree is removed and `directory` is left as it was.
    """
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp_dir = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    except OSError as err:
        raise BertNERError(f"{directory}: cannot write ({err.strerror or err})") from None
    try:
        yield tmp_dir
        os.rename(tmp_dir, directory)
    except OSError as err:
        raise BertNERError(f"{directory}: cannot write ({err.strerror or err})") from None
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _new_file(directory: Path, prefix: str) -> Path:
    """Create an empty file of a new random name in `directory`, with the umask's mode."""
    while True:
        path = directory / f"{prefix}{secrets.token_hex(4)}.tmp"
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        return path


def write_json(path: Path | str, data: Any) -> None:
    """Write `data` as JSON to `path`, whole or not at all (see `atomic_path`).

    The standard library's encoder, not srsly's: srsly's ujson keeps about ten significant
    digits of a float, so a tuned learning rate read back from trials.json was another one.
    """
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", "utf8")


def read_json_object(
    path: Path, what: str = "", error: type[BertNERError] = BertNERError
) -> dict[str, Any]:
    """The JSON object in `path`; an unreadable file or another JSON value raises `error` in
    one line naming the file (`what` says what the file holds, for the message)."""
    suffix = f" {what}" if what else ""
    try:
        data = srsly.read_json(path)
    except (OSError, ValueError) as err:
        reason = f"cannot read the{suffix}" if what else "cannot read"
        raise error(f"{path}: {reason} ({one_line(err)})") from None
    if not isinstance(data, dict):
        raise error(f"{path}: expected a JSON object{' of' + suffix if what else ''}")
    return data
