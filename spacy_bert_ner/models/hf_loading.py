"""Loading a Hugging Face token classifier (or an encoder) and its fast tokenizer, safely.

Only safetensors weights are accepted and remote code is never run: a pipeline must not
execute what a model repository ships. Every failure becomes a `ModelLoadError` that names the
file at fault and says what to do, instead of a traceback from inside transformers.
"""

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
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

from ..errors import ModelLoadError, one_line
from .head import is_token_classifier, resize_head, tag_names


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
            "it has no NER head. Train it with `spacy train`, or give nlp.initialize() examples "
            "or labels (in a config: [initialize.components.bert_ner] labels) so bert_ner can "
            "give it one."
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
