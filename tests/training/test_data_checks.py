"""`debug-data` on a corpus with each problem planted: spaCy's NER checks and ours."""

from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from thinc.api import Config
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.training.data_checks import debug_data

REPO = Path(__file__).resolve().parents[2]


def planted_docs() -> list[Doc]:
    vocab = spacy.blank("en").vocab
    ok = Doc(
        vocab, words=["angela", "merkel", "met", "paris"], ents=["B-PER", "I-PER", "O", "B-LOC"]
    )
    # "berlin" + "er" written together: the tokenizer reads one token, the entity ends inside it
    misaligned = Doc(
        vocab, words=["berlin", "er", "met"], spaces=[False, True, False], ents=["B-LOC", "O", "O"]
    )
    # a double space is a whitespace token: an entity starting on it
    whitespace = Doc(
        vocab,
        words=["met", " ", "angela"],
        spaces=[True, False, False],
        ents=["O", "B-PER", "I-PER"],
    )
    crossing = Doc(
        vocab,
        words=["paris", "hilton", "met"],
        sent_starts=[True, True, False],
        ents=["B-PER", "I-PER", "O"],
    )
    new_type = Doc(
        vocab, words=["the", "iphone", "of", "paris"], ents=["O", "B-PRODUCT", "O", "B-LOC"]
    )
    long_doc = Doc(vocab, words=["angela"] * 100 + ["paris"], ents=["O"] * 100 + ["B-LOC"])
    return [ok, misaligned, whitespace, crossing, new_type, long_doc]  # fmt: skip


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    """cpu.cfg reading its training docs with spaCy's own reader, which retokenizes the text
    (SentenceRuns keeps the gold words, so it never meets misaligned gold)."""
    config = Config().from_disk(REPO / "configs" / "cpu.cfg", interpolate=False)
    config["corpora"]["train"] = {**config["corpora"]["dev"], "path": "${paths.train}"}
    path = tmp_path_factory.mktemp("config") / "retokenized.cfg"
    config.to_disk(path)
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("planted") / "planted.spacy"
    DocBin(docs=planted_docs()).to_disk(path)
    return path


def overrides(corpus: Path, tiny_bert: Path) -> dict:
    return {
        "paths.train": str(corpus),
        "paths.dev": str(corpus),
        "components.bert_ner.model.name": str(tiny_bert),
    }


def test_each_planted_problem_is_found(config, corpus, tiny_bert):
    report = debug_data(config, overrides(corpus, tiny_bert))
    assert report.n_train == 6
    assert report.label_counts == {"PER": 3, "LOC": 3, "PRODUCT": 1}  # misaligned: not counted
    assert report.whitespace_entities == 1
    assert report.sentence_crossing_entities == 1
    assert set(report.low_count_labels) == {"PER", "LOC", "PRODUCT"}
    [component] = report.components
    assert component.missing_tags == ["B-PRODUCT", "I-PRODUCT"]  # the tiny head has 4 types
    assert component.n_bad_gold == 1
    assert "training example 1: 'berlin' (LOC) does not align" in component.bad_gold[0]
    assert component.window_length == 64  # cpu.cfg's 128, capped at the tiny model's limit
    assert component.pieces_per_doc[5] > 64 and component.windows_per_doc[5] > 1
    assert component.windows_per_doc[0] == 1
    assert report.n_failures == 2


def test_command_prints_the_checks_and_exits_1_on_failures(config, corpus, tiny_bert):
    args = [f"--{key}={value}" for key, value in overrides(corpus, tiny_bert).items()]
    result = CliRunner().invoke(app, ["debug-data", str(config), *args])
    assert result.exit_code == 1, result.output
    for line in [
        "1 entity span(s) starting or ending on a whitespace token",
        "1 entity span(s) crossing sentence boundaries",
        "Low number of examples for label 'PRODUCT' (1)",
        "Tags the pretrained head lacks (2",
        "1 gold entities that on_bad_gold would meet",
        "docs need more than one window",
    ]:
        assert line in " ".join(result.output.split()), result.output  # wasabi wraps lines


def test_the_projects_corpus_reader_keeps_gold_words_so_nothing_misaligns(corpus, tiny_bert):
    report = debug_data(REPO / "configs" / "cpu.cfg", overrides(corpus, tiny_bert))
    assert report.components[0].n_bad_gold == 0
    assert report.whitespace_entities == 1
