"""The typed settings: checked once when a config builds the model, one wording for a bad
choice, `int8` folded into the one precision, and frozen."""

import dataclasses

import numpy as np
import pytest
import spacy

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.models.architectures import (
    build_listener_token_classifier,
    build_token_classifier,
    first_piece,
)
from spacy_bert_ner.models.model_api import architecture, describe_model
from spacy_bert_ner.models.settings import (
    Backend,
    ListenerSettings,
    Precision,
    TokenClassifierSettings,
    fold_int8,
)

BAD_CHOICES = [
    ("precision", "fp8"),
    ("precision", "half"),
    ("precision", "float32"),
    ("precision", ""),
    ("backend", "tensorrt"),
    ("backend", "onnx"),
    ("backend", ""),
]
ONE_OF = {"precision": "auto, fp32, bf16, int8", "backend": "torch, onnxruntime"}


@pytest.mark.parametrize(("setting", "value"), BAD_CHOICES)
def test_a_bad_choice_has_the_one_wording(setting, value):
    """The wording of `errors.parse_choice`, which the commands' choices (`--engine`, the
    tag scheme) use too."""
    want = f"unknown {setting} {value!r}: use one of {ONE_OF[setting]}"
    with pytest.raises(BertNERError) as raised:
        build_token_classifier("never/loaded", **{setting: value})
    assert str(raised.value) == want


def test_a_bad_choice_in_a_config_fails_when_the_pipe_is_added(tiny_bert):
    nlp = spacy.blank("en")
    with pytest.raises(BertNERError, match="unknown precision 'half': use one of auto"):
        nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "precision": "half"}})


def test_choices_parse_into_their_enums_whatever_their_case():
    settings = architecture(build_token_classifier("x", precision="BF16", backend="Torch")).settings
    assert isinstance(settings, TokenClassifierSettings)
    assert settings.precision is Precision.BF16 and settings.backend is Backend.TORCH


@pytest.mark.parametrize("precision", ["fp32", "auto", "int8", "FP32"])
def test_the_int8_flag_folds_into_precision_int8(precision):
    assert fold_int8(precision, int8=True) is Precision.INT8
    model = build_token_classifier("never/loaded", int8=True, precision=precision)
    assert architecture(model).settings.precision is Precision.INT8
    described = describe_model(model)
    assert (described["precision"], described["int8"]) == ("int8", True)


def test_without_the_int8_flag_precision_is_what_it_says():
    for precision in Precision:
        assert fold_int8(precision.value, int8=False) is precision
    assert describe_model(build_token_classifier("x", precision="auto"))["int8"] is False


def test_the_int8_flag_contradicts_bf16():
    with pytest.raises(BertNERError, match="int8 = true contradicts precision = 'bf16'"):
        build_token_classifier("never/loaded", int8=True, precision="bf16")


@pytest.mark.parametrize(
    ("setting", "value", "message"),
    [
        ("window_batch_size", 0, "window_batch_size must be an integer >= 1, not 0"),
        ("max_batch_pieces", 2.5, "max_batch_pieces must be an integer >= 1, not 2.5"),
        ("max_length", 0, "max_length must be an integer >= 1"),
        ("stride", -1, "stride must be an integer >= 0"),
        ("threads", 0, "threads must be an integer >= 1"),
        ("head_lr_scale", 0.0, "head_lr_scale must be above 0, not 0.0"),
        ("layer_lr_decay", -0.5, "layer_lr_decay must be above 0"),
    ],
)
def test_bad_numbers_are_refused_when_the_model_is_built(setting, value, message):
    with pytest.raises(BertNERError, match=message):
        build_token_classifier("never/loaded", **{setting: value})


def test_numbers_from_numpy_are_numbers():
    """A tuning library may hand a numpy integer for an integer setting."""
    model = build_token_classifier("x", max_length=np.int64(64), window_batch_size=np.int64(8))
    assert architecture(model).settings.max_length == 64


def test_the_listener_checks_its_settings_too():
    with pytest.raises(BertNERError, match="head_lr_scale must be above 0"):
        build_listener_token_classifier(first_piece(), head_lr_scale=-1.0)


def test_settings_are_frozen():
    standalone = architecture(build_token_classifier("x")).settings
    listener = architecture(build_listener_token_classifier(first_piece())).settings
    assert isinstance(listener, ListenerSettings)
    with pytest.raises(dataclasses.FrozenInstanceError):
        standalone.precision = Precision.INT8  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        listener.head_lr_scale = 2.0  # type: ignore[misc]


def test_the_model_carries_its_settings_not_loose_attrs():
    """spaCy's `resize_output` hook, the architecture object, and for the listener the tags
    its saved bytes carry: no setting is an attr of its own."""
    standalone = build_token_classifier("x")
    assert sorted(standalone.attrs) == ["architecture", "resize_output"]
    listener = build_listener_token_classifier(first_piece())
    assert sorted(listener.attrs) == ["architecture", "resize_output", "tags"]
