"""bert_ner listening to a shared spacy-transformers `transformer`, beside a tagger: pooling,
joint and frozen training, `replace_listeners`, save/load (`spacy package` and the rest of
spaCy's contract: tests/test_spacy_contract.py)."""

from pathlib import Path

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc, DocBin
from thinc.api import NumpyOps, Ragged

from spacy_bert_ner.errors import BertNERError, ModelLoadError
from spacy_bert_ner.models.architectures import first_piece

from ..conftest import gold_examples, train_multitask
from ..nasty_strings import NASTY_STRINGS
from ..pipeline.test_training import REPO, spacy_train

TEXT = "angela merkel met macron in paris"


def predictions(doc: Doc) -> tuple[list[tuple[str, str, float]], list[str]]:
    return [(e.text, e.label_, e._.bert_ner_score) for e in doc.ents], [t.tag_ for t in doc]


def test_first_piece_takes_each_tokens_first_wordpiece_and_zeros_for_none():
    ops = NumpyOps()
    pieces = Ragged(ops.asarray2f(np.arange(12).reshape(4, 3)), ops.asarray1i([2, 0, 1, 1]))
    vectors, backprop = first_piece()(pieces, is_train=True)
    assert vectors.tolist() == [[0, 1, 2], [0, 0, 0], [6, 7, 8], [9, 10, 11]]
    d_pieces = backprop(ops.asarray2f(np.ones((4, 3))))
    assert d_pieces.dataXd.tolist() == [[1, 1, 1], [0, 0, 0], [1, 1, 1], [1, 1, 1]]
    assert d_pieces.lengths.tolist() == [2, 0, 1, 1]


def test_joint_training_learns_tags_and_entities_through_the_shared_encoder(tiny_bert):
    nlp, losses = train_multitask(tiny_bert)
    for name in ("tagger", "bert_ner"):
        assert losses[-1][name] < losses[0][name] / 4, (name, losses[0], losses[-1])
    assert losses[0]["transformer"] > 0  # the listeners' gradients reached the encoder
    scores = nlp.evaluate(gold_examples(nlp))
    assert scores["ents_f"] == 1.0 and scores["tag_acc"] == 1.0


def test_a_token_without_wordpiece_is_outside_any_entity(trained_multitask):
    nlp = spacy.load(trained_multitask)
    doc = nlp(Doc(nlp.vocab, words=["angela", "\u200b", "merkel"]))
    assert doc[1].ent_iob_ == "O"
    assert all(1 not in range(e.start, e.end) for e in doc.ents)


def test_nasty_strings_alone_and_in_one_batch_lose_no_token(trained_multitask):
    """Regression: a batch without a single token (`nlp("")`) failed in spacy-transformers'
    pooling."""
    nlp = spacy.load(trained_multitask)
    texts = list(NASTY_STRINGS.values())
    for docs in ([nlp(text) for text in texts], list(nlp.pipe(texts, batch_size=4))):
        assert [doc.text for doc in docs] == texts
        assert all(token.ent_iob_ in ("B", "I", "O") for doc in docs for token in doc)
    assert list(nlp.pipe(["", " ", ""])) and nlp("").ents == ()


def test_save_load_keeps_predictions_and_refuses_the_other_architecture(
    trained_multitask, tiny_bert, tmp_path
):
    nlp = spacy.load(trained_multitask)
    doc = nlp(TEXT)
    assert [e.label_ for e in doc.ents] == ["PER", "PER", "LOC"]
    assert predictions(doc) == predictions(spacy.load(trained_multitask)(TEXT))
    assert predictions(nlp.from_bytes(nlp.to_bytes())(TEXT)) == predictions(doc)
    standalone = spacy.blank("en")
    standalone.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    with pytest.raises(ModelLoadError, match=r"bert_ner/model: holds a transformer listener's"):
        standalone.get_pipe("bert_ner").from_disk(trained_multitask / "bert_ner")


def test_a_listener_saved_with_its_settings_as_attrs_keeps_its_head(tiny_bert):
    """Listeners saved before the settings became one object carry `head_lr_scale` and
    `case_feature` in their thinc attrs, their head stored divided by that scale: loaded under
    another scale, the head still computes what it did, and no loose setting stays behind."""
    fixture = REPO / "tests" / "fixtures" / "saved_2026_12_07_listener"
    scale = "components.bert_ner.model.head_lr_scale"
    saved = spacy.load(fixture / "pipeline")
    rescaled = spacy.load(fixture / "pipeline", config={scale: 2.5})
    assert saved.config["components"]["bert_ner"]["model"]["head_lr_scale"] == 10.0
    for nlp in (saved, rescaled):
        assert sorted(nlp.get_pipe("bert_ner").model.attrs) == [
            "architecture",
            "resize_output",
            "tags",
        ]
    texts = ["Angela Merkel met Macron in Paris.", "ANGELA MERKEL in PARIS and berlin"]
    for want, got in zip(saved.pipe(texts), rescaled.pipe(texts), strict=True):
        assert [e.label_ for e in got.ents] == [e.label_ for e in want.ents] != []
        scores = [e._.bert_ner_score for e in got.ents]
        assert scores == pytest.approx([e._.bert_ner_score for e in want.ents], abs=1e-5)


def test_replace_listeners_gives_a_standalone_copy(trained_multitask, tmp_path):
    nlp = spacy.load(trained_multitask)
    before = predictions(nlp(TEXT))
    nlp.replace_listeners("transformer", "bert_ner", ["model.tok2vec"])
    assert predictions(nlp(TEXT)) == before
    nlp.to_disk(tmp_path / "replaced")
    alone = spacy.load(tmp_path / "replaced", exclude=["transformer", "tagger"])
    assert alone.pipe_names == ["bert_ner"]
    ents = [(e.text, e.label_) for e in alone(TEXT).ents]
    assert ents == [(text, label) for text, label, _ in before[0]]
    scores = [e._.bert_ner_score for e in alone(TEXT).ents]
    assert scores == pytest.approx([score for _, _, score in before[0]], abs=1e-6)


def test_rehearsal_asks_for_the_standalone_architecture(trained_multitask):
    nlp = spacy.load(trained_multitask)
    nlp.resume_training()
    with pytest.raises(BertNERError, match="rehearsal needs the standalone architecture"):
        nlp.get_pipe("bert_ner").rehearse(gold_examples(nlp))


def test_add_label_keeps_a_listeners_entities(trained_multitask):
    nlp = spacy.load(trained_multitask)
    before = predictions(nlp(TEXT))
    pipe = nlp.get_pipe("bert_ner")
    assert pipe.add_label("MISC") == 1
    assert set(pipe.labels) == {"LOC", "MISC", "PER"}
    after = predictions(nlp(TEXT))
    assert [(t, lab) for t, lab, _ in after[0]] == [(t, lab) for t, lab, _ in before[0]]


@pytest.fixture(scope="module")
def pos_corpus(tmp_path_factory) -> Path:
    nlp = spacy.blank("en")
    path = tmp_path_factory.mktemp("pos_corpus") / "tiny.spacy"
    DocBin(docs=[eg.reference for eg in gold_examples(nlp)], store_user_data=True).to_disk(path)
    return path


@pytest.mark.slow
def test_spacy_train_adds_bert_ner_to_a_trained_pipeline_leaving_its_transformer_bit_for_bit(
    trained_multitask, pos_corpus, tmp_path
):
    """cpu_frozen_transformer.cfg: transformer and tagger sourced and frozen, the transformer
    annotating; only bert_ner's head learns."""
    out = spacy_train(
        REPO / "configs" / "cpu_frozen_transformer.cfg",
        tmp_path / "out",
        f"--paths.base_pipeline={trained_multitask}",
        f"--paths.train={pos_corpus}",
        f"--paths.dev={pos_corpus}",
        "--training.max_steps=3",
        "--training.eval_frequency=1",
    )
    assert out.returncode == 0, out.stderr[-3000:]
    base, nlp = spacy.load(trained_multitask), spacy.load(tmp_path / "out" / "model-last")
    encoders = [p.get_pipe("transformer").model.transformer.state_dict() for p in (nlp, base)]
    assert encoders[0].keys() == encoders[1].keys()
    for name, weights in encoders[0].items():
        assert torch.equal(weights, encoders[1][name]), name
    taggers = [p.get_pipe("tagger").model for p in (nlp, base)]
    for new, old in zip(taggers[0].walk(), taggers[1].walk(), strict=True):
        for name in new.param_names:
            assert np.array_equal(new.get_param(name), old.get_param(name)), name
    new_head, old_head = (p.get_pipe("bert_ner").model.get_param("W") for p in (nlp, base))
    assert new_head.shape == old_head.shape and not np.array_equal(new_head, old_head)
    assert nlp.get_pipe("bert_ner").labels == ("LOC", "PER")
