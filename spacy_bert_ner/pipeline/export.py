"""`export-onnx`: a saved pipeline turned into one that runs on ONNX Runtime.

The pipeline is loaded (a first time to find its `bert_ner` components, without running
anything) with those components switched to the onnxruntime backend
(spaCy's config overrides, so the new pipeline's config.cfg says so too), which exports each
one's graph from the weights it holds; saving writes the graphs beside the weights. The
source pipeline is only read. Its `precision` becomes fp32 or int8 (`--int8`), what ONNX
Runtime runs: a bf16 source is exported in fp32, with a warning.
"""

import logging
from pathlib import Path

import spacy

from ..errors import BertNERError, ModelLoadError, one_line
from ..models.model_api import describe_model
from .loading import bert_ner_pipes, load_pipeline

logger = logging.getLogger(__name__)


def export_onnx_pipeline(model: str, output: Path, *, int8: bool = False) -> list[str]:
    """Write `model` as a pipeline with onnxruntime-backed `bert_ner` components to `output`;
    returns the names of the components converted."""
    source = load_pipeline(model)
    pipes = bert_ner_pipes(source)
    names = [name for name, _ in pipes]
    bf16 = [name for name, pipe in pipes if describe_model(pipe.model).get("precision") == "bf16"]
    path = source.path if source.path is not None else model
    del source, pipes  # loaded again below with the overrides; not two models in memory at once
    if not names:
        raise BertNERError(f"{model}: the pipeline has no bert_ner component to export")
    if output.exists() and any(output.iterdir()):
        raise BertNERError(f"{output}: exists and is not empty; give a new directory")
    overrides = {
        f"components.{name}.model.{key}": value
        for name in names
        for key, value in (
            ("backend", "onnxruntime"),
            ("int8", int8),
            ("precision", "int8" if int8 else "fp32"),
        )
    }
    if bf16:
        logger.warning(
            "%s: ONNX Runtime runs fp32 or int8, not bf16; the exported pipeline runs %s",
            ", ".join(bf16),
            "int8" if int8 else "fp32",
        )
    try:
        nlp = spacy.load(path, config=overrides)
    except (OSError, ValueError) as err:
        if isinstance(err, BertNERError):
            raise
        raise ModelLoadError(f"cannot load model {model}: {one_line(err)}") from None
    nlp.to_disk(output)
    return names
