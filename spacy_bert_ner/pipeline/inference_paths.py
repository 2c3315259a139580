"""The inference paths a `bert_ner` can run on CPU, which one a loaded pipeline runs, and the
rule `optimize` picks one by.

A path is a backend and the arithmetic of its forward pass ("torch bf16", "onnxruntime
fp32"). Which is fastest depends on the CPU (docs/cpu-inference.md): so `optimize` measures
the paths this CPU can run and keeps the fastest whose entities agree with torch fp32's,
and `benchmarks/speed` reports what that rule would pick from its own measurements.
"""

import importlib.util
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from spacy.language import Language
from spacy.tokens import Doc, Span

from ..errors import BertNERError
from ..models.model_api import describe_model
from ..models.runtime import cpu_bf16_kind
from .loading import bert_ner_pipes


@dataclass(frozen=True)
class InferencePath:
    """A backend and a precision, as the `[components.*.model]` settings spell them."""

    backend: str
    precision: str

    @property
    def name(self) -> str:
        return f"{self.backend} {self.precision}"

    @property
    def lossy(self) -> bool:
        """int8 changes entities (test F1 -0.17 to -1.0, docs/cpu-inference.md): measured only
        when asked for, and then held to the agreement floor like any other path."""
        return self.precision == "int8"

    def overrides(self, components: Iterable[str]) -> dict[str, object]:
        """The config overrides that make `components` run this path. Explicit, not "auto": a
        copy saved for this CPU runs what was measured on it."""
        settings = {"backend": self.backend, "precision": self.precision, "int8": self.lossy}
        return {
            f"components.{name}.model.{key}": value
            for name in components
            for key, value in settings.items()
        }


TORCH_FP32 = InferencePath("torch", "fp32")
TORCH_BF16 = InferencePath("torch", "bf16")
ORT_FP32 = InferencePath("onnxruntime", "fp32")
TORCH_INT8 = InferencePath("torch", "int8")
ORT_INT8 = InferencePath("onnxruntime", "int8")
#: Every path, the reference (torch fp32, what every other is compared with) first.
ALL_PATHS = (TORCH_FP32, TORCH_BF16, ORT_FP32, TORCH_INT8, ORT_INT8)


def runnable_paths(*, lossy: bool) -> list[InferencePath]:
    """The paths this CPU and this installation can run: bf16 only with bf16 instructions
    (torch emulates it elsewhere, at a quarter of fp32's speed), ONNX Runtime only where the
    `onnx` extra is installed, int8 only when `lossy`."""
    onnx = has_onnxruntime()
    return [
        path
        for path in ALL_PATHS
        if (lossy or not path.lossy)
        and (path.backend != "onnxruntime" or onnx)
        and (path.precision != "bf16" or cpu_bf16_kind() is not None)
    ]


def has_onnxruntime() -> bool:
    """Whether the `onnx` extra is installed (without importing it)."""
    return all(importlib.util.find_spec(module) for module in ("onnx", "onnxruntime"))


@dataclass(frozen=True)
class PathSpeed:
    """A path as measured: its words/s and its agreement with torch fp32 (see `agreement`)."""

    path: InferencePath
    words_per_s: float
    agreement: float


def choose_path(measured: Sequence[PathSpeed], min_agreement: float) -> PathSpeed:
    """The fastest path whose agreement is at least `min_agreement`: the one rule both
    `optimize` and the speed benchmark apply. torch fp32 agrees with itself, so with it
    measured there is always one."""
    eligible = [m for m in measured if m.agreement >= min_agreement]
    if not eligible:
        raise BertNERError(f"no path agrees with torch fp32 on >= {min_agreement:.3f} of the texts")
    return max(eligible, key=lambda m: m.words_per_s)


#: An entity as `agreement` compares them: start char, end char, label.
Entities = frozenset[tuple[int, int, str]]


def entity_sets(
    docs: Iterable[Doc], spans: Callable[[Doc], Iterable[Span]] = lambda doc: doc.ents
) -> list[Entities]:
    """Each doc's entities as `agreement` compares them; `spans` says where they are
    (`loading.entity_getter` of the pipeline)."""
    return [frozenset((e.start_char, e.end_char, e.label_) for e in spans(doc)) for doc in docs]


def agreement(entities: Sequence[Entities], reference: Sequence[Entities]) -> float:
    """The share of texts whose entity set, (start char, end char, label) each, is exactly the
    reference's: what a user sees change, text by text. Entity-level F1 would let a path that
    moves one entity in every text still score 0.95 or so; this says how many texts changed."""
    if len(entities) != len(reference):
        raise ValueError(f"{len(entities)} texts against {len(reference)} reference texts")
    if not reference:
        return 1.0
    return sum(a == b for a, b in zip(entities, reference, strict=True)) / len(reference)


def path_in_use(nlp: Language) -> str:
    """What each `bert_ner` of a loaded pipeline runs, for start-up lines: "bert_ner: torch
    bf16 (precision auto)"; a listener runs on the transformer it listens to."""
    described = []
    for name, pipe in bert_ner_pipes(nlp):
        model = describe_model(pipe.model)
        if "backend" not in model:
            described.append(f"{name}: on its transformer")
            continue
        running = model["runtime_precision"] or model["precision"]
        described.append(f"{name}: {model['backend']} {running} (precision {model['precision']})")
    return "; ".join(described)
