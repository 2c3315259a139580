"""The other ways of getting NER out of the same Hugging Face model, set up as their docs show:
transformers' and optimum's token-classification pipelines (which take text), and the spaCy
components of spacy-huggingface-pipelines and spacy-transformers (which `systems.py` runs
through `nlp.pipe` like bert_ner)."""

import argparse
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..inputs import Sentences


def text_runner(hf_pipe: Any) -> Callable[[Sentences, int], None]:
    """Runs a transformers pipeline over the sentences joined by spaces (output discarded)."""

    def run(sents: Sentences, pipe_batch: int) -> None:
        list(hf_pipe(sents.texts()))

    return run


def setup_hf(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences, int], None]:
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    return text_runner(
        pipeline(
            "token-classification",
            model=AutoModelForTokenClassification.from_pretrained(model_dir),
            tokenizer=AutoTokenizer.from_pretrained(model_dir, use_fast=True),
            aggregation_strategy="first",
            device=-1,
            batch_size=args.batch_size,
        )
    )


def setup_optimum(args: argparse.Namespace, model_dir: Path) -> Callable[[Sentences, int], None]:
    """optimum's ONNX Runtime token-classification pipeline, as its docs show it: the model
    exported by optimum (fp32), the session on --threads intra-op threads."""
    import onnxruntime
    from optimum.onnxruntime import ORTModelForTokenClassification
    from optimum.onnxruntime import pipeline as ort_pipeline
    from transformers import AutoTokenizer

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    model = ORTModelForTokenClassification.from_pretrained(
        model_dir, export=True, session_options=options
    )
    return text_runner(
        ort_pipeline(
            "token-classification",
            model=model,
            tokenizer=AutoTokenizer.from_pretrained(model_dir, use_fast=True),
            aggregation_strategy="first",
            batch_size=args.batch_size,
        )
    )


def hfpipe_nlp(args: argparse.Namespace, model_dir: Path) -> Any:
    import spacy
    import spacy_huggingface_pipelines  # noqa: F401  (registers hf_token_pipe)

    nlp = spacy.blank("en")
    nlp.add_pipe(
        "hf_token_pipe",
        config={
            "model": str(model_dir),
            "aggregation_strategy": "first",
            "kwargs": {"batch_size": args.batch_size},
        },
    )
    return nlp


def trf_nlp(args: argparse.Namespace, model_dir: Path) -> Any:
    """spacy-transformers' encoder on the same weights (its token head unused) and an untrained
    spaCy `ner` listening to it: the cost of the usual spaCy transformer NER pipeline."""
    import spacy
    import spacy_transformers  # noqa: F401

    nlp = spacy.blank("en")
    nlp.add_pipe(
        "transformer",
        config={
            "model": {
                "@architectures": "spacy-transformers.TransformerModel.v3",
                "name": str(model_dir),
                "get_spans": {
                    "@span_getters": "spacy-transformers.strided_spans.v1",
                    "window": 128,
                    "stride": 96,
                },
                "tokenizer_config": {"use_fast": True},
                "transformer_config": {},
                "mixed_precision": False,
                "grad_scaler_config": {},
            }
        },
    )
    ner: Any = nlp.add_pipe(
        "ner",
        config={
            "model": {
                "@architectures": "spacy.TransitionBasedParser.v2",
                "state_type": "ner",
                "extra_state_tokens": False,
                "hidden_width": 64,
                "maxout_pieces": 2,
                "use_upper": False,
                "nO": None,
                "tok2vec": {
                    "@architectures": "spacy-transformers.TransformerListener.v1",
                    "grad_factor": 1.0,
                    "pooling": {"@layers": "reduce_mean.v1"},
                    "upstream": "*",
                },
            }
        },
    )
    for label in ("LOC", "MISC", "ORG", "PER"):
        ner.add_label(label)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nlp.initialize()
    return nlp
