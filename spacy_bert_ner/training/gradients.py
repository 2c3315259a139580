"""One flat all-reduce of a pipeline's gradients per optimizer step, the same on every worker.

Every trainable component's weights are listed in one fixed order (pipeline order, then each
model's nodes as thinc walks them, a node's torch parameters before its thinc ones), which
depends only on the config, so every worker sends a buffer of the same size in the same
order, whatever its batch held: a weight without a gradient sends zeros, and a flag says
whether it had one, so a weight that no worker touched is not stepped (thinc's optimizer skips
such a weight in a single process too; an Adam step on a zero gradient would still move it).

What the sum means: spaCy's own losses (tagger, the transformer's gradient from its listeners)
are sums over the batch, so the global batch's gradient is the sum of the workers'. bert_ner's
loss is a mean over the tokens it scores (`BertNER.loss_tokens`), so its gradients are sent
times that count and divided by the global count after the reduce: the step is what one
process would take on the union of the workers' batches (with `accumulate_gradient = 1`).
"""

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.distributed as dist
from spacy.language import Language
from thinc.api import Model, Optimizer, get_current_ops

from ..errors import BertNERError


@dataclass
class Weight:
    """One weight array of the pipeline: a torch parameter of a shim, or a thinc parameter."""

    key: tuple[int, str]  # the optimizer's key for it
    pipe: int  # index of its component among the averaged ones
    torch_param: torch.nn.Parameter | None = None
    node: Model | None = None
    name: str = ""

    @property
    def shape(self) -> tuple[int, ...]:
        if self.torch_param is not None:
            return tuple(self.torch_param.shape)
        assert self.node is not None
        return tuple(self.node.get_param(self.name).shape)

    def value(self) -> torch.Tensor:
        if self.torch_param is not None:
            return self.torch_param.data
        assert self.node is not None
        return torch.as_tensor(self.node.ops.to_numpy(self.node.get_param(self.name)))

    def set_value(self, value: torch.Tensor) -> None:
        if self.torch_param is not None:
            self.torch_param.data.copy_(value.view_as(self.torch_param))
            return
        assert self.node is not None
        array = value.reshape(self.shape).cpu().numpy().astype("float32")
        self.node.set_param(self.name, self.node.ops.asarray_f(cast(Any, array)))

    def gradient(self) -> torch.Tensor | None:
        if self.torch_param is not None:
            return self.torch_param.grad
        assert self.node is not None
        if not self.node.has_grad(self.name):
            return None
        return torch.as_tensor(self.node.ops.to_numpy(self.node.get_grad(self.name)))

    def set_gradient(self, value: torch.Tensor) -> None:
        if self.torch_param is not None:
            grad = value.view_as(self.torch_param).to(self.torch_param.dtype)
            if self.torch_param.grad is None:
                self.torch_param.grad = grad.clone()
            else:
                self.torch_param.grad.copy_(grad)
            return
        assert self.node is not None
        array = value.reshape(self.shape).cpu().numpy().astype("float32")
        self.node.set_grad(self.name, self.node.ops.asarray_f(cast(Any, array)))


def averaged_components(nlp: Language, frozen: Sequence[str]) -> list[str]:
    """The components whose `finish_update` spaCy's training loop calls: the ones averaged."""
    return [
        name
        for name, pipe in nlp.pipeline
        if name not in frozen
        and getattr(pipe, "is_trainable", False)
        and getattr(pipe, "model", None) not in (True, False, None)
    ]


def pipeline_weights(nlp: Language, components: Sequence[str]) -> list[Weight]:
    """Every weight of `components`, in the fixed order the module doc describes."""
    weights: list[Weight] = []
    seen: set[int] = set()
    for index, name in enumerate(components):
        for node in nlp.get_pipe(name).model.walk():  # type: ignore[attr-defined]
            for shim in node.shims:
                module = getattr(shim, "_model", None)
                if id(shim) in seen or not isinstance(module, torch.nn.Module):
                    continue
                seen.add(id(shim))
                for param_name, param in module.named_parameters():
                    if param.requires_grad:
                        weights.append(Weight((shim.id, param_name), index, torch_param=param))
            if id(node) in seen:
                continue
            seen.add(id(node))
            for param_name in node.param_names:
                if node.has_param(param_name):
                    weights.append(Weight((node.id, param_name), index, node=node, name=param_name))
    return weights


def layout_digest(weights: Sequence[Weight]) -> str:
    """What two workers must agree on to exchange flat buffers: every weight's shape in order."""
    layout = ";".join(f"{w.pipe}:{w.key[1]}:{w.shape}" for w in weights)
    return hashlib.sha1(layout.encode()).hexdigest()


def check_same_layout(weights: Sequence[Weight], rank: int) -> None:
    """Fail on every worker, with one line, when the workers built different models (their
    all-reduces would not line up), instead of hanging or mixing weights."""
    digests: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(digests, layout_digest(weights))
    if len(set(digests)) > 1:
        raise BertNERError(
            f"distributed training: the workers built different models (worker {rank}: "
            f"{len(weights)} weights); give every worker the same config and labels"
        )


class GradientAverager:
    """Averages (see the module doc) the gradients of `components` across the process group
    at the first `finish_update` of each optimizer step, before any weight moves.

    spaCy's loop calls `finish_update` once per component after the step's updates; the
    first call of a step does the all-reduce for all of them. The optimizer seen there is
    kept, so a checkpoint can save its state (`optimizer_state`).
    """

    def __init__(self, nlp: Language, components: Sequence[str], device: torch.device) -> None:
        self.nlp = nlp
        self.components = list(components)
        self.device = device
        self.optimizer: Optimizer | None = None
        self.steps = 0
        self._waiting: set[str] = set()
        self._before_first_step: list[Any] = []

    def install(self) -> None:
        """Wrap each averaged component's `finish_update` (on the instance, not the class)."""
        for name in self.components:
            pipe = self.nlp.get_pipe(name)
            pipe.finish_update = self._wrap(name, pipe.finish_update)  # type: ignore[attr-defined]

    def on_first_step(self, action: Any) -> None:
        """Run `action(optimizer)` once, at the first step, before the optimizer is used."""
        self._before_first_step.append(action)

    def _wrap(self, name: str, finish_update: Any) -> Any:
        def averaged_finish_update(sgd: Optimizer) -> None:
            if not self._waiting:
                if isinstance(sgd, Optimizer) and self.optimizer is None:
                    self.optimizer = sgd
                    for action in self._before_first_step:
                        action(sgd)
                self.average()
                self.steps += 1
                self._waiting = set(self.components)
            self._waiting.discard(name)
            finish_update(sgd)

        return averaged_finish_update

    def weights(self) -> list[Weight]:
        return pipeline_weights(self.nlp, self.components)

    def average(self) -> None:
        """The step's one all-reduce: gradients, then a had-gradient flag per weight, then
        each component's loss-token count."""
        weights = self.weights()
        counts = [getattr(self.nlp.get_pipe(name), "loss_tokens", None) for name in self.components]
        parts, flags = [], []
        for weight in weights:
            grad = weight.gradient()
            flags.append(0.0 if grad is None else 1.0)
            grad = torch.zeros(weight.shape) if grad is None else grad.float()
            count = counts[weight.pipe]
            parts.append((grad * count if count is not None else grad).reshape(-1))
        tail = torch.tensor(flags + [float(count or 0) for count in counts])
        flat = torch.cat([part.to(self.device) for part in [*parts, tail]])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        sizes = [part.numel() for part in parts]
        *grads, had_grad, global_counts = _split(flat.cpu(), [*sizes, len(flags), len(counts)])
        for weight, grad, anyone_had in zip(weights, grads, had_grad.tolist(), strict=True):
            if not anyone_had:
                continue
            if counts[weight.pipe] is not None:
                grad = grad / max(float(global_counts[weight.pipe]), 1.0)
            weight.set_gradient(grad)

    def broadcast_weights(self) -> None:
        """Give every worker rank 0's weights (one flat broadcast), so that no difference in
        initialization (a random head, a non-deterministic kernel) survives the first step."""
        weights = self.weights()
        values = [w.value().float().reshape(-1) for w in weights]
        flat = torch.cat([value.to(self.device) for value in values])
        dist.broadcast(flat, src=0)
        for weight, value in zip(
            weights, _split(flat.cpu(), [v.numel() for v in values]), strict=True
        ):
            weight.set_value(value)


#: The optimizer's per-weight state, saved by the weight's position in `pipeline_weights`
#: (its thinc key holds a model id that a restarted process numbers differently).
OPTIMIZER_TABLES = ("mom1", "mom2", "averages", "nr_update", "last_seen")


def optimizer_state(optimizer: Optimizer, weights: Sequence[Weight], steps: int) -> dict:
    """What resuming needs of the optimizer: its tables by weight position, and how many
    times its schedules have stepped."""
    state: dict[str, Any] = {"schedule_steps": steps}
    for table_name in OPTIMIZER_TABLES:
        table = getattr(optimizer, table_name)
        if table is None:
            continue
        state[table_name] = {
            position: _to_numpy(table[weight.key])
            for position, weight in enumerate(weights)
            if weight.key in table
        }
    return state


def restore_optimizer(optimizer: Optimizer, weights: Sequence[Weight], state: dict) -> None:
    """Put `optimizer_state`'s tables back under this process's keys and step its schedules
    to where they were."""
    for table_name in OPTIMIZER_TABLES:
        table = getattr(optimizer, table_name)
        if table is None or table_name not in state:
            continue
        for position, value in state[table_name].items():
            key = weights[position].key
            table[key] = value if np.isscalar(value) else optimizer_ops(weights[position])(value)
    for _ in range(state["schedule_steps"]):
        optimizer.step_schedules()


def optimizer_ops(weight: Weight) -> Any:
    """How to turn a saved table entry back into the array type the weight's optimizer uses."""
    return weight.node.ops.asarray if weight.node is not None else get_current_ops().asarray


def _to_numpy(value: Any) -> Any:
    if np.isscalar(value):
        return value
    return value.get() if hasattr(value, "get") else np.asarray(value)


def _split(flat: torch.Tensor, sizes: Sequence[int]) -> list[torch.Tensor]:
    return list(torch.split(flat, list(sizes)))
