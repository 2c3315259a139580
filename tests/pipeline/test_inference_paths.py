"""The inference paths: which this CPU can run, the rule that picks one, agreement, and the
path a loaded pipeline reports."""

import pytest
import spacy

from spacy_bert_ner.errors import BertNERError
from spacy_bert_ner.models import runtime
from spacy_bert_ner.pipeline import inference_paths
from spacy_bert_ner.pipeline.inference_paths import (
    ORT_FP32,
    ORT_INT8,
    TORCH_BF16,
    TORCH_FP32,
    TORCH_INT8,
    PathSpeed,
    agreement,
    choose_path,
    path_in_use,
    runnable_paths,
)


@pytest.mark.parametrize(
    ("bf16", "onnx", "lossy", "paths"),
    [
        ("avx512_bf16", True, False, [TORCH_FP32, TORCH_BF16, ORT_FP32]),
        ("amx", True, True, [TORCH_FP32, TORCH_BF16, ORT_FP32, TORCH_INT8, ORT_INT8]),
        (None, True, False, [TORCH_FP32, ORT_FP32]),
        (None, False, True, [TORCH_FP32, TORCH_INT8]),
    ],
)
def test_runnable_paths_follow_the_cpu_the_extras_and_lossy(monkeypatch, bf16, onnx, lossy, paths):
    monkeypatch.setattr(runtime, "cpu_bf16_kind", lambda: bf16)
    monkeypatch.setattr(inference_paths, "cpu_bf16_kind", lambda: bf16)
    monkeypatch.setattr(inference_paths, "has_onnxruntime", lambda: onnx)
    assert runnable_paths(lossy=lossy) == paths


def test_choose_path_takes_the_fastest_at_or_above_the_floor():
    measured = [
        PathSpeed(TORCH_FP32, 100.0, 1.0),
        PathSpeed(TORCH_BF16, 200.0, 0.99),
        PathSpeed(ORT_FP32, 180.0, 1.0),
        PathSpeed(ORT_INT8, 300.0, 0.95),
    ]
    assert choose_path(measured, 0.99).path == TORCH_BF16
    assert choose_path(measured, 0.995).path == ORT_FP32
    assert choose_path(measured, 0.9).path == ORT_INT8
    assert choose_path(measured[:1], 1.0).path == TORCH_FP32
    with pytest.raises(BertNERError, match="no path agrees"):
        choose_path(measured[1:2], 1.0)


def test_agreement_is_the_share_of_texts_with_exactly_the_references_entities():
    reference = [
        frozenset({(0, 6, "PER")}),
        frozenset(),
        frozenset({(0, 3, "LOC"), (8, 12, "ORG")}),
    ]
    assert agreement(reference, reference) == 1.0
    moved = [frozenset({(0, 7, "PER")}), frozenset(), frozenset({(0, 3, "LOC"), (8, 12, "ORG")})]
    assert agreement(moved, reference) == pytest.approx(2 / 3)
    relabelled = [reference[0], reference[1], frozenset({(0, 3, "LOC"), (8, 12, "PER")})]
    assert agreement(relabelled, reference) == pytest.approx(2 / 3)
    assert agreement([], []) == 1.0
    with pytest.raises(ValueError):
        agreement(reference[:2], reference)


def test_overrides_name_the_path_explicitly_for_every_component():
    assert ORT_INT8.overrides(["a", "b"]) == {
        f"components.{name}.model.{key}": value
        for name in ("a", "b")
        for key, value in (("backend", "onnxruntime"), ("precision", "int8"), ("int8", True))
    }
    assert TORCH_BF16.overrides(["bert_ner"])["components.bert_ner.model.int8"] is False
    assert TORCH_BF16.name == "torch bf16"


def test_path_in_use_reports_what_the_loaded_component_runs(trained_tiny, monkeypatch):
    monkeypatch.setattr(runtime, "cpu_bf16_kind", lambda: "avx512_bf16")
    auto = spacy.load(trained_tiny, config={"components.bert_ner.model.precision": "auto"})
    assert path_in_use(auto) == "bert_ner: torch bf16 (precision auto)"
    monkeypatch.setattr(runtime, "cpu_bf16_kind", lambda: None)
    auto = spacy.load(trained_tiny, config={"components.bert_ner.model.precision": "auto"})
    assert path_in_use(auto) == "bert_ner: torch fp32 (precision auto)"
