"""The thinc model: docs in, one row of token-classifier logits per spaCy token out.

The Hugging Face model runs inside thinc's `PyTorchWrapper` (see `shim`), so `spacy train`'s
optimizer, learning-rate schedule, gradient clipping, `--gpu-id` and mixed precision apply to
it exactly as to any spaCy layer. The torch module is attached lazily: a pipeline built from a
config names a hub model or directory, but `spacy.load` fills the weights from the pipeline's
own directory, so nothing is fetched until a model is really needed (and never when loading a
saved pipeline).

The model follows thinc's conventions for what a pipe may ask of it: `initialize(Y=tags)`
sizes the head for a tag set, and `attrs["resize_output"]` grows a trained head in place.
"""

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from spacy.tokens import Doc
from thinc.api import Model, PyTorchGradScaler, get_torch_default_device, torch2xp
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats2d
from transformers import PreTrainedModel, PreTrainedTokenizerFast

from ..errors import BertNERError
from .head import add_case_embeddings, outside_index, resize_head, tag_names, uses_case
from .hf_loading import load_pretrained, peek_tags
from .onnx_backend import open_session
from .rows import NO_PIECE_LOGIT, split_rows
from .runtime import TRIM_EVERY_CHUNKS, choose_precision, quantize_int8, release_freed_heap
from .shim import TokenClassifierShim, convert_inputs, convert_outputs
from .windows import make_windows

logger = logging.getLogger(__name__)

#: The thinc model's name: what tells this architecture's models from the listener's.
MODEL_NAME = "bert_token_classifier"


def init(model: Model, X: Any = None, Y: Sequence[str] | None = None) -> None:
    """Load the named model; with `Y`, a tag set, give it a head for exactly those tags.

    thinc passes an output sample as `Y` so a layer can size itself; a token classifier's
    output size is its tag set, so `Y` is that set (None, as `BertNER.initialize` passes
    for a classifier whose types already match, keeps its head untouched). Case embeddings
    are added when `case_feature` asks for them.
    """
    if not has_transformer(model):
        hf_model, tokenizer = load_pretrained(model.attrs["name"], Y)
    else:
        hf_model, tokenizer = get_hf_model(model), model.attrs["tokenizer"]
        if Y is not None:
            resize_head(hf_model, Y)
    if model.attrs["case_feature"]:
        add_case_embeddings(hf_model)
    set_transformer(model, hf_model, tokenizer)


def resize_output(
    model: Model, tags: Sequence[str], *, below_outside: float | None = None
) -> Model:
    """Resize a loaded model's head to `tags`; spaCy's `attrs["resize_output"]` hook.

    `head.head_rows` is the rule: the rows of tags it already has are kept bit for bit (a
    reorder moves them), `below_outside` starts new tags that far under "O". When the head
    changed, the shim is rebuilt, so the optimizer sees new keys for the head's parameters,
    whose shapes changed.
    """
    hf_model = get_hf_model(model)
    if resize_head(hf_model, tags, below_outside=below_outside):
        set_transformer(model, hf_model, model.attrs["tokenizer"])
    return model


def forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats2d], Callable[[list[Floats2d]], list[Doc]]]:
    """Run every window chunk of the batch and gather one logit row per token."""
    if not has_transformer(model):
        model.initialize()
    if is_train and model.attrs["int8"]:
        raise BertNERError("bert_ner: an int8 model is for inference only; train with int8 = false")
    if is_train and model.attrs["backend"] != "torch":
        raise BertNERError(
            f"bert_ner: backend '{model.attrs['backend']}' is for inference only; train with "
            'backend = "torch"'
        )
    transformer = model.layers[0]
    hf_model = get_hf_model(model)
    batch = make_windows(
        docs,
        model.attrs["tokenizer"],
        max_length=window_length(model),
        stride=model.attrs["stride"],
        window_batch_size=model.attrs["window_batch_size"],
        max_batch_pieces=model.attrs["max_batch_pieces"],
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


def model_tags(model: Model) -> list[str] | None:
    """The tags the model predicts: its head's once loaded, else those in the named model's
    config.json (None for an encoder without a head), read without loading any weights."""
    if has_transformer(model):
        return tag_names(get_hf_model(model).config)
    return peek_tags(model.attrs["name"])


def has_transformer(model: Model) -> bool:
    return bool(model.layers)


def get_hf_model(model: Model) -> PreTrainedModel:
    """The full-precision Hugging Face model (the one trained and saved)."""
    return model.attrs["hf_model"]


def set_transformer(
    model: Model,
    hf_model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerFast,
    graph_dir: Path | None = None,
) -> None:
    """Attach (or replace) the torch model and its tokenizer, and the runtime that runs it.

    With the onnxruntime backend, `graph_dir` is where a saved pipeline keeps its graph
    (checked against these weights); without one the graph is exported from `hf_model`.
    """
    model.attrs["hf_model"] = hf_model
    model.attrs["tokenizer"] = tokenizer
    precision = runtime_precision(model)
    if model.attrs["backend"] == "onnxruntime":
        session = open_session(
            hf_model, graph_dir, int8=model.attrs["int8"], threads=model.attrs["threads"]
        )
        model.layers[:] = [Model("onnxruntime", onnx_forward, attrs={"session": session})]
        return
    runtime = hf_model
    if model.attrs["int8"]:
        runtime = quantize_int8(hf_model)
    # thinc's autocast is CUDA-only (on CPU it only warns); on CUDA it also carries bf16.
    on_cuda = get_torch_default_device().type == "cuda"
    mixed_precision = on_cuda and precision in ("fp16", "bf16")
    wrapper: Model = Model(
        "pytorch",
        pytorch_forward,
        attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs},
        shims=[
            TokenClassifierShim(
                runtime,
                mixed_precision=mixed_precision,
                grad_scaler=PyTorchGradScaler(
                    enabled=precision == "fp16", **model.attrs["grad_scaler_config"]
                ),
                head_lr_scale=model.attrs["head_lr_scale"],
                layer_lr_decay=model.attrs["layer_lr_decay"],
                quantized_from=hf_model if model.attrs["int8"] else None,
                bf16=precision == "bf16",
                # `auto` may pick bf16 for inference; training in it is asked for by name.
                bf16_training=model.attrs["precision"] == "bf16",
            )
        ],
    )
    model.layers[:] = [wrapper]


def runtime_precision(model: Model) -> str:
    """What the loaded model runs in (`runtime.choose_precision`), chosen once per component,
    so a `bf16` that falls back says so once, not at every head resize."""
    if model.attrs["runtime_precision"] is None:
        model.attrs["runtime_precision"] = choose_precision(
            model.attrs["precision"],
            int8=model.attrs["int8"],
            backend=model.attrs["backend"],
            device_type=get_torch_default_device().type,
            mixed_precision=model.attrs["mixed_precision"],
        )
        logger.info("bert_ner: runs in %s", model.attrs["runtime_precision"])
    return str(model.attrs["runtime_precision"])


def onnx_forward(
    model: Model, inputs: tuple[Any, Any, Any], is_train: bool
) -> tuple[torch.Tensor, Callable[[Any], Any]]:
    """The forward pass on the ONNX Runtime session; logits come back as a torch tensor so
    the rest of `forward` is the torch backend's code."""
    logits = model.attrs["session"].run(*inputs)
    return torch.from_numpy(logits).to(get_torch_default_device()), _no_backprop


def _no_backprop(d_logits: Any) -> Any:
    raise BertNERError('bert_ner: the onnxruntime backend cannot train; use backend = "torch"')


def save_runtime(model: Model, directory: Path) -> None:
    """Write what the runtime needs beside the saved weights: the ONNX graph, if it runs one."""
    if model.attrs["backend"] == "onnxruntime":
        model.layers[0].attrs["session"].save(directory, model.attrs["int8"])


def hold_runtime_in_memory(model: Model) -> None:
    """Keep in memory what the runtime still reads from the directory the model was loaded
    from (the ONNX graph), for a directory about to go away."""
    if has_transformer(model) and model.attrs["backend"] == "onnxruntime":
        model.layers[0].attrs["session"].hold_graph()


def window_length(model: Model) -> int:
    """`max_length` capped at the model's own limit (positions and tokenizer), or that limit.

    The cap lets one config serve encoders of different sizes: a window longer than the
    position table would fail deep inside the model.
    """
    config = get_hf_model(model).config
    limit = getattr(config, "max_position_embeddings", 512)
    if config.model_type in ("roberta", "xlm-roberta", "camembert"):
        limit -= 2  # their position ids start after the padding index
    limit = min(limit, model.attrs["tokenizer"].model_max_length)
    if model.attrs["max_length"] is not None:
        limit = min(limit, model.attrs["max_length"])
    return int(limit)


def _as_index(rows: Any, columns: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(rows).to(device), torch.from_numpy(columns).to(device)
