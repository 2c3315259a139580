"""`debug-data` on a corpus with each problem planted: spaCy's NER checks and ours."""

from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin
from thinc.api import Config
from typer.testing import CliRunner

from spacy_bert_ner.cli import app
from spacy_bert_ner.training.data_checks import debug_data

from ..conftest import tiny_examples

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


@pytest.fixture(scope="module")
def clean_corpus(tmp_path_factory) -> Path:
    """Well-formed PER and LOC docs, one of them 160 one-piece words long (several windows)."""
    nlp = spacy.blank("en")
    long_doc = Doc(
        nlp.vocab,
        words=["the", "berlin", "of", "angela"] * 40,
        ents=["O", "B-LOC", "O", "B-PER"] * 40,
    )
    path = tmp_path_factory.mktemp("clean") / "clean.spacy"
    DocBin(docs=[*(eg.reference for eg in tiny_examples(nlp)), long_doc]).to_disk(path)
    return path


#: The configs that train from an encoder without a head, and the setting naming the encoder.
ENCODER_CONFIGS = {
    "cpu.cfg": "components.bert_ner.model.name",
    "gpu.cfg": "components.bert_ner.model.name",
    "cpu_multitask.cfg": "components.transformer.model.name",
}


@pytest.mark.parametrize("config_name", ENCODER_CONFIGS)
def test_an_encoder_without_a_head_is_checked_with_the_head_of_the_corpus_labels(
    config_name, clean_corpus, tiny_encoder
):
    args = [f"--paths.train={clean_corpus}", f"--paths.dev={clean_corpus}"]
    args.append(f"--{ENCODER_CONFIGS[config_name]}={tiny_encoder}")
    result = CliRunner().invoke(app, ["debug-data", str(REPO / "configs" / config_name), *args])
    assert result.exit_code == 0, result.output
    output = " ".join(result.output.split())  # wasabi wraps lines
    for line in [
        "4 training docs, 4 evaluation docs",
        "2 label(s): 'LOC' (44), 'PER' (44)",
        "No entities consisting of or starting/ending with whitespace",
        "No entities crossing sentence boundaries",
        "No examples for texts WITHOUT new label",
        "No head yet: initialize gives it one for 5 tags",
        "Every gold entity aligns with the tokenizer",
    ]:
        assert line in output, output
    if config_name == "cpu_multitask.cfg":
        # 160 one-piece words in spans of 96 words (stride 72) and two special tokens: 98 and
        # 90 wordpieces, past the tiny encoder's 64.
        assert "Reads the spans of transformer 'transformer'" in output, output
        assert "2 of 5 spans are longer than 64 wordpieces" in output, output
    else:
        assert "1 of 4 docs need more than one window" in output, output


def test_a_listener_is_checked_on_its_transformers_spans(clean_corpus, tiny_encoder):
    report = debug_data(
        REPO / "configs" / "cpu_multitask.cfg",
        {
            "paths.train": str(clean_corpus),
            "paths.dev": str(clean_corpus),
            "components.transformer.model.name": str(tiny_encoder),
        },
    )
    [component] = report.components
    assert component.upstream == "transformer"
    assert component.head_tags is None
    assert component.missing_tags == ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]
    assert component.window_length == 64  # the tiny tokenizer's model_max_length
    assert component.windows_per_doc == [1, 1, 1, 2]  # spans of 96 words, stride 72
    assert component.pieces_per_span[-2:] == [98, 90]
    assert report.n_failures == 0
