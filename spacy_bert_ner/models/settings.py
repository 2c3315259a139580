"""The settings of each architecture, typed and checked once, when a config builds the model.

A config's values arrive as strings, numbers and booleans; each registered architecture turns
them into one frozen settings object here, so a bad value fails at `nlp.add_pipe` or
`spacy.load`, with the config key named, instead of deep inside the first forward pass, and
the model code reads typed fields instead of looking keys up. Choices (precision, backend) are
enums parsed by `errors.parse_choice`, the parser the command line uses, so a bad one reads
the same wherever it is given.

Settings are what the config says, nothing else: what a loaded model runs in (bf16 or fp32
under `auto`, fp16 autocast on GPU) depends on the machine and is the runtime's to derive
(`runtime.choose_precision`), not a setting.
"""

from dataclasses import dataclass
from enum import StrEnum
from numbers import Integral
from typing import Any

from ..errors import BertNERError, check_above_zero, parse_choice

#: The attr under which a bert_ner model carries its architecture object: its settings and
#: what it loaded (see `model_api.ModelArchitecture`).
ARCHITECTURE_ATTR = "architecture"


class Precision(StrEnum):
    """The arithmetic of the forward pass (`TokenClassifier.v1`'s `precision`)."""

    AUTO = "auto"
    FP32 = "fp32"
    BF16 = "bf16"
    INT8 = "int8"


class Backend(StrEnum):
    """What runs the forward pass (`TokenClassifier.v1`'s `backend`)."""

    TORCH = "torch"
    ONNXRUNTIME = "onnxruntime"


def fold_int8(precision: str, *, int8: bool) -> Precision:
    """The one precision of `precision` and the older `int8` flag, which configs saved before
    `precision` existed carry: `int8 = true` means precision int8, over the default fp32 and
    over auto, and contradicts only bf16."""
    chosen = parse_choice(Precision, precision, "precision")
    if not int8:
        return chosen
    if chosen is Precision.BF16:
        raise BertNERError(
            f"bert_ner: int8 = true contradicts precision = '{chosen}'; set one of them"
        )
    return Precision.INT8


@dataclass(frozen=True)
class TokenClassifierSettings:
    """`spacy_bert_ner.TokenClassifier.v1`'s arguments (documented there, where their
    defaults are), `int8` folded into `precision`."""

    name: str
    max_length: int | None
    stride: int | None
    window_batch_size: int
    max_batch_pieces: int
    mixed_precision: bool
    grad_scaler_config: dict[str, Any]
    precision: Precision
    head_lr_scale: float
    layer_lr_decay: float
    case_feature: bool
    backend: Backend
    threads: int | None

    def __post_init__(self) -> None:
        # Frozen: the parsed values are set the way dataclasses set fields themselves.
        object.__setattr__(self, "precision", parse_choice(Precision, self.precision, "precision"))
        object.__setattr__(self, "backend", parse_choice(Backend, self.backend, "backend"))
        object.__setattr__(self, "grad_scaler_config", dict(self.grad_scaler_config))
        for setting in ("window_batch_size", "max_batch_pieces"):
            _check_at_least(setting, getattr(self, setting), 1)
        for setting, lowest in (("max_length", 1), ("stride", 0), ("threads", 1)):
            if getattr(self, setting) is not None:
                _check_at_least(setting, getattr(self, setting), lowest)
        check_above_zero("head_lr_scale", self.head_lr_scale)
        check_above_zero("layer_lr_decay", self.layer_lr_decay)

    @property
    def int8(self) -> bool:
        return self.precision is Precision.INT8

    def inference_only(self) -> str | None:
        """Why a model with these settings cannot train, or None when it can."""
        if self.int8:
            return 'an int8 model is for inference only; train with precision "fp32" or "auto"'
        if self.backend is not Backend.TORCH:
            return (
                f"backend '{self.backend}' is for inference only; train with "
                f'backend = "{Backend.TORCH}"'
            )
        return None


@dataclass(frozen=True)
class ListenerSettings:
    """`spacy_bert_ner.ListenerTokenClassifier.v1`'s arguments (documented there) but the
    `tok2vec` sublayer, which is the model's first layer."""

    head_lr_scale: float
    case_feature: bool

    def __post_init__(self) -> None:
        check_above_zero("head_lr_scale", self.head_lr_scale)


def _check_at_least(setting: str, value: Any, lowest: int) -> None:
    # Integral, not int: a tuning library may hand a numpy integer.
    if isinstance(value, bool) or not isinstance(value, Integral) or value < lowest:
        raise BertNERError(f"bert_ner: {setting} must be an integer >= {lowest}, not {value!r}")
