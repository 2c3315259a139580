"""The systems `python -m benchmarks.speed` times: the raw forward pass (the ceiling), bert_ner on
its two backends in fp32 and int8 and on torch in bf16 autocast, and the other integrations
(see `integrations.py`).

Each system is a `setup(args, model_dir) -> run`, where `run(sentences, pipe_batch)` processes
all the sentences and returns spaCy Docs (for --accuracy) or None; setup is not timed. A spaCy
system is a function that builds an `nlp`, run through `nlp.pipe` at every --pipe-batches size.
"""

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..inputs import Sentences
from .integrations import hfpipe_nlp, setup_hf, setup_optimum, trf_nlp

#: `run(sentences, pipe_batch)`; pipe_batch only matters to the spaCy systems (the others
#: batch by --batch-size whatever it is).
Runner = Callable[[Sentences, int], Any]
Setup = Callable[[argparse.Namespace, Path], Runner]

#: bert_ner systems: (precision, backend).
BERT_NER_SYSTEMS = {
    "fp32": ("fp32", "torch"),
    "bf16": ("bf16", "torch"),
    "int8": ("int8", "torch"),
    "ort": ("fp32", "onnxruntime"),
    "ortint8": ("int8", "onnxruntime"),
}


def bert_ner_nlp(
    model_dir: Path, batch_size: int, precision: str = "fp32", backend: str = "torch"
) -> Any:
    """A blank English pipeline with bert_ner on `model_dir`, its model loaded (not timed).

    bf16 is measured whatever the CPU: where it has neither AMX nor avx512_bf16, bert_ner
    would fall back to fp32, so the CPU check is overridden here and torch emulates bf16
    (slowly: that is the figure which tells why bert_ner falls back).
    """
    from unittest import mock

    import spacy

    import spacy_bert_ner  # noqa: F401  (registers the factory)
    from spacy_bert_ner.models import runtime
    from spacy_bert_ner.models.model_api import make_ready

    model_config: dict[str, Any] = {
        "name": str(model_dir),
        "window_batch_size": batch_size,
        "precision": precision,
        "backend": backend,
    }
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": model_config})
    pipe: Any = nlp.get_pipe("bert_ner")
    kind = runtime.cpu_bf16_kind() or "emulated"
    with mock.patch.object(runtime, "cpu_bf16_kind", lambda: kind):
        make_ready(pipe.model)
    return nlp


def bert_ner_system(name: str) -> Callable[[argparse.Namespace, Path], Any]:
    precision, backend = BERT_NER_SYSTEMS[name]
    return lambda args, model_dir: bert_ner_nlp(model_dir, args.batch_size, precision, backend)


def pipe_docs(nlp: Any, sents: Sentences, batch_size: int) -> list[Any]:
    """`nlp.pipe` over pre-tokenized Docs of the sentences (built before the clock counts)."""
    from spacy.tokens import Doc

    docs = [Doc(nlp.vocab, words=words) for words in sents.words]
    return list(nlp.pipe(docs, batch_size=batch_size))


def spacy_system(make_nlp: Callable[[argparse.Namespace, Path], Any]) -> Setup:
    def setup(args: argparse.Namespace, model_dir: Path) -> Runner:
        nlp = make_nlp(args, model_dir)
        return lambda sents, pipe_batch: pipe_docs(nlp, sents, pipe_batch)

    return setup


def setup_raw(args: argparse.Namespace, model_dir: Path, sort: bool = True) -> Runner:
    """Tokenizer + model + argmax, no alignment or decoding. Sorted, the batches are cut from
    the whole input ordered by length (characters as a proxy for wordpieces): the least
    padding; unsorted, they are the input-order batches `nlp.pipe` hands a component."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    model = AutoModelForTokenClassification.from_pretrained(model_dir).eval()

    def run(sents: Sentences, pipe_batch: int) -> None:
        order = list(range(len(sents.words)))
        if sort:
            order.sort(key=lambda i: sum(map(len, sents.words[i])))
        with torch.inference_mode():
            for start in range(0, len(order), args.batch_size):
                encoded = tokenizer(
                    [sents.words[i] for i in order[start : start + args.batch_size]],
                    is_split_into_words=True,
                    padding=True,
                    return_tensors="pt",
                )
                model(**encoded).logits.argmax(-1)

    return run


SPACY_SETUPS = {
    **{name: bert_ner_system(name) for name in BERT_NER_SYSTEMS},
    "hfpipe": hfpipe_nlp,
    "trf": trf_nlp,
}
SETUPS: dict[str, Setup] = {
    "raw": setup_raw,
    "rawseq": lambda args, model_dir: setup_raw(args, model_dir, sort=False),
    **{name: spacy_system(make) for name, make in SPACY_SETUPS.items()},
    "hf": setup_hf,
    "optimum": setup_optimum,
}
#: In the order of the default --systems and of the table.
ALL_SYSTEMS = (
    "raw",
    "rawseq",
    "fp32",
    "bf16",
    "int8",
    "ort",
    "ortint8",
    "hf",
    "optimum",
    "hfpipe",
    "trf",
)
#: Systems that run through nlp.pipe, timed at every --pipe-batches size.
SPACY_SYSTEMS = tuple(SPACY_SETUPS)
DESCRIPTIONS = {
    "raw": "raw forward (HF tokenizer + model + argmax)",
    "rawseq": "raw forward, batches in input order",
    "fp32": "bert_ner torch fp32",
    "bf16": "bert_ner torch bf16 autocast",
    "int8": "bert_ner torch int8",
    "ort": "bert_ner onnxruntime fp32",
    "ortint8": "bert_ner onnxruntime int8",
    "hf": "transformers pipeline (first)",
    "optimum": "optimum ORT pipeline (first)",
    "hfpipe": "spacy-huggingface-pipelines",
    "trf": "spacy-transformers + ner",
}
