"""The speed benchmark's "optimize would pick" line: optimize's rule over the measured systems."""

import pytest
import spacy
from spacy.tokens import Doc

from benchmarks.speed import pick
from benchmarks.speed.pick import optimize_pick
from benchmarks.speed.rounds import Result
from spacy_bert_ner.pipeline.inference_paths import ORT_FP32, TORCH_BF16, TORCH_FP32

WORDS = ["Angela", "Merkel", "met", "Macron"]


def docs(ents: list[str], n: int = 10, moved: int = 0) -> list[Doc]:
    vocab = spacy.blank("en").vocab
    return [Doc(vocab, words=WORDS, ents=["O"] * 4 if i < moved else ents) for i in range(n)]


def result(system: str, seconds: float, documents: list[Doc]) -> Result:
    return Result(system, 32, runs=[seconds], words=400, docs=documents)


@pytest.fixture
def cpu(monkeypatch):
    """Pretend the CPU has bf16 instructions or not (ONNX Runtime installed either way)."""

    def pretend(bf16: bool) -> None:
        paths = [TORCH_FP32, ORT_FP32] + ([TORCH_BF16] if bf16 else [])
        monkeypatch.setattr(pick, "runnable_paths", lambda lossy: paths)

    return pretend


ENTS = ["B-PER", "I-PER", "O", "B-PER"]


def test_the_pick_is_the_fastest_runnable_system_that_agrees(cpu):
    cpu(True)
    results = [
        result("fp32", 4.0, docs(ENTS)),
        result("bf16", 1.0, docs(ENTS, moved=1)),  # fastest, 0.9 agreement: below the floor
        result("ort", 2.0, docs(ENTS)),
        result("ortint8", 0.5, docs(ENTS)),  # lossy: optimize measures it only with --lossy
    ]
    name, chosen = optimize_pick(results, 32)
    assert (name, chosen.path.name, chosen.agreement) == ("ort", "onnxruntime fp32", 1.0)
    results[1] = result("bf16", 1.0, docs(ENTS))
    assert optimize_pick(results, 32)[0] == "bf16"


def test_an_emulated_bf16_is_never_picked_and_fp32_is_the_reference(cpu):
    cpu(False)
    results = [result("fp32", 4.0, docs(ENTS)), result("bf16", 1.0, docs(ENTS))]
    assert optimize_pick(results, 32)[0] == "fp32"
    assert optimize_pick(results[1:], 32) is None
    assert optimize_pick(results, 1000) is None
