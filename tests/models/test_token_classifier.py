"""The thinc model around the Hugging Face classifier: heads, learning rates, int8, limits."""

import numpy as np
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam
from transformers import DistilBertConfig, DistilBertForTokenClassification

from spacy_bert_ner.errors import BertNERError, ModelLoadError
from spacy_bert_ner.models.head import add_case_embeddings, tag_names, uses_case
from spacy_bert_ner.models.token_classifier import window_length
from spacy_bert_ner.models.windows import CASE_TITLE, N_CASE_CLASSES

from ..conftest import TINY_MAX_LENGTH, TINY_TAGS


def test_head_lr_scale_speeds_up_only_the_head(tiny_bert):
    moved = {}
    for scale in (1.0, 50.0):
        nlp = spacy.blank("en")
        pipe = nlp.add_pipe(
            "bert_ner", config={"model": {"name": str(tiny_bert), "head_lr_scale": scale}}
        )
        gold = Doc(nlp.vocab, words=["angela", "merkel", "met"], ents=["B-PER", "I-PER", "O"])
        examples = [Example(Doc(nlp.vocab, words=["angela", "merkel", "met"]), gold)]
        nlp.initialize(lambda examples=examples: examples)
        head = pipe.hf_model.classifier.weight.detach().clone()
        embeddings = pipe.hf_model.bert.embeddings.word_embeddings.weight.detach().clone()
        nlp.update(examples, sgd=Adam(1e-3))
        moved[scale] = (
            (pipe.hf_model.classifier.weight - head).abs().max().item(),
            (pipe.hf_model.bert.embeddings.word_embeddings.weight - embeddings).abs().max().item(),
        )
    assert moved[50.0][0] > 20 * moved[1.0][0]
    assert abs(moved[50.0][1] - moved[1.0][1]) < 1e-6


def test_layer_lr_decay_slows_each_layer_below_the_top(tiny_bert):
    """One Adam step moves each weight by about the rate, so a parameter's largest move is
    its learning rate: the top layer's and the head's are unchanged by the decay, each layer
    below moves `decay` times less than the one above, the embeddings below the first."""
    moved = {}
    for decay in (1.0, 0.5):
        nlp = spacy.blank("en")
        config = {"name": str(tiny_bert), "layer_lr_decay": decay, "head_lr_scale": 10.0}
        pipe = nlp.add_pipe("bert_ner", config={"model": config})
        gold = Doc(nlp.vocab, words=["angela", "merkel", "met"], ents=["B-PER", "I-PER", "O"])
        examples = [Example(Doc(nlp.vocab, words=["angela", "merkel", "met"]), gold)]
        nlp.initialize(lambda examples=examples: examples)
        watched = {
            "head": pipe.hf_model.classifier.weight,
            "top": pipe.hf_model.bert.encoder.layer[1].intermediate.dense.weight,
            "first": pipe.hf_model.bert.encoder.layer[0].intermediate.dense.weight,
            "embeddings": pipe.hf_model.bert.embeddings.word_embeddings.weight,
        }
        before = {name: weight.detach().clone() for name, weight in watched.items()}
        nlp.update(examples, sgd=Adam(1e-3))
        moved[decay] = {
            name: (weight - before[name]).abs().max().item() for name, weight in watched.items()
        }
    ratios = {name: moved[0.5][name] / moved[1.0][name] for name in moved[1.0]}
    assert ratios == pytest.approx(
        {"head": 1.0, "top": 1.0, "first": 0.5, "embeddings": 0.25}, rel=0.05
    )


def test_int8_predicts_and_refuses_training(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "int8": True}})
    fp32 = spacy.blank("en")
    fp32.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    words = ["angela", "merkel", "met", "macron", "in", "paris"] * 3
    assert nlp(Doc(nlp.vocab, words=words)).ents is not None
    quantized = pipe.model.layers[0].shims[0]._model
    assert any("quantized" in type(m).__module__ for m in quantized.modules())
    gold = Doc(nlp.vocab, words=words)
    with pytest.raises(BertNERError, match="inference only"):
        nlp.update([Example(Doc(nlp.vocab, words=words), gold)], sgd=Adam(1e-3))


def test_window_length_defaults_to_model_limit(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    pipe.hf_model  # noqa: B018 - loads the model
    assert window_length(pipe.model) == TINY_MAX_LENGTH


def test_configured_window_length_is_capped_at_the_model_limit(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "max_length": 512}})
    pipe.hf_model  # noqa: B018 - loads the model
    assert window_length(pipe.model) == TINY_MAX_LENGTH
    doc = nlp(Doc(nlp.vocab, words=["berlin"] * 200))  # would overflow 64 positions uncapped
    assert len(doc) == 200


def test_optimizer_averages_are_used_inside_use_params_and_put_back_after(tiny_bert):
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    words = ["angela", "merkel", "met"]
    gold = Doc(nlp.vocab, words=words, ents=["B-PER", "I-PER", "O"])
    examples = [Example(Doc(nlp.vocab, words=words), gold)]
    nlp.initialize(lambda: examples)
    optimizer = Adam(1e-2, use_averages=True)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    shim = pipe.model.layers[0].shims[0]
    raw = pipe.hf_model.classifier.weight.detach().clone()
    average = torch.as_tensor(optimizer.averages[(shim.id, "classifier.weight")])
    assert not torch.allclose(raw, average)
    with nlp.use_params(optimizer.averages):
        assert torch.allclose(pipe.hf_model.classifier.weight, average)
        nlp("angela merkel met")
    assert torch.equal(pipe.hf_model.classifier.weight, raw)


def test_case_embeddings_start_as_the_encoders_own_and_save_with_the_model(tiny_bert, tmp_path):
    words = ["Angela", "Merkel", "met", "MACRON", "in", "paris"]
    plain = spacy.blank("en")
    plain.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert)}})
    nlp = spacy.blank("en")
    model = {"name": str(tiny_bert), "case_feature": True}
    pipe = nlp.add_pipe("bert_ner", config={"model": model})
    nlp.initialize()
    embeddings = pipe.hf_model.bert.embeddings.token_type_embeddings.weight
    assert embeddings.shape[0] == N_CASE_CLASSES and uses_case(pipe.hf_model)
    # Every class starts as row 0, so nothing changes until training tells them apart.
    expected = plain.get_pipe("bert_ner").predict([Doc(plain.vocab, words=words)])[0]
    assert np.allclose(pipe.predict([Doc(nlp.vocab, words=words)])[0], expected, atol=1e-5)
    with torch.no_grad():
        # (a constant shift would vanish in the LayerNorm that follows)
        embeddings[CASE_TITLE] += torch.linspace(-1.0, 1.0, embeddings.shape[1])
    moved = pipe.predict([Doc(nlp.vocab, words=words)])[0]
    assert not np.allclose(moved, expected, atol=1e-3)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert uses_case(loaded.get_pipe("bert_ner").hf_model)
    assert np.allclose(
        loaded.get_pipe("bert_ner").predict([Doc(loaded.vocab, words=words)])[0], moved, atol=1e-5
    )


def test_case_embeddings_learn_at_the_heads_rate(tiny_bert):
    nlp = spacy.blank("en")
    model = {"name": str(tiny_bert), "case_feature": True, "head_lr_scale": 50.0}
    pipe = nlp.add_pipe("bert_ner", config={"model": model})
    words = ["Angela", "Merkel", "met"]
    gold = Doc(nlp.vocab, words=words, ents=["B-PER", "I-PER", "O"])
    nlp.initialize(lambda: [Example(Doc(nlp.vocab, words=words), gold)])
    bert = pipe.hf_model.bert.embeddings
    before = [bert.token_type_embeddings.weight.detach().clone()]
    before.append(bert.word_embeddings.weight.detach().clone())
    nlp.update([Example(Doc(nlp.vocab, words=words), gold)], sgd=Adam(1e-3))
    case_moved = (bert.token_type_embeddings.weight - before[0]).abs().max().item()
    word_moved = (bert.word_embeddings.weight - before[1]).abs().max().item()
    assert case_moved > 20 * word_moved


def test_case_feature_needs_token_type_embeddings():
    config = DistilBertConfig(
        vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32, num_labels=3
    )
    with pytest.raises(ModelLoadError, match="token type embeddings"):
        add_case_embeddings(DistilBertForTokenClassification(config))


def test_resize_output_grows_the_head_through_the_model(tiny_bert):
    from spacy_bert_ner.models.architectures import build_token_classifier
    from spacy_bert_ner.models.model_api import own_model

    model = build_token_classifier(str(tiny_bert))
    model.initialize()
    old_shim = model.layers[0].shims[0]
    old = own_model(model).classifier.weight.detach().clone()
    tags = [*TINY_TAGS, "B-DATE", "I-DATE"]
    assert model.attrs["resize_output"](model, tags, below_outside=5.0) is model
    hf_model = own_model(model)
    assert tag_names(hf_model.config) == tags
    assert torch.equal(hf_model.classifier.weight[: len(TINY_TAGS)], old)
    assert model.layers[0].shims[0] is not old_shim  # new optimizer keys for the new shapes
