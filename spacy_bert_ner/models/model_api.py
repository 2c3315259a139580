"""What the `bert_ner` pipe asks of its model, whichever architecture built it.

The standalone model (`token_classifier`) keeps its tags in the Hugging Face config and is
saved as a Hugging Face directory, so a pipeline's weights stay usable outside spaCy. The
shared-encoder model (`listener_classifier`) is a plain thinc model whose tags live in its
attrs; it is saved as thinc bytes, like spaCy's own tagger or ner listening to a transformer.
The pipe goes through these functions and never looks inside either.
"""

from pathlib import Path

from thinc.api import Model

from ..errors import ModelLoadError
from ..io import atomic_files, atomic_path
from . import listener_classifier, token_classifier
from .head import tag_names
from .hf_loading import load_pretrained


def is_listener(model: Model) -> bool:
    return model.name == listener_classifier.MODEL_NAME


def is_ready(model: Model) -> bool:
    """Whether the model can predict: weights loaded (standalone) or head sized (listener)."""
    if is_listener(model):
        return bool(model.has_param("W"))
    return token_classifier.has_transformer(model)


def make_ready(model: Model) -> None:
    """Load the standalone model's named weights on first use; a listener's head can only be
    sized by `initialize` with tags, which says so if it has none."""
    if not is_ready(model):
        model.initialize()


def current_tags(model: Model) -> list[str]:
    """The tags the (ready) model predicts, in the order of its logit columns."""
    if is_listener(model):
        return list(model.attrs["tags"])
    return tag_names(token_classifier.get_hf_model(model).config)


def declared_tags(model: Model) -> list[str] | None:
    """The tags the model predicts, without loading anything: None for a new head."""
    if is_listener(model):
        return list(model.attrs["tags"]) or None
    return token_classifier.model_tags(model)


def save_model(model: Model, path: Path) -> None:
    """Write the weights, whole or not at all (a run killed mid-save keeps the old ones)."""
    make_ready(model)
    if is_listener(model):
        with atomic_path(path) as tmp_path:
            model.to_disk(tmp_path)
        return
    with atomic_files(path) as tmp_dir:
        token_classifier.get_hf_model(model).save_pretrained(tmp_dir, safe_serialization=True)
        model.attrs["tokenizer"].save_pretrained(tmp_dir)
        token_classifier.save_runtime(model, tmp_dir)


def detach_from_directory(model: Model) -> None:
    """Let the directory the model was loaded from be deleted: what the model still reads
    from it (the standalone model's ONNX graph) is read into memory."""
    if not is_listener(model):
        token_classifier.hold_runtime_in_memory(model)


def load_model(model: Model, path: Path) -> None:
    """Read what `save_model` wrote, from local files only."""
    if not path.exists():
        raise ModelLoadError(f"{path}: missing; the saved pipeline is incomplete")
    if is_listener(model) != path.is_file():
        saved = "a transformer listener's" if path.is_file() else "a standalone model's"
        raise ModelLoadError(
            f"{path}: holds {saved} weights, but the config builds the other architecture; "
            "load it with the config it was saved with"
        )
    if is_listener(model):
        try:
            model.from_disk(path)
        except ValueError as err:
            raise ModelLoadError(f"{path}: cannot read the weights ({err})") from None
        return
    token_classifier.set_transformer(model, *load_pretrained(path), graph_dir=path)


#: What a standalone model's settings say about how it runs; a listener has none of them (its
#: windows and precision are the transformer's it listens to).
RUNTIME_SETTINGS = (
    "max_length",
    "stride",
    "window_batch_size",
    "int8",
    "precision",
    "runtime_precision",
    "backend",
)


def describe_model(model: Model) -> dict[str, object]:
    """What a service reports about the model: its architecture and, for the standalone model
    (torch or ONNX Runtime), its window and precision settings."""
    if is_listener(model):
        return {"architecture": listener_classifier.MODEL_NAME}
    settings = {key: model.attrs[key] for key in RUNTIME_SETTINGS}
    return {"architecture": token_classifier.MODEL_NAME, **settings}
