"""bert_ner on disk: round trips, loading that never touches the network or runs shipped
code, damaged files named in one line, and saves that are whole or not at all."""

import errno
import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch

from spacy_bert_ner.errors import BertNERError, ModelLoadError
from spacy_bert_ner.models.token_classifier import architecture_of

from ..conftest import TINY_TAGS
from .conftest import TEXT, ents


def test_disk_and_bytes_round_trip_give_identical_predictions(nlp, tmp_path):
    before = ents(nlp(TEXT))
    nlp.to_disk(tmp_path / "pipeline")
    assert (tmp_path / "pipeline" / "bert_ner" / "model" / "model.safetensors").exists()
    assert not list((tmp_path / "pipeline" / "bert_ner").rglob("*.bin"))
    loaded = spacy.load(tmp_path / "pipeline")
    assert ents(loaded(TEXT)) == before
    other = spacy.blank("en")
    other.add_pipe("bert_ner", config={"model": "no/such-model"})
    other.from_bytes(nlp.to_bytes())
    assert ents(other(TEXT)) == before


def test_load_never_touches_the_network(nlp, tmp_path):
    nlp.to_disk(tmp_path / "pipeline")
    code = (
        "import socket, spacy\n"
        "def refuse(*a, **k): raise RuntimeError('network used')\n"
        "socket.socket.connect = refuse; socket.create_connection = refuse\n"
        f"nlp = spacy.load({str(tmp_path / 'pipeline')!r}); print(len(nlp({TEXT!r}).ents) >= 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


@pytest.fixture(scope="module")
def saved(nlp, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "pipeline"
    nlp.to_disk(path)
    return path


def _edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


def _cut(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "tokenizer_config.json",
    "special_tokens_map.json",
)
THREE_TAGS = {"0": "O", "1": "B-PER", "2": "I-PER"}

# name: (damage done to the saved component's directory, the file the message must name,
# words it must contain)
DAMAGE = {
    "weights cut in half": (
        lambda c: _cut(c / "model" / "model.safetensors", 0.5),
        "model/model.safetensors",
        "cut short",
    ),
    "weights cut inside the header": (
        lambda c: _cut(c / "model" / "model.safetensors", 0.001),
        "model/model.safetensors",
        "not a readable safetensors file",
    ),
    "empty weights file": (
        lambda c: (c / "model" / "model.safetensors").write_bytes(b""),
        "model/model.safetensors",
        "not a readable safetensors file",
    ),
    "weights replaced by a git-lfs pointer": (
        lambda c: (c / "model" / "model.safetensors").write_text(
            "version https://git-lfs.github.com/spec/v1\noid sha256:0\nsize 101716\n"
        ),
        "model/model.safetensors",
        "not a readable safetensors file",
    ),
    "no weights": (
        lambda c: (c / "model" / "model.safetensors").unlink(),
        "model",
        "no .safetensors weights",
    ),
    "no tokenizer files": (
        lambda c: [(c / "model" / name).unlink() for name in TOKENIZER_FILES],
        "model",
        "no tokenizer.json",
    ),
    "damaged tokenizer.json": (
        lambda c: (c / "model" / "tokenizer.json").write_text('{"version": '),
        "model/tokenizer.json",
        "cannot load the tokenizer",
    ),
    "config labels do not match the weights": (
        lambda c: _edit_json(
            c / "model" / "config.json",
            id2label=THREE_TAGS,
            label2id={tag: int(i) for i, tag in THREE_TAGS.items()},
        ),
        "model/config.json",
        "has 9 rows",
    ),
    "no config.json": (
        lambda c: (c / "model" / "config.json").unlink(),
        "model/config.json",
        "missing",
    ),
    "damaged config.json": (
        lambda c: (c / "model" / "config.json").write_text("{"),
        "model/config.json",
        "cannot read",
    ),
    "no model directory": (lambda c: shutil.rmtree(c / "model"), "model", "missing"),
    "no cfg": (lambda c: (c / "cfg").unlink(), "cfg", "cannot read"),
    "damaged cfg": (lambda c: (c / "cfg").write_text("{"), "cfg", "cannot read"),
    "cfg from a newer version": (
        lambda c: _edit_json(c / "cfg", spacy_bert_ner_version="9.0.0", vote=3),
        "cfg",
        "spacy-bert-ner 9.0.0 with settings this version (0.1.0) does not know: vote",
    ),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_pipeline_files_get_one_line_naming_the_file(saved, tmp_path, case):
    damage, named, words = DAMAGE[case]
    copy = tmp_path / "pipeline"
    shutil.copytree(saved, copy)
    damage(copy / "bert_ner")
    with pytest.raises(ModelLoadError) as raised:
        spacy.load(copy)
    message = str(raised.value)
    assert str(copy / "bert_ner" / named) in message
    assert words in message and "\n" not in message


def test_saved_cfg_records_the_version_and_older_ones_still_load(saved, tmp_path):
    from spacy_bert_ner.about import __version__

    assert json.loads((saved / "bert_ner" / "cfg").read_text())["spacy_bert_ner_version"] == (
        __version__
    )
    copy = tmp_path / "pipeline"
    shutil.copytree(saved, copy)
    cfg = json.loads((copy / "bert_ner" / "cfg").read_text())
    del cfg["spacy_bert_ner_version"]  # as written before versions were recorded
    (copy / "bert_ner" / "cfg").write_text(json.dumps(cfg))
    loaded = spacy.load(copy, config={"components": {"bert_ner": {"on_bad_gold": "skip"}}})
    assert loaded.get_pipe("bert_ner").on_bad_gold == "skip"  # a training choice: not saved
    assert ents(loaded(TEXT)) == ents(spacy.load(saved)(TEXT))


class RunsCode:
    """A pickle that runs `code` when loaded, as a malicious pytorch_model.bin would."""

    def __init__(self, code: str) -> None:
        self.code = code

    def __reduce__(self):
        return (exec, (self.code,))


def test_loading_never_runs_code_shipped_in_the_model_dir(saved, tmp_path):
    copy = tmp_path / "pipeline"
    shutil.copytree(saved, copy)
    model_dir = copy / "bert_ner" / "model"
    marker = tmp_path / "code_ran"
    payload = f"open({str(marker)!r}, 'w').write('ran')\n"
    (model_dir / "custom.py").write_text(
        payload + "from transformers import BertConfig as Config, BertTokenizerFast as Tok\n"
        "from transformers import BertForTokenClassification as Model\n"
    )
    _edit_json(
        model_dir / "config.json",
        auto_map={"AutoConfig": "custom.Config", "AutoModelForTokenClassification": "custom.Model"},
    )
    _edit_json(
        model_dir / "tokenizer_config.json", auto_map={"AutoTokenizer": [None, "custom.Tok"]}
    )
    for name in ("pytorch_model.bin", "training_args.bin"):
        (model_dir / name).write_bytes(pickle.dumps(RunsCode(payload)))
    loaded = spacy.load(copy)
    assert ents(loaded(TEXT)) == ents(spacy.load(saved)(TEXT))
    # A model type that only its shipped code defines is refused, not imported.
    _edit_json(model_dir / "config.json", model_type="custom-ner")
    with pytest.raises(ModelLoadError, match="config.json: this model only loads with the Py"):
        spacy.load(copy)
    assert not marker.exists()


def test_a_save_that_fails_midway_keeps_the_previous_files(tiny_bert, tmp_path, monkeypatch):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    nlp.to_disk(tmp_path / "pipeline")
    before = ents(spacy.load(tmp_path / "pipeline")(TEXT))
    with torch.no_grad():
        pipe.hf_model.classifier.bias[:] = torch.arange(len(TINY_TAGS), dtype=torch.float32)
    assert ents(nlp(TEXT)) != before

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    # The weights are written, then the tokenizer fails: as a kill in the middle would.
    monkeypatch.setattr(architecture_of(pipe.model).tokenizer, "save_pretrained", disk_full)
    with pytest.raises(BertNERError, match="bert_ner/model: cannot write .No space left"):
        nlp.to_disk(tmp_path / "pipeline")
    assert ents(spacy.load(tmp_path / "pipeline")(TEXT)) == before
    assert not list((tmp_path / "pipeline" / "bert_ner").glob(".*"))


def test_save_removes_what_a_killed_save_left_behind(nlp, tmp_path):
    stale = tmp_path / "pipeline" / "bert_ner" / ".model.k1ll3d.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    nlp.to_disk(tmp_path / "pipeline")
    assert not stale.exists()
    assert sorted(p.name for p in (tmp_path / "pipeline" / "bert_ner").iterdir()) == [
        "cfg",
        "model",
    ]
