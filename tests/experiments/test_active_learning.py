"""The active-learning simulation: reading the curves, and a whole run on the tiny encoder
with configs/cpu.cfg's component (what `spacy project run active-learning` runs on MiniLM)."""

import json
from dataclasses import asdict
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin

from spacy_bert_ner.conll import load_gold_docs
from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.experiments.active_learning import (
    ActiveLearningSettings,
    dev_f1,
    most_uncertain,
    run_active_learning,
    sentences_of,
    sentences_to_reach,
    summarise,
)
from spacy_bert_ner.experiments.recipe import Recipe
from spacy_bert_ner.labelling.select import expected_errors
from spacy_bert_ner.pipeline.predict import unannotated_copy

from ..conftest import NEW_ROWS, OLD_ROWS

CPU_CFG = Path(__file__).resolve().parents[2] / "configs" / "cpu.cfg"


def test_sentences_to_reach_interpolates_between_rounds():
    added, f1s = [0, 250, 500], [0.5, 0.6, 0.8]
    assert sentences_to_reach(added, f1s, 0.7) == pytest.approx(375.0)
    assert sentences_to_reach(added, f1s, 0.6) == pytest.approx(250.0)
    assert sentences_to_reach(added, f1s, 0.4) == 0.0  # the base model already has it
    assert sentences_to_reach(added, f1s, 0.9) is None  # never reached


def test_summary_compares_the_mean_curves_of_both_strategies():
    chains = [
        {"strategy": "uncertainty", "seed": 0, "added": [0, 10, 20], "dev_f1": [0.5, 0.6, 0.8]},
        {"strategy": "uncertainty", "seed": 1, "added": [0, 10, 20], "dev_f1": [0.5, 0.8, 0.8]},
        {"strategy": "random", "seed": 0, "added": [0, 10, 20], "dev_f1": [0.5, 0.55, 0.6]},
        {"strategy": "random", "seed": 1, "added": [0, 10, 20], "dev_f1": [0.5, 0.65, 0.8]},
    ]
    summary = summarise(chains)
    assert summary["uncertainty_mean_dev_f1"] == pytest.approx([0.5, 0.7, 0.8])
    assert summary["random_mean_dev_f1"] == pytest.approx([0.5, 0.6, 0.7])
    assert summary["uncertainty_sentences_to_random_final"] == pytest.approx(10.0)
    assert summary["share_of_random"] == pytest.approx(0.5)


def test_uncertainty_on_a_listener_pipeline_runs_its_transformer(trained_multitask, monkeypatch):
    """Regression: the pool was scored by bert_ner alone, so a bert_ner listening to a shared
    transformer read no encoding and ranked sentences on nothing."""
    nlp = spacy.load(trained_multitask)
    transformer = nlp.get_pipe("transformer")
    encoded: list[str] = []
    predict = transformer.predict

    def spy(docs):
        docs = list(docs)
        encoded.extend(doc.text for doc in docs)
        return predict(docs)

    monkeypatch.setattr(transformer, "predict", spy)
    pool = [Doc(nlp.vocab, words=words, ents=tags) for words, tags in OLD_ROWS + NEW_ROWS]
    ranked = most_uncertain(nlp, pool, len(pool))
    assert sorted(encoded) == sorted(doc.text for doc in pool)

    pipe = nlp.get_pipe("bert_ner")
    docs = list(nlp.pipe(unannotated_copy(nlp, doc) for doc in pool))
    errors = [expected_errors(found) for found in pipe.decode(docs, pipe.predict(docs))]
    assert ranked == sorted(range(len(pool)), key=lambda i: -errors[i])


def _write_corpus(path: Path, n_docs: int) -> Path:
    """`n_docs` documents of three sentences each, with sentence starts and entities."""
    vocab = spacy.blank("en").vocab
    rows = OLD_ROWS + [(words, ["O"] * len(words)) for words, _ in NEW_ROWS]
    docs = []
    for i in range(n_docs):
        chosen = [rows[(i + k) % len(rows)] for k in range(3)]
        words = [w for ws, _ in chosen for w in ws]
        tags = [t for _, ts in chosen for t in ts]
        starts = [j == 0 for ws, _ in chosen for j in range(len(ws))]
        docs.append(Doc(vocab, words=words, ents=tags, sent_starts=starts))
    DocBin(docs=docs).to_disk(path)
    return path


def test_sentences_of_keeps_each_sentence_with_its_entities(tmp_path):
    vocab = spacy.blank("en").vocab
    docs = list(DocBin().from_disk(_write_corpus(tmp_path / "c.spacy", 2)).get_docs(vocab))
    sentences = sentences_of(docs)
    assert len(sentences) == 6
    assert [t.text for t in sentences[0]] == OLD_ROWS[0][0]
    assert [e.label_ for e in sentences[0].ents] == ["PER", "PER", "LOC"]


def test_a_whole_simulation_on_the_tiny_encoder(tiny_encoder, tmp_path):
    train = _write_corpus(tmp_path / "train.spacy", 10)  # 30 sentences
    dev = _write_corpus(tmp_path / "dev.spacy", 2)
    settings = ActiveLearningSettings(
        seed_sentences=8, sizes=(5, 10), random_seeds=(0, 1), base_epochs=1
    )
    metrics = run_active_learning(
        CPU_CFG,
        train,
        dev,
        tmp_path / "work",
        settings,
        output=tmp_path / "al.json",
        plot=tmp_path / "al.png",
        model_name=str(tiny_encoder),
    )
    assert [(c["strategy"], c["seed"]) for c in metrics["chains"]] == [
        ("uncertainty", 0),
        ("uncertainty", 1),
        ("random", 0),
        ("random", 1),
    ]
    for chain in metrics["chains"]:
        assert chain["added"] == [0, 5, 10]
        assert len(chain["dev_f1"]) == 3 and all(0.0 <= f <= 1.0 for f in chain["dev_f1"])
        assert chain["dev_f1"][0] == metrics["chains"][0]["dev_f1"][0]  # the same base model
    assert metrics["n_pool"] == 22
    config = spacy.util.load_config(CPU_CFG)
    assert metrics["recipe"] == asdict(Recipe.of(config))  # the config's, fitted per run
    assert json.loads((tmp_path / "al.json").read_text())["summary"] == metrics["summary"]
    assert (tmp_path / "al.png").read_bytes()[:4] == b"\x89PNG"
    assert spacy.load(tmp_path / "work" / "base").pipe_names == ["bert_ner"]


def test_too_small_a_corpus_is_one_clear_error(tiny_encoder, tmp_path):
    train = _write_corpus(tmp_path / "train.spacy", 2)  # 6 sentences
    settings = ActiveLearningSettings(seed_sentences=8)
    with pytest.raises(Exception, match="6 sentences, the simulation needs 1008"):
        run_active_learning(CPU_CFG, train, train, tmp_path, settings, model_name=str(tiny_encoder))


def test_a_trained_pipeline_is_the_base_model_and_the_whole_corpus_the_pool(trained_tiny, tmp_path):
    """Adapting a trained pipeline: no seed set, rounds of rising sizes, round 0 is the
    pipeline as given, and the recipe is the pipeline's own config's."""
    train = _write_corpus(tmp_path / "train.spacy", 4)  # 12 sentences
    dev = _write_corpus(tmp_path / "dev.spacy", 1)
    settings = ActiveLearningSettings(
        seed_sentences=0, sizes=(2, 4, 8), random_seeds=(0,), round_epochs=2
    )
    work = tmp_path / "work"
    metrics = run_active_learning(trained_tiny, train, dev, work, settings)
    assert metrics["n_pool"] == 12 and metrics["base_seconds"] == 0.0
    assert metrics["scored_on"] == str(dev)
    assert not (work / "base").exists()
    nlp = spacy.load(trained_tiny)
    assert metrics["recipe"] == asdict(Recipe.of(nlp.config))
    untouched = dev_f1(nlp, load_gold_docs(dev, nlp.vocab))
    for chain in metrics["chains"]:
        assert chain["added"] == [0, 2, 4, 8]
        assert chain["dev_f1"][0] == pytest.approx(untouched)


def test_a_trained_pipeline_takes_no_seed_set(trained_tiny, tmp_path):
    train = _write_corpus(tmp_path / "train.spacy", 4)
    settings = ActiveLearningSettings(seed_sentences=5, sizes=(2,))
    with pytest.raises(BertNERError, match="no seed set"):
        run_active_learning(trained_tiny, train, train, tmp_path / "w", settings)


@pytest.mark.parametrize("sizes", [(), (0, 5), (5, 5), (10, 5)])
def test_sizes_must_rise_from_above_zero(sizes):
    with pytest.raises(BertNERError, match="sizes must rise"):
        ActiveLearningSettings(sizes=sizes)
