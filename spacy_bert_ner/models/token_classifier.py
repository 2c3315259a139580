"""The standalone model: docs in, one row of token-classifier logits per spaCy token out.

The Hugging Face model runs inside thinc's `PyTorchWrapper` (see `shim`), so `spacy train`'s
optimizer, learning-rate schedule, gradient clipping, `--gpu-id` and mixed precision apply to
it exactly as to any spaCy layer. The torch module is attached lazily: a pipeline built from a
config names a hub model or directory, but `spacy.load` fills the weights from the pipeline's
own directory, so nothing is fetched until a model is really needed (and never when loading a
saved pipeline).

The thinc model carries a `StandaloneArchitecture`: its settings, the Hugging Face model and
tokenizer once loaded, and what the runtime runs in. It follows thinc's conventions for what a
pipe may ask of it: `initialize(Y=tags)` sizes the head for a tag set, and
`attrs["resize_output"]` grows a trained head in place.
"""

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from spacy.tokens import Doc
from thinc.api import Model, PyTorchGradScaler, get_torch_default_device, torch2xp
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats2d
from transformers import PreTrainedModel

from ..errors import BertNERError
from ..io import atomic_files
from .head import add_case_embeddings, outside_index, resize_head, tag_names, uses_case
from .hf_loading import load_pretrained, peek_tags
from .onnx_backend import open_session
from .rows import NO_PIECE_LOGIT, split_rows
from .runtime import TRIM_EVERY_CHUNKS, choose_precision, quantize_int8, release_freed_heap
from .settings import ARCHITECTURE_ATTR, Backend, Precision, TokenClassifierSettings
from .shim import TokenClassifierShim, convert_inputs, convert_outputs
from .windows import FastTokenizer, make_windows

logger = logging.getLogger(__name__)

#: The thinc model's name.
MODEL_NAME = "bert_token_classifier"


@dataclass
class StandaloneArchitecture:
    """The standalone model's side of `model_api.ModelArchitecture`: its settings, the Hugging
    Face model and tokenizer once loaded, and `runs_in`, the arithmetic its runtime was given
    (`runtime.choose_precision`), chosen once per component so that a `bf16` that falls back
    says so once, not at every head resize.

    Saved as a Hugging Face model directory (safetensors weights, config.json, tokenizer
    files, and the ONNX graph when the backend is onnxruntime), so a pipeline's weights stay
    usable outside spaCy.
    """

    settings: TokenClassifierSettings
    hf_model: PreTrainedModel | None = None
    tokenizer: FastTokenizer | None = None
    runs_in: str | None = None

    saves_one_file: ClassVar[bool] = False
    has_own_model: ClassVar[bool] = True

    def is_ready(self, model: Model) -> bool:
        return bool(model.layers)

    def tags(self, model: Model) -> list[str]:
        return tag_names(self.loaded()[0].config)

    def declared_tags(self, model: Model) -> list[str] | None:
        """Its head's tags once loaded, else those in the named model's config.json (None for
        an encoder without a head), read without loading any weights."""
        if self.is_ready(model):
            return self.tags(model)
        return peek_tags(self.settings.name)

    def own_model(self, model: Model) -> PreTrainedModel:
        """The full-precision Hugging Face model (the one trained and saved)."""
        return self.loaded()[0]

    def loaded(self) -> tuple[PreTrainedModel, FastTokenizer]:
        if self.hf_model is None or self.tokenizer is None:
            raise BertNERError("bert_ner: the model is not loaded yet; initialize it first")
        return self.hf_model, self.tokenizer

    def resize(
        self, model: Model, tags: Sequence[str], *, below_outside: float | None = None
    ) -> Model:
        return resize_output(model, tags, below_outside=below_outside)

    def save(self, model: Model, path: Path) -> None:
        hf_model, tokenizer = self.loaded()
        with atomic_files(path) as tmp_dir:
            hf_model.save_pretrained(tmp_dir, safe_serialization=True)
            tokenizer.save_pretrained(tmp_dir)
            if self.settings.backend == Backend.ONNXRUNTIME:
                model.layers[0].attrs["session"].save(tmp_dir, self.settings.int8)

    def load(self, model: Model, path: Path) -> None:
        attach(model, *load_pretrained(path), graph_dir=path)

    def hold_in_memory(self, model: Model) -> None:
        """Read into memory what the runtime still reads from the directory the model was
        loaded from (the ONNX graph), for a directory about to go away."""
        if self.is_ready(model) and self.settings.backend == Backend.ONNXRUNTIME:
            model.layers[0].attrs["session"].hold_graph()

    def describe(self, model: Model) -> dict[str, object]:
        """The window and precision settings, and what the runtime runs in (None before the
        model is loaded)."""
        settings = self.settings
        return {
            "architecture": MODEL_NAME,
            "max_length": settings.max_length,
            "stride": settings.stride,
            "window_batch_size": settings.window_batch_size,
            "int8": settings.int8,
            "precision": settings.precision.value,
            "runtime_precision": self.runs_in,
            "backend": settings.backend.value,
        }


def architecture_of(model: Model) -> StandaloneArchitecture:
    return cast(StandaloneArchitecture, model.attrs[ARCHITECTURE_ATTR])


def init(model: Model, X: Any = None, Y: Sequence[str] | None = None) -> None:
    """Load the named model; with `Y`, a tag set, give it a head for exactly those tags.

    thinc passes an output sample as `Y` so a layer can size itself; a token classifier's
    output size is its tag set, so `Y` is that set (None, as `BertNER.initialize` passes
    for a classifier whose types already match, keeps its head untouched). Case embeddings
    are added when `case_feature` asks for them.
    """
    architecture = architecture_of(model)
    if not architecture.is_ready(model):
        hf_model, tokenizer = load_pretrained(architecture.settings.name, Y)
    else:
        hf_model, tokenizer = architecture.loaded()
        if Y is not None:
            resize_head(hf_model, Y)
    if architecture.settings.case_feature:
        add_case_embeddings(hf_model)
    attach(model, hf_model, tokenizer)


def resize_output(
    model: Model, tags: Sequence[str], *, below_outside: float | None = None
) -> Model:
    """Resize a loaded model's head to `tags`; spaCy's `attrs["resize_output"]` hook.

    `head.head_rows` is the rule: the rows of tags it already has are kept bit for bit (a
    reorder moves them), `below_outside` starts new tags that far under "O". When the head
    changed, the runtime is rebuilt, so the optimizer sees new keys for the head's
    parameters, whose shapes changed.
    """
    hf_model, tokenizer = architecture_of(model).loaded()
    if resize_head(hf_model, tags, below_outside=below_outside):
        attach(model, hf_model, tokenizer)
    return model


def forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats2d], Callable[[list[Floats2d]], list[Doc]]]:
    """Run every window chunk of the batch and gather one logit row per token."""
    architecture = architecture_of(model)
    if not architecture.is_ready(model):
        model.initialize()
    settings = architecture.settings
    if is_train and (reason := settings.inference_only()):
        raise BertNERError(f"bert_ner: {reason}")
    transformer = model.layers[0]
    hf_model, tokenizer = architecture.loaded()
    batch = make_windows(
        docs,
        tokenizer,
        max_length=window_length(model),
        stride=settings.stride,
        window_batch_size=settings.window_batch_size,
        max_batch_pieces=settings.max_batch_pieces,
        with_case=uses_case(hf_model),
    )
    outside = outside_index(tag_names(hf_model.config))
    device = get_torch_default_device()
    table = torch.full((batch.n_tokens, hf_model.config.num_labels), -NO_PIECE_LOGIT, device=device)
    table[:, outside] = NO_PIECE_LOGIT
    backprops = []
    for n_run, chunk in enumerate(batch.chunks, start=1):
        logits, backprop_chunk = transformer(
            (chunk.input_ids, chunk.attention_mask, chunk.token_type_ids), is_train
        )
        index = _as_index(chunk.window_index, chunk.position, device)
        # Detached: gradients go back through backprop_chunk, not through the table's graph.
        table[torch.from_numpy(chunk.token_row).to(device)] = logits[index].detach().to(table.dtype)
        backprops.append((backprop_chunk, logits.shape, logits.dtype, index, chunk.token_row))
        if not is_train and device.type == "cpu" and n_run % TRIM_EVERY_CHUNKS == 0:
            release_freed_heap()

    scores = split_rows(cast(Floats2d, torch2xp(table)), [len(doc) for doc in docs])

    def backprop(d_scores: list[Floats2d]) -> list[Doc]:
        d_table = torch.as_tensor(model.ops.xp.concatenate(d_scores), device=device)
        for backprop_chunk, shape, dtype, index, token_row in backprops:
            d_logits = torch.zeros(shape, dtype=dtype, device=device)
            d_logits[index] = d_table[torch.from_numpy(token_row).to(device)].to(dtype)
            backprop_chunk(d_logits)
        return []

    return scores, backprop


def attach(
    model: Model,
    hf_model: PreTrainedModel,
    tokenizer: FastTokenizer,
    graph_dir: Path | None = None,
) -> None:
    """Attach (or replace) the torch model and its tokenizer, and the runtime that runs it.

    With the onnxruntime backend, `graph_dir` is where a saved pipeline keeps its graph
    (checked against these weights); without one the graph is exported from `hf_model`.
    """
    architecture = architecture_of(model)
    settings = architecture.settings
    architecture.hf_model, architecture.tokenizer = hf_model, tokenizer
    precision = _runs_in(architecture)
    if settings.backend == Backend.ONNXRUNTIME:
        session = open_session(hf_model, graph_dir, int8=settings.int8, threads=settings.threads)
        model.layers[:] = [Model("onnxruntime", onnx_forward, attrs={"session": session})]
        return
    runtime = quantize_int8(hf_model) if settings.int8 else hf_model
    # thinc's autocast is CUDA-only (on CPU it only warns); on CUDA it also carries bf16.
    on_cuda = get_torch_default_device().type == "cuda"
    wrapper: Model = Model(
        "pytorch",
        pytorch_forward,
        attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs},
        shims=[
            TokenClassifierShim(
                runtime,
                mixed_precision=on_cuda and precision in ("fp16", "bf16"),
                grad_scaler=PyTorchGradScaler(
                    enabled=precision == "fp16", **settings.grad_scaler_config
                ),
                head_lr_scale=settings.head_lr_scale,
                layer_lr_decay=settings.layer_lr_decay,
                quantized_from=hf_model if settings.int8 else None,
                bf16=precision == "bf16",
                # `auto` may pick bf16 for inference; training in it is asked for by name.
                bf16_training=settings.precision == Precision.BF16,
            )
        ],
    )
    model.layers[:] = [wrapper]


def _runs_in(architecture: StandaloneArchitecture) -> str:
    """What the loaded model runs in, chosen at its first load (see `StandaloneArchitecture`)."""
    if architecture.runs_in is None:
        settings = architecture.settings
        architecture.runs_in = choose_precision(
            settings.precision,
            backend=settings.backend,
            device_type=get_torch_default_device().type,
            mixed_precision=settings.mixed_precision,
        )
        logger.info("bert_ner: runs in %s", architecture.runs_in)
    return architecture.runs_in


def onnx_forward(
    model: Model, inputs: tuple[Any, Any, Any], is_train: bool
) -> tuple[torch.Tensor, Callable[[Any], Any]]:
    """The forward pass on the ONNX Runtime session; logits come back as a torch tensor so
    the rest of `forward` is the torch backend's code."""
    logits = model.attrs["session"].run(*inputs)
    return torch.from_numpy(logits).to(get_torch_default_device()), _no_backprop


def _no_backprop(d_logits: Any) -> Any:
    raise BertNERError('bert_ner: the onnxruntime backend cannot train; use backend = "torch"')


def window_length(model: Model) -> int:
    """`max_length` capped at the model's own limit (positions and tokenizer), or that limit.

    The cap lets one config serve encoders of different sizes: a window longer than the
    position table would fail deep inside the model.
    """
    architecture = architecture_of(model)
    hf_model, tokenizer = architecture.loaded()
    config = hf_model.config
    limit = getattr(config, "max_position_embeddings", 512)
    if config.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # their position ids start after the padding index
    limit = min(limit, tokenizer.model_max_length)
    if architecture.settings.max_length is not None:
        limit = min(limit, architecture.settings.max_length)
    return int(limit)


def _as_index(rows: Any, columns: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(rows).to(device), torch.from_numpy(columns).to(device)
