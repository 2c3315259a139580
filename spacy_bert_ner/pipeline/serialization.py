"""How a `bert_ner` component is stored: `cfg` (its settings, JSON), `model` (a Hugging
Face model directory: safetensors weights, config.json, tokenizer files) and, when it keeps
any, `mentions` (the hashed training mentions, `TrainingMentions.to_bytes`). A pipeline saved
before mentions were kept has no such file and loads with none.

The layout is the saved-pipeline format users' pipelines are in; `tests/fixtures` keeps one
saved by an earlier release that every version must load and predict with unchanged.
"""

import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import srsly
from spacy import util

from ..about import __version__
from ..errors import ModelLoadError
from ..io import atomic_path, read_json_object, write_json
from .mentions import TrainingMentions

#: Key of the package version in a saved component's cfg (not a setting).
VERSION_KEY = "spacy_bert_ner_version"
#: Settings in `cfg` that are not saved with the trained model: a loaded pipeline takes them
#: from its config (and overrides), and `spacy find-threshold` sets them in `cfg` directly.
UNSAVED_SETTINGS = ("threshold",)


def write_component(
    path: str | Path,
    cfg: dict[str, Any],
    save_model: Callable[[Path], None],
    exclude: Iterable[str],
    mentions: TrainingMentions | None = None,
) -> None:
    """Write a component's `cfg` (but `UNSAVED_SETTINGS`), its model (`save_model`) and its
    training `mentions` (if any) as spaCy's named parts, so `exclude` can leave each out."""
    saved = {key: value for key, value in cfg.items() if key not in UNSAVED_SETTINGS}
    parts: dict[str, Callable[[Path], Any]] = {
        "cfg": lambda p: write_cfg(saved, p),
        "model": save_model,
    }
    if mentions:
        parts["mentions"] = lambda p: _write_bytes(p, mentions.to_bytes())
    util.to_disk(path, parts, exclude)


def read_component(
    path: str | Path,
    cfg: dict[str, Any],
    load_model: Callable[[Path], None],
    exclude: Iterable[str],
) -> TrainingMentions:
    """Read what `write_component` wrote into `cfg` and the model (`load_model`); returns the
    training mentions (none if the component kept none)."""
    found: list[TrainingMentions] = []
    readers = {
        "cfg": lambda p: cfg.update(read_cfg(p, cfg)),
        "model": load_model,
        "mentions": lambda p: found.append(read_mentions(p)) if p.exists() else None,
    }
    util.from_disk(path, readers, exclude)
    return found[0] if found else TrainingMentions()


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp_path:
        tmp_path.write_bytes(data)


def read_mentions(path: Path) -> TrainingMentions:
    """The mentions file, or a one-line error naming it."""
    try:
        return TrainingMentions.from_bytes(path.read_bytes())
    except Exception:  # whatever a damaged msgpack breaks, the file is the cause
        raise ModelLoadError(f"{path}: not a training mentions file, or a damaged one") from None


def write_cfg(cfg: dict[str, Any], cfg_path: Path) -> None:
    """Write the settings with the package version, whole or not at all."""
    write_json(cfg_path, {**cfg, VERSION_KEY: __version__})


def read_cfg(cfg_path: Path, known: Iterable[str]) -> dict[str, Any]:
    """The settings saved at `cfg_path`, without the version.

    Settings written by another version that this one does not know (`known`) are refused:
    they would be silently ignored otherwise. Settings an older version did not write are
    simply absent, so the loading pipeline keeps its config values for them.
    """
    saved = read_json_object(cfg_path, "settings", ModelLoadError)
    version = saved.pop(VERSION_KEY, None)
    unknown = sorted(set(saved) - set(known))
    if unknown:
        raise ModelLoadError(
            f"{cfg_path}: written by spacy-bert-ner {version or '(unknown version)'} with "
            f"settings this version ({__version__}) does not know: {', '.join(unknown)}. "
            "Load it with the version that saved it"
            + (f" (pip install spacy-bert-ner=={version})" if version else "")
        )
    return saved


def directory_to_bytes(write: Callable[[Path], None]) -> bytes:
    """What `write` puts in an empty directory, as a msgpack map of relative path to bytes."""
    with tempfile.TemporaryDirectory() as tmp:
        write(Path(tmp))
        files = {
            str(p.relative_to(tmp)): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()
        }
    return srsly.msgpack_dumps(files)


def bytes_to_directory(data: bytes, read: Callable[[Path], Any]) -> Any:
    """Lay out `directory_to_bytes`'s files in a temporary directory and `read` it."""
    files: dict[str, bytes] = srsly.msgpack_loads(data)
    with tempfile.TemporaryDirectory() as tmp:
        for name, content in files.items():
            (Path(tmp) / name).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / name).write_bytes(content)
        return read(Path(tmp))
