"""What the `bert_ner` pipe asks of its model, whichever architecture built it.

Each registered architecture (`architectures`) gives the thinc model it builds one object
answering `ModelArchitecture`: the standalone model's (`token_classifier`) keeps the Hugging
Face model and tokenizer and saves them as a Hugging Face directory, so a pipeline's weights
stay usable outside spaCy; the shared-encoder model's (`listener_classifier`) keeps its head
in thinc params and saves it as thinc bytes, like spaCy's own tagger or ner listening to a
transformer. The pipe goes through the functions here, which ask that object, and never
looks inside either.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar, Protocol, cast

from thinc.api import Model
from transformers import PreTrainedModel

from ..errors import ModelLoadError
from .settings import ARCHITECTURE_ATTR, ListenerSettings, TokenClassifierSettings


class ModelArchitecture(Protocol):
    """One architecture's answers about a model it built (which each method takes, as thinc
    copies a model's attrs without their owner)."""

    @property
    def settings(self) -> TokenClassifierSettings | ListenerSettings:
        """The architecture's settings, checked when the model was built."""

    #: Whether its weights are saved as one file (else as a directory).
    saves_one_file: ClassVar[bool]
    #: Whether it holds a Hugging Face model of its own (a listener reads a shared one's
    #: vectors: no frozen copy of that encoder can be kept, e.g. for rehearsal).
    has_own_model: ClassVar[bool]

    def is_ready(self, model: Model) -> bool:
        """Whether the model can predict: weights loaded, or head sized."""

    def tags(self, model: Model) -> list[str]:
        """The tags the (ready) model predicts, in the order of its logit columns."""

    def declared_tags(self, model: Model) -> list[str] | None:
        """The tags the model predicts, without loading anything: None for a new head."""

    def own_model(self, model: Model) -> PreTrainedModel:
        """The Hugging Face model it holds (an error where `has_own_model` is false)."""

    def resize(
        self, model: Model, tags: Sequence[str], *, below_outside: float | None = None
    ) -> Model:
        """Give the head the tags `tags` by `head.head_rows`'s rule."""

    def save(self, model: Model, path: Path) -> None:
        """Write the (ready) model's weights to `path`, whole or not at all."""

    def load(self, model: Model, path: Path) -> None:
        """Read what `save` wrote, from local files only."""

    def hold_in_memory(self, model: Model) -> None:
        """Read into memory whatever the model still reads from the directory it was loaded
        from, which is about to go away."""

    def describe(self, model: Model) -> dict[str, object]:
        """What a service reports about the model: its architecture and how it runs."""


def architecture(model: Model) -> ModelArchitecture:
    """The object the architecture that built `model` gave it."""
    return cast(ModelArchitecture, model.attrs[ARCHITECTURE_ATTR])


def is_ready(model: Model) -> bool:
    return architecture(model).is_ready(model)


def make_ready(model: Model) -> None:
    """Load the standalone model's named weights on first use; a listener's head can only be
    sized by `initialize` with tags, which says so if it has none."""
    if not is_ready(model):
        model.initialize()


def current_tags(model: Model) -> list[str]:
    return architecture(model).tags(model)


def declared_tags(model: Model) -> list[str] | None:
    return architecture(model).declared_tags(model)


def own_model(model: Model) -> PreTrainedModel:
    """The Hugging Face model the model holds, loaded from its configured name on first use."""
    make_ready(model)
    return architecture(model).own_model(model)


def save_model(model: Model, path: Path) -> None:
    """Write the weights, whole or not at all (a run killed mid-save keeps the old ones)."""
    make_ready(model)
    architecture(model).save(model, path)


def detach_from_directory(model: Model) -> None:
    """Let the directory the model was loaded from be deleted."""
    architecture(model).hold_in_memory(model)


def load_model(model: Model, path: Path) -> None:
    """Read what `save_model` wrote, from local files only."""
    if not path.exists():
        raise ModelLoadError(f"{path}: missing; the saved pipeline is incomplete")
    if architecture(model).saves_one_file != path.is_file():
        saved = "a transformer listener's" if path.is_file() else "a standalone model's"
        raise ModelLoadError(
            f"{path}: holds {saved} weights, but the config builds the other architecture; "
            "load it with the config it was saved with"
        )
    architecture(model).load(model, path)


def describe_model(model: Model) -> dict[str, object]:
    """What a service reports about the model: its architecture and, for the standalone model
    (torch or ONNX Runtime), its window and precision settings."""
    return architecture(model).describe(model)
