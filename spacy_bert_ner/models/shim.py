"""thinc's PyTorch shim fitted to a Hugging Face token classifier.

thinc's `PyTorchWrapper` does the device moves, autocast, gradient scaling and serialization;
this module supplies what is particular to us: how window arrays become the model's keyword
arguments, how its logits come back, learning-rate scales (for the parameters bert_ner adds,
and decaying down the encoder's layers), parameter averages that thinc's own shim never
finds, and bf16 autocast, which thinc's shim only knows on CUDA and only as fp16.
"""

import contextlib
import re
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
from thinc.api import (
    ArgsKwargs,
    Model,
    Optimizer,
    PyTorchShim,
    get_torch_default_device,
    xp2torch,
)
from transformers import PreTrainedModel

from .head import uses_case
from .runtime import quantize_int8


def convert_inputs(
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


def convert_outputs(
    model: Model, inputs_outputs: tuple[Any, Any], is_train: bool
) -> tuple[torch.Tensor, Callable[[torch.Tensor], ArgsKwargs]]:
    # Logits stay a torch tensor: the gather into the token table happens on the device.
    _, output = inputs_outputs
    logits = output.logits

    def convert_d_logits(d_logits: torch.Tensor) -> ArgsKwargs:
        return ArgsKwargs(args=(logits,), kwargs={"grad_tensors": (d_logits,)})

    return logits, convert_d_logits


#: An encoder layer's index in a parameter name: BERT/RoBERTa/ELECTRA "encoder.layer.3.",
#: DistilBERT "transformer.layer.3.".
LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def layer_lr_scales(model: Any, decay: float) -> dict[str, float]:
    """Each encoder parameter's learning-rate multiplier under layer-wise decay: 1 for the top
    layer, `decay` for the one below, `decay ** n_layers` for the embeddings.

    The lower layers hold the general-purpose features pretraining learnt, which a short
    fine-tuning run should move least; the top layers are the most task-specific. Parameters
    outside the layers and embeddings (a pooler, the head) are not in the result.
    """
    if decay == 1.0:
        return {}
    layers = [
        int(match.group(1))
        for name, _ in model.named_parameters()
        if (match := LAYER_INDEX.search(name))
    ]
    top = max(layers, default=-1) + 1
    scales = {}
    for name, _ in model.named_parameters():
        if match := LAYER_INDEX.search(name):
            scales[name] = decay ** (top - 1 - int(match.group(1)))
        elif ".embeddings." in f".{name}":
            scales[name] = decay**top
    return scales


class TokenClassifierShim(PyTorchShim):
    """thinc's PyTorch shim, with its own learning-rate scales for the classification head
    and, optionally, decaying down the encoder (`layer_lr_decay`).

    It also takes the gradient collector that `Language.rehearse` passes instead of an
    optimizer: that callable keeps each (weights, gradient) pair and steps the real optimizer
    after `finish_update` returns, but thinc's shim zeroes `.grad` in place as soon as the
    callable returns, so the collector gets a copy of the gradient. Such a collector cannot
    take a learning-rate scale, so under `nlp.rehearse` the head learns at the base rate.

    An int8 runtime (`quantized_from` its fp32 model) is left out of a pickle or copy and
    quantized again from the fp32 model on the other side: torch's pickler for spawned
    processes shares the temporary tensors a quantized layer unpacks into, whose file
    descriptors close before the process starts ("bad value(s) in fds_to_keep").

    `bf16` runs the forward pass under bf16 autocast on the model's device, in inference and,
    with `bf16_training`, in training too (the weights and optimizer stay fp32). On CUDA
    thinc's own autocast (`mixed_precision`) must be on as well: nested inside this one it
    takes bf16 from it instead of fp16.
    """

    def __init__(
        self,
        model: Any,
        *,
        head_lr_scale: float = 1.0,
        layer_lr_decay: float = 1.0,
        quantized_from: PreTrainedModel | None = None,
        bf16: bool = False,
        bf16_training: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.quantized_from = quantized_from
        self.bf16 = bf16
        self.bf16_training = bf16_training
        # The parameters bert_ner adds to an encoder: its head, and its case embeddings.
        case = uses_case(model)
        new_parameters = {
            name
            for name, _ in model.named_parameters()
            if name.startswith("classifier.")
            or (case and name.endswith("embeddings.token_type_embeddings.weight"))
        }
        scales = {
            **layer_lr_scales(model, layer_lr_decay),
            **{name: head_lr_scale for name in new_parameters},
        }
        #: Each parameter's learning-rate multiplier, where it is not 1.
        self.lr_scales = {name: scale for name, scale in scales.items() if scale != 1.0}

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        if self.quantized_from is not None:
            state["_model"] = None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if self.quantized_from is not None:
            self._model = quantize_int8(self.quantized_from)

    def predict(self, inputs: ArgsKwargs) -> Any:
        with self._autocast(self.bf16):
            return super().predict(inputs)

    def begin_update(self, inputs: ArgsKwargs) -> Any:
        with self._autocast(self.bf16 and self.bf16_training):
            return super().begin_update(inputs)

    def _autocast(self, enabled: bool) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    def finish_update(self, optimizer: Optimizer) -> None:
        if not isinstance(optimizer, Optimizer):
            collect = optimizer

            def collected(key: tuple[int, str], weights: Any, gradient: Any) -> Any:
                return collect(key, weights, gradient.copy())

            super().finish_update(cast(Optimizer, collected))
            return
        if not self.lr_scales:
            super().finish_update(optimizer)
            return
        scales = self.lr_scales

        def scaled(key: tuple[int, str], weights: Any, gradient: Any) -> Any:
            return optimizer(key, weights, gradient, lr_scale=scales.get(key[1], 1.0))

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
