"""`spacy train` continuing a trained bert_ner: a new type through the add_labels callback,
rehearsal through the before_update callback, both from the config alone."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
import torch
from spacy.tokens import DocBin
from thinc.api import Config

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.training.callbacks import cycle_batches, make_rehearsal

from ..conftest import NEW_ROWS, OLD_ROWS, examples_of

REPO = Path(__file__).resolve().parents[2]


def write_corpus(path: Path, rows) -> Path:
    nlp = spacy.blank("en")
    DocBin(docs=[eg.reference for eg in examples_of(nlp, rows)]).to_disk(path)
    return path


def continual_config(base: Path, old_corpus: Path, rehearse: bool) -> Config:
    """cpu.cfg resuming `base`, told about MISC, rehearsing on `old_corpus` or not."""
    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    config["components"]["bert_ner"] = {"source": str(base)}
    config["initialize"]["before_init"] = {
        "@callbacks": "spacy_bert_ner.add_labels.v1",
        "labels": ["MISC"],
    }
    if rehearse:
        config["training"]["before_update"] = {
            "@callbacks": "spacy_bert_ner.rehearse.v1",
            "components": ["bert_ner"],
            "words_per_step": 464,
            "corpus": {"@readers": "spacy_bert_ner.SentenceRuns.v1", "path": str(old_corpus)},
        }
    return config


@pytest.mark.slow
def test_spacy_train_adds_a_type_and_rehearses_a_sourced_bert_ner(trained_tiny, tmp_path):
    new_corpus = write_corpus(tmp_path / "new.spacy", NEW_ROWS)
    old_corpus = write_corpus(tmp_path / "old.spacy", OLD_ROWS)
    heads = {}
    for rehearse in (False, True):
        config_path = tmp_path / f"rehearse-{rehearse}.cfg"
        continual_config(trained_tiny, old_corpus, rehearse).to_disk(config_path)
        output = tmp_path / f"out-{rehearse}"
        result = subprocess.run(
            [sys.executable, "-m", "spacy", "train", str(config_path), "--output", str(output),
             f"--paths.train={new_corpus}", f"--paths.dev={new_corpus}",
             "--training.max_steps=2", "--training.optimizer.learn_rate.warmup_steps=0"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        pipe = spacy.load(output / "model-last").get_pipe("bert_ner")
        assert pipe.labels == ("LOC", "MISC", "PER")
        heads[rehearse] = pipe.hf_model.classifier.weight.detach()
    base_head = spacy.load(trained_tiny).get_pipe("bert_ner").hf_model.classifier.weight
    # Same data, seed and steps: only the rehearsal gradients tell the two runs apart.
    assert not torch.equal(heads[True], heads[False])
    for head in heads.values():
        assert 0 < (head[:5] - base_head).abs().max() < 0.05  # resumed, not re-initialised


def test_rehearsal_callback_explains_a_component_that_was_not_sourced(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    rehearse = make_rehearsal(lambda nlp: examples_of(nlp, OLD_ROWS), words_per_step=10)
    with pytest.raises(BertNERError, match="no rehearsal model; source it"):
        rehearse(nlp, {"step": 0})
    with pytest.raises(BertNERError, match="holds no examples"):
        make_rehearsal(lambda nlp: [])(nlp, {"step": 0})


def test_rehearsal_batches_cycle_through_the_corpus_in_new_orders():
    nlp = spacy.blank("en")
    examples = examples_of(nlp, OLD_ROWS * 4)  # 12 examples, 4-6 words each
    batches = cycle_batches(list(examples), words=10, seed=0)
    first_pass, second_pass = [], []
    while sum(map(len, first_pass)) < len(examples):
        first_pass.append(next(batches))
    while sum(map(len, second_pass)) < len(examples):
        second_pass.append(next(batches))
    assert sorted(id(eg) for b in first_pass for eg in b) == sorted(id(eg) for eg in examples)
    assert [id(eg) for b in first_pass for eg in b] != [id(eg) for b in second_pass for eg in b]
    assert all(sum(len(eg) for eg in batch) <= 12 for batch in first_pass)
