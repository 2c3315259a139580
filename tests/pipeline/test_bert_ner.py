"""The bert_ner component: factory, annotation, options and errors. What any input does to
it is in test_bert_ner_inputs.py; saving and loading it in test_bert_ner_disk.py."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from transformers import BertConfig, BertModel

from spacy_bert_ner.errors import BertNERError, ModelLoadError, TagSchemeError

from ..conftest import write_tiny_bert
from .conftest import TEXT, ents


def test_factory_found_through_entry_point_without_import(tiny_bert):
    code = (
        "import spacy; nlp = spacy.blank('en'); "
        f"nlp.add_pipe('bert_ner', config={{'model': {str(tiny_bert)!r}}}); "
        f"doc = nlp({TEXT!r}); "
        "print(len(doc), doc.has_annotation('ENT_IOB'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "8 True"


def test_entities_are_labelled_and_scored(nlp):
    doc = nlp(TEXT)
    assert doc.ents, "the tiny random model predicts some entities on this text"
    for ent in doc.ents:
        assert ent.label_ in {"PER", "LOC", "ORG", "MISC"}
        assert 0.0 < ent._.bert_ner_score <= 1.0


def test_spans_key_and_keeping_existing_entities(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "spans_key": "bert"})
    doc = nlp(TEXT)
    assert not doc.ents and len(doc.spans["bert"]) > 0
    assert all(span._.bert_ner_score is not None for span in doc.spans["bert"])

    keep = spacy.blank("en")
    ruler = keep.add_pipe("entity_ruler")
    ruler.add_patterns([{"label": "GPE", "pattern": "Berlin"}])
    keep.add_pipe("bert_ner", config={"model": str(tiny_bert), "overwrite_ents": False})
    doc = keep(TEXT)
    berlin = [e for e in doc.ents if e.text == "Berlin"]
    assert berlin and berlin[0].label_ == "GPE" and berlin[0]._.bert_ner_score is None


def test_initialize_builds_head_for_example_labels(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    doc = Doc(
        nlp.vocab, words=["Angela", "works", "at", "Siemens"], ents=["B-PER", "O", "O", "B-COMPANY"]
    )
    nlp.initialize(lambda: [Example(nlp.make_doc(doc.text), doc)])
    assert pipe.labels == ("COMPANY", "PER")
    assert pipe.tag_scheme.tags == ("O", "B-COMPANY", "I-COMPANY", "B-PER", "I-PER")


def test_initialize_keeps_matching_head(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    before = ents(nlp(TEXT))
    plain = nlp.make_doc("no entities here")
    pipe.initialize(lambda: [Example(plain, plain)], labels=["PER", "LOC", "ORG", "MISC"])
    assert ents(nlp(TEXT)) == before
    assert pipe.labels == ("LOC", "MISC", "ORG", "PER")


@pytest.mark.parametrize(
    "tags,scheme",
    [
        (["O", "B-PER", "I-PER", "E-PER", "S-PER"], "BIOES"),
        (["O", "B-PER", "I-PER", "L-PER", "U-PER"], "BILOU"),
        (["O", "B-PER", "I-PER"], "IOB2"),
    ],
)
def test_each_scheme_is_read_from_the_model(tmp_path, tags, scheme):
    path = write_tiny_bert(tmp_path / scheme, tags=tags)
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(path)})
    nlp(TEXT)
    assert pipe.tag_scheme.name == scheme


def test_iob1_override(tmp_path):
    path = write_tiny_bert(tmp_path / "iob1", tags=["O", "B-PER", "I-PER"])
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(path), "scheme": "IOB1"})
    nlp(TEXT)
    assert pipe.tag_scheme.name == "IOB1"


def test_label_map_that_fits_no_scheme(tmp_path):
    path = write_tiny_bert(tmp_path / "bad", tags=["LABEL_0", "LABEL_1"])
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(path)})
    with pytest.raises(TagSchemeError, match="LABEL_0"):
        nlp(TEXT)


def test_missing_model_is_explained(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": "no-such-org/no-such-model"})
    with pytest.raises(ModelLoadError, match="no-such-org/no-such-model.*offline mode is on"):
        nlp(TEXT)


def test_encoder_without_head_is_explained(tmp_path, tiny_bert):
    encoder = BertModel(BertConfig.from_pretrained(tiny_bert))
    encoder.save_pretrained(tmp_path / "encoder", safe_serialization=True)
    for name in ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        (tmp_path / "encoder" / name).write_bytes((Path(tiny_bert) / name).read_bytes())
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tmp_path / "encoder")})
    with pytest.raises(ModelLoadError, match="not a token classifier"):
        nlp(TEXT)


def test_pickle_only_weights_are_refused(tmp_path, tiny_bert):
    from transformers import BertForTokenClassification

    model = BertForTokenClassification.from_pretrained(tiny_bert)
    model.save_pretrained(tmp_path / "pickled", safe_serialization=False)
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tmp_path / "pickled")})
    with pytest.raises(ModelLoadError, match="safe_serialization=True"):
        nlp(TEXT)


def test_slow_tokenizer_only_is_refused(monkeypatch, tiny_bert):
    # No offline way makes AutoTokenizer fall back to a slow class for BERT, so stand one in.
    from transformers import BertTokenizer

    import spacy_bert_ner.models.hf_loading

    monkeypatch.setattr(
        spacy_bert_ner.models.hf_loading.AutoTokenizer,
        "from_pretrained",
        lambda name, **kwargs: BertTokenizer.from_pretrained(name),
    )
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    with pytest.raises(ModelLoadError, match="no fast"):
        nlp(TEXT)


def test_n_process_2(nlp, tmp_path):
    nlp.to_disk(tmp_path / "p")
    loaded = spacy.load(tmp_path / "p")
    texts = [TEXT, "Paris and Berlin", "berlin " * 40] * 3
    expected = [[(e.start, e.end, e.label_) for e in loaded(t).ents] for t in texts]
    got = [
        [(e.start, e.end, e.label_) for e in d.ents]
        for d in loaded.pipe(texts, n_process=2, batch_size=2)
    ]
    assert got == expected


def test_real_minilm_encoder_load_predict_save_load(tmp_path):
    """The embedded MiniLM: a base encoder gets a head at initialize, then round-trips."""
    from spacy_bert_ner.models.architectures import minilm_name

    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": minilm_name()}})
    plain = nlp.make_doc(TEXT)
    pipe.initialize(lambda: [Example(plain, plain)], labels=["PER", "LOC", "ORG", "MISC"])
    assert pipe.hf_model.config.hidden_size == 384 and pipe.hf_model.config.num_hidden_layers == 6
    before = ents(nlp(TEXT))
    nlp.to_disk(tmp_path / "minilm")
    assert ents(spacy.load(tmp_path / "minilm")(TEXT)) == before


def test_entities_stay_inside_sentences(nlp):
    words = ["angela", "merkel", "met", "paris", ".", "berlin", "and", "paris", "met", "the"] * 5
    sent_starts = [i % 5 == 0 for i in range(len(words))]
    doc = nlp(Doc(nlp.vocab, words=words, sent_starts=sent_starts))
    assert doc.ents
    for ent in doc.ents:
        assert not any(token.is_sent_start for token in ent[1:])


def batch_of_docs(nlp):
    """Docs of the tiny vocabulary, one longer than a window, with and without sentences."""
    words = ["angela", "merkel", "met", "macron", "in", "paris", "and", "berlin", "of", "the"]
    return [
        Doc(nlp.vocab, words=words),
        Doc(nlp.vocab, words=words[::-1] * 2, sent_starts=[i % 10 == 0 for i in range(20)]),
        Doc(nlp.vocab, words=(words + ["to", "merkel"]) * 8),  # 96 tokens: several windows
        Doc(nlp.vocab, words=["paris"]),
    ]


def predictions(nlp, docs):
    return [ents(doc) for doc in nlp.pipe(doc.copy() for doc in docs)]


def test_add_label_grows_a_trained_head_and_keeps_every_prediction(trained_tiny, tmp_path):
    nlp = spacy.load(trained_tiny)
    pipe = nlp.get_pipe("bert_ner")
    old_tags = pipe.tag_scheme.tags
    old_head = pipe.hf_model.classifier
    weight, bias = old_head.weight.detach().clone(), old_head.bias.detach().clone()
    docs = batch_of_docs(nlp)
    before = predictions(nlp, docs)
    assert sum(map(len, before)) >= 10, "the trained model predicts entities to compare"

    assert pipe.add_label("MISC") == 1
    assert pipe.tag_scheme.tags == (*old_tags, "B-MISC", "I-MISC")
    assert pipe.labels == ("LOC", "MISC", "PER") and pipe.cfg["labels"] == list(pipe.labels)
    head = pipe.hf_model.classifier
    assert torch.equal(head.weight[: len(old_tags)], weight)  # bit for bit
    assert torch.equal(head.bias[: len(old_tags)], bias)
    config = pipe.hf_model.config
    assert config.num_labels == len(old_tags) + 2 == head.out_features
    assert [config.id2label[i] for i in range(config.num_labels)] == list(pipe.tag_scheme.tags)
    assert config.label2id == {tag: i for i, tag in enumerate(pipe.tag_scheme.tags)}

    after = predictions(nlp, docs)
    assert [[e[:3] for e in doc] for doc in after] == [[e[:3] for e in doc] for doc in before]
    for doc_after, doc_before in zip(after, before, strict=True):
        for (*_, score_after), (*_, score_before) in zip(doc_after, doc_before, strict=True):
            assert score_after == pytest.approx(score_before, rel=0.015)
    assert pipe.add_label("MISC") == 0

    nlp.to_disk(tmp_path / "grown")
    loaded = spacy.load(tmp_path / "grown")
    assert loaded.get_pipe("bert_ner").tag_scheme.tags == pipe.tag_scheme.tags
    assert predictions(loaded, docs) == after


@pytest.mark.parametrize("scheme", ["BIOES", "BILOU"])
def test_add_label_adds_every_tag_of_the_scheme(tmp_path, scheme):
    prefixes = "BIES" if scheme == "BIOES" else "BILU"
    tags = ["O", *(f"{p}-PER" for p in prefixes), *(f"{p}-LOC" for p in prefixes)]
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(write_tiny_bert(tmp_path, tags=tags))})
    docs = batch_of_docs(nlp)
    before = predictions(nlp, docs)
    assert any(before)
    pipe.add_label("MISC")
    assert pipe.tag_scheme.tags == (*tags, *(f"{p}-MISC" for p in prefixes))
    assert pipe.tag_scheme.name == scheme
    assert [[e[:3] for e in d] for d in predictions(nlp, docs)] == [
        [e[:3] for e in d] for d in before
    ]


def test_add_label_before_loading_waits_for_initialize(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    assert pipe.add_label("EVENT") == 1
    gold = Doc(nlp.vocab, words=["angela", "met"], ents=["B-PER", "O"])
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=["angela", "met"]), gold)])
    assert pipe.labels == ("EVENT", "PER")


def test_span_group_keeps_its_scores_in_attrs_as_spancat_does(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "bert_ner",
        config={"model": str(tiny_bert), "spans_key": "bert", "overwrite_ents": False},
    )
    doc = nlp.make_doc(TEXT)
    doc.spans["bert"] = [doc[0:1]]
    doc = nlp.get_pipe("bert_ner")(doc)
    group = doc.spans["bert"]
    assert len(group) > 1 and group[0] == doc[0:1]
    scores = group.attrs["scores"]
    assert len(scores) == len(group)
    assert np.isnan(scores[0])  # kept from before, not scored by bert_ner
    assert scores[1:].tolist() == pytest.approx([s._.bert_ner_score for s in group][1:])


def test_factory_default_model_is_the_architecture_with_its_defaults():
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner")
    block = nlp.config["components"]["bert_ner"]["model"]
    assert block["@architectures"] == "spacy_bert_ner.TokenClassifier.v1"
    assert block["name"] == "bert-base-cased"
    assert block["head_lr_scale"] == 1.0 and block["case_feature"] is False


def test_threshold_drops_entities_scored_under_it_and_leaves_their_tokens_outside(tiny_bert):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert)})
    everything = ents(nlp(TEXT))
    scores = sorted(score for *_, score in everything)
    assert len(set(scores)) >= 2, "the tiny model's entities have different scores"
    cut = (scores[0] + scores[1]) / 2
    nlp.get_pipe("bert_ner").cfg["threshold"] = cut  # as `spacy find-threshold` sets it
    doc = nlp(TEXT)
    assert ents(doc) == [e for e in everything if e[3] >= cut]
    dropped = [e for e in everything if e[3] < cut]
    for start, end, *_ in dropped:
        assert all(token.ent_iob_ == "O" for token in doc[start:end])


def test_threshold_comes_from_the_config_not_from_the_saved_pipeline(tiny_bert, tmp_path):
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "threshold": 0.5})
    nlp.to_disk(tmp_path / "p")
    assert "threshold" not in json.loads((tmp_path / "p" / "bert_ner" / "cfg").read_text())
    assert spacy.load(tmp_path / "p").get_pipe("bert_ner").cfg["threshold"] == 0.5
    override = {"components": {"bert_ner": {"threshold": 1.0}}}
    strict = spacy.load(tmp_path / "p", config=override)
    assert strict.get_pipe("bert_ner").cfg["threshold"] == 1.0
    assert not strict(TEXT).ents


@pytest.mark.parametrize("threshold", [-0.1, 1.5])
def test_threshold_outside_zero_one_is_refused(tiny_bert, threshold):
    nlp = spacy.blank("en")
    with pytest.raises(BertNERError, match="threshold must lie between 0 and 1"):
        nlp.add_pipe("bert_ner", config={"model": str(tiny_bert), "threshold": threshold})
