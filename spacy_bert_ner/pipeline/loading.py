"""Load a trained pipeline for the commands that run one (`evaluate`, `annotate`), and find
its `bert_ner` components.

One place turns a missing model or an unusable GPU into a one-line `BertNERError` instead of
spaCy's or thinc's traceback, and one place says what counts as a `bert_ner` component.
"""

from collections.abc import Callable, Sequence
from pathlib import Path

import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..errors import BertNERError, ModelLoadError, one_line
from .bert_ner import BertNER


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


def bert_ner_pipes(nlp: Language) -> list[tuple[str, BertNER]]:
    """The pipeline's enabled `bert_ner` components with their names, in pipeline order.

    Found by class, neither by name nor by factory: a pipeline may name its component anything
    (`ner_bert`, or two side by side with their own `spans_key`), and a subclass's pipe made by
    another factory is still one.
    """
    return [(name, pipe) for name, pipe in nlp.pipeline if isinstance(pipe, BertNER)]


def single_bert_ner_pipe(nlp: Language, source: object) -> tuple[str, BertNER]:
    """The one `bert_ner` component of a pipeline (`source` names it in the error), for the
    commands that work on one: with two, which one they meant is the user's to say."""
    pipes = bert_ner_pipes(nlp)
    if len(pipes) != 1:
        raise BertNERError(f"{source}: expected one bert_ner component, found {len(pipes)}")
    return pipes[0]


def entity_getter(nlp: Language) -> Callable[[Doc], Sequence[Span]]:
    """Where the pipeline's entities are: `doc.ents`, or the `bert_ner` pipe's `spans_key`."""
    keys = {pipe.cfg["spans_key"] for _, pipe in bert_ner_pipes(nlp)}
    keys.discard(None)
    if len(keys) == 1:
        key = keys.pop()
        return lambda doc: sorted(doc.spans.get(key, []))
    return lambda doc: doc.ents
