"""Precision at run time: what `auto` picks per CPU and device, and bf16 against fp32 (the
setting's own rules are `test_settings`')."""

import logging

import numpy as np
import pytest
import spacy
import torch
from safetensors import safe_open
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam

from spacy_bert_ner.models import runtime
from spacy_bert_ner.models.model_api import describe_model
from spacy_bert_ner.models.runtime import choose_precision
from spacy_bert_ner.pipeline.loading import load_pipeline

PRECISION = "components.bert_ner.model.precision"
WORDS = ["angela", "merkel", "met", "macron", "in", "paris", "and", "berlin"] * 4


@pytest.fixture
def cpu_has(monkeypatch):
    """Pretend the CPU has the given bf16 support ("amx", "avx512_bf16" or None)."""

    def pretend(kind):
        monkeypatch.setattr(runtime, "cpu_bf16_kind", lambda: kind)

    return pretend


@pytest.mark.parametrize(
    ("amx", "avx512_bf16", "kind"),
    [(True, True, "amx"), (False, True, "avx512_bf16"), (False, False, None), (None, None, None)],
)
def test_cpu_bf16_kind_reads_torchs_checks(monkeypatch, amx, avx512_bf16, kind):
    """None: a torch too old to have the check."""
    for name, value in (
        ("_is_amx_tile_supported", amx),
        ("_is_avx512_bf16_supported", avx512_bf16),
    ):
        if value is None:
            monkeypatch.delattr(torch.cpu, name, raising=False)
        else:
            monkeypatch.setattr(torch.cpu, name, lambda value=value: value)
    assert runtime.cpu_bf16_kind() == kind


#: torch's CPU checks per flag set: (AMX tiles, avx512_bf16).
FLAG_SETS = {
    "amx": (True, True),
    "avx512_bf16 only": (False, True),
    "avx2 only": (False, False),
}


@pytest.mark.parametrize(
    ("flags", "auto", "bf16"),
    [("amx", "bf16", "bf16"), ("avx512_bf16 only", "bf16", "bf16"), ("avx2 only", "fp32", "fp32")],
)
def test_auto_takes_bf16_on_every_cpu_with_bf16_instructions(monkeypatch, flags, auto, bf16):
    """From torch's checks of the CPU to the path: the one rule, over each kind of CPU."""
    amx, avx512_bf16 = FLAG_SETS[flags]
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    assert choose_precision("auto", **_on_cpu()) == auto
    assert choose_precision("bf16", **_on_cpu()) == bf16
    assert choose_precision("fp32", **_on_cpu()) == "fp32"
    assert choose_precision("int8", **_on_cpu()) == "int8"


@pytest.mark.parametrize("flags", FLAG_SETS)
def test_auto_on_cuda_ignores_the_cpu(monkeypatch, flags):
    amx, avx512_bf16 = FLAG_SETS[flags]
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    cuda = {"backend": "torch", "device_type": "cuda"}
    assert choose_precision("auto", **cuda, mixed_precision=True) == "fp16"
    assert choose_precision("auto", **cuda, mixed_precision=False) == "fp32"


def test_gpu_keeps_mixed_precision_but_under_bf16(cpu_has):
    cpu_has(None)
    gpu = {"backend": "torch", "device_type": "cuda"}
    for precision in ("fp32", "auto"):
        assert choose_precision(precision, **gpu, mixed_precision=True) == "fp16"
        assert choose_precision(precision, **gpu, mixed_precision=False) == "fp32"
    assert choose_precision("bf16", **gpu, mixed_precision=True) == "bf16"


def test_onnxruntime_runs_bf16_as_fp32_with_a_warning(cpu_has, caplog):
    cpu_has("amx")
    ort = {**_on_cpu(), "backend": "onnxruntime"}
    with caplog.at_level(logging.WARNING):
        assert choose_precision("auto", **ort) == "fp32"
        assert not caplog.records
        assert choose_precision("bf16", **ort) == "fp32"
    assert "bf16 falls back to fp32" in caplog.text


def test_bf16_without_cpu_support_runs_fp32_and_says_so_once(tiny_bert, cpu_has, caplog):
    cpu_has(None)
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("bert_ner", config={"model": {"name": str(tiny_bert), "precision": "bf16"}})
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            nlp(Doc(nlp.vocab, words=WORDS))
        pipe.add_label("ORG")  # a head resize rebuilds the runtime: no second warning
        nlp(Doc(nlp.vocab, words=WORDS))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "precision 'bf16' falls back to fp32" in warnings[0].getMessage()
    assert describe_model(pipe.model)["runtime_precision"] == "fp32"
    assert not pipe.model.layers[0].shims[0].bf16


def test_forced_bf16_runs_in_bf16_and_agrees_with_fp32(trained_tiny, cpu_has):
    """torch emulates bf16 where the CPU lacks it: slow, but the arithmetic is bf16's."""
    cpu_has("amx")
    fp32 = spacy.load(trained_tiny)
    bf16 = spacy.load(trained_tiny, config={PRECISION: "bf16"})
    pipe = bf16.get_pipe("bert_ner")
    head_dtypes = []
    pipe.hf_model.classifier.register_forward_hook(lambda m, i, out: head_dtypes.append(out.dtype))
    docs = [Doc(fp32.vocab, words=WORDS[i:] + WORDS[:i]) for i in range(8)]
    got = np.concatenate(pipe.model.predict(docs))
    want = np.concatenate(fp32.get_pipe("bert_ner").model.predict(docs))
    assert describe_model(pipe.model)["runtime_precision"] == "bf16"
    assert head_dtypes and set(head_dtypes) == {torch.bfloat16}
    assert not np.array_equal(got, want)  # bf16's rounding really happened
    assert np.abs(got - want).max() < 0.05 * max(1.0, np.abs(want).max())
    assert (got.argmax(axis=1) == want.argmax(axis=1)).mean() >= 0.95
    texts = [doc.text for doc in docs]
    want_ents = [_ents(doc) for doc in fp32.pipe(texts)]
    assert sum(map(len, want_ents)) >= len(docs)  # the tiny model does find entities here
    assert [_ents(doc) for doc in bf16.pipe(texts)] == want_ents


def test_auto_infers_in_bf16_on_amx_but_trains_in_fp32(tiny_bert, cpu_has):
    cpu_has("amx")
    dtypes = {}
    for precision in ("auto", "bf16"):
        nlp = spacy.blank("en")
        pipe = nlp.add_pipe(
            "bert_ner", config={"model": {"name": str(tiny_bert), "precision": precision}}
        )
        gold = Doc(nlp.vocab, words=WORDS, ents=["B-PER", "I-PER"] + ["O"] * (len(WORDS) - 2))
        examples = [Example(Doc(nlp.vocab, words=WORDS), gold)]
        nlp.initialize(lambda examples=examples: examples)
        seen = []
        pipe.hf_model.classifier.register_forward_hook(lambda m, i, out, s=seen: s.append(out))
        losses = nlp.update(examples, sgd=Adam(1e-3), losses={})
        nlp(Doc(nlp.vocab, words=WORDS))
        dtypes[precision] = [out.dtype for out in seen]
        assert np.isfinite(losses["bert_ner"])
        assert {p.dtype for p in pipe.hf_model.parameters()} == {torch.float32}
    assert dtypes["auto"] == [torch.float32, torch.bfloat16]
    assert dtypes["bf16"] == [torch.bfloat16, torch.bfloat16]


def test_a_bf16_pipeline_saves_fp32_weights_and_loads_through_the_commands_loader(
    trained_tiny, cpu_has, tmp_path
):
    """`serve`, `annotate` and `evaluate` load through `load_pipeline`: the saved config's
    precision reaches the model there."""
    cpu_has("amx")
    nlp = spacy.load(trained_tiny, config={PRECISION: "bf16"})
    nlp("Angela Merkel met Macron in Paris.")
    nlp.to_disk(tmp_path / "bf16")
    weights = tmp_path / "bf16" / "bert_ner" / "model" / "model.safetensors"
    with safe_open(str(weights), framework="pt") as saved:
        assert {saved.get_tensor(name).dtype for name in saved.keys()} == {torch.float32}
    loaded = load_pipeline(str(tmp_path / "bf16"))
    described = describe_model(loaded.get_pipe("bert_ner").model)
    assert loaded.config["components"]["bert_ner"]["model"]["precision"] == "bf16"
    assert (described["precision"], described["runtime_precision"]) == ("bf16", "bf16")


def _ents(doc: Doc) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.label_) for e in doc.ents]


def _on_cpu() -> dict:
    return {"backend": "torch", "device_type": "cpu", "mixed_precision": True}
