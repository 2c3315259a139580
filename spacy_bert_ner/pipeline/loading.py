"""Load a trained pipeline for the commands that run one (`evaluate`, `annotate`).

One place turns a missing model or an unusable GPU into a one-line `BertNERError` instead of
spaCy's or thinc's traceback.
"""

from pathlib import Path

import spacy
from spacy.language import Language

from ..errors import BertNERError, ModelLoadError, one_line


def load_pipeline(model: str, gpu_id: int = -1) -> Language:
    """`spacy.load(model)` on GPU `gpu_id` (-1: CPU); `model` is a directory or package name."""
    if gpu_id >= 0:
        try:
            spacy.require_gpu(gpu_id)
        except ValueError as err:
            raise BertNERError(f"GPU {gpu_id} is not usable: {err}") from err
    if not Path(model).exists() and not spacy.util.is_package(model):
        raise ModelLoadError(f"model not found: {model} (no such directory or installed package)")
    try:
        return spacy.load(model)
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"cannot load model {model}: {one_line(err)}") from None
