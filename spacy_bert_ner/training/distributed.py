"""Data-parallel training: spaCy's own loop (`spacy.training.loop.train`) in each process of a
`torch.distributed` group, with the config, loggers and callbacks of `spacy train`.

What a worker changes, and only in its own process and pipeline object:
- the training corpus: its own shard (`readers.create_shard_reader`, around the config's reader);
- the batcher: the same number of batches per epoch on every worker (a short shard is padded
  with empty batches, which take part in the step's all-reduce with zero gradients), so no
  worker finishes an epoch, or the run, while the others wait for it;
- `finish_update` of each trained component: one flat all-reduce per step (`gradients`);
- `nlp.evaluate`: rank 0 evaluates and broadcasts the scores, so the loop's best-model,
  patience and `max_steps` decisions are the same everywhere;
- output: rank 0 alone writes model-best/model-last and logs (other ranks log to nowhere).

`[distributed] batch_size` in the config says what the batcher's size means: "per_worker"
(the default: the global batch is workers x size) or "global" (each worker batches
size / workers). A checkpoint (weights, optimizer state, step) is saved at each evaluation
through `Checkpoints`; a restarted group resumes from it with the batches it had done skipped
and its steps numbered on from there, so no step is logged twice.
"""

import io
import pickle
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
from spacy.language import Language
from spacy.training.initialize import init_nlp
from spacy.training.loop import train
from spacy.util import registry
from thinc.api import Config, Optimizer, require_gpu

from ..errors import BertNERError
from .gradients import (
    GradientAverager,
    averaged_components,
    check_same_layout,
    optimizer_state,
    restore_optimizer,
)

#: The config sections a worker rewrites (and rank 0 puts back before it saves a pipeline).
REWRITTEN = ("corpora", "training")
BATCH_SIZES = ("per_worker", "global")
#: Batch-size schedules whose sizes "global" can divide among the workers.
SCALABLE_SCHEDULES = {"constant.v1": ("rate",), "compounding.v1": ("start", "stop")}
STATE_FILE = "state.pt"


class Checkpoints(Protocol):
    """Where a worker saves and finds its checkpoints (Ray Train's, in `ray_train`)."""

    def latest(self) -> Path | None: ...

    def save(self, directory: Path | None, metrics: dict[str, Any]) -> None:
        """Called by every worker at each evaluation; rank 0 gives the directory."""


def device_of_group() -> torch.device:
    """Where collectives' tensors live: the worker's GPU under NCCL, else the CPU."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


@registry.batchers("spacy_bert_ner.WorkerBatches.v1")
def create_worker_batcher(
    batcher: Callable[[Iterable[Any]], Iterable[list[Any]]], skip: int = 0
) -> Callable[[Iterable[Any]], Iterator[list[Any]]]:
    """`batcher`'s batches, padded with empty ones to the longest epoch of any worker, the
    first `skip` of the run left out (a resumed run has done them)."""
    skipped = 0

    def batch(items: Iterable[Any]) -> Iterator[list[Any]]:
        nonlocal skipped
        batches: Iterable[list[Any]] = batcher(items)
        if isinstance(items, list):  # an epoch of max_epochs >= 0: its length is known
            batches = list(batches)
            longest = torch.tensor([len(batches)], device=device_of_group())
            dist.all_reduce(longest, op=dist.ReduceOp.MAX)
            batches += [[] for _ in range(int(longest.item()) - len(batches))]
        for one in batches:
            if skipped < skip:
                skipped += 1
                continue
            yield one

    return batch


@registry.loggers("spacy_bert_ner.WorkerLogger.v1")
def create_worker_logger(logger: Callable[..., Any], step_offset: int = 0) -> Callable[..., Any]:
    """`logger` with steps numbered from `step_offset` (the steps a resumed run had done)."""

    def setup(nlp: Language, stdout: Any = sys.stdout, stderr: Any = sys.stderr) -> Any:
        log_step, finalize = logger(nlp, stdout, stderr)

        def log(info: dict[str, Any] | None) -> None:
            if info is not None:
                info = {**info, "step": info["step"] + step_offset}
            log_step(info)

        return log, finalize

    return setup


def worker_sections(config: Config, rank: int, workers: int, done_steps: int) -> dict[str, Any]:
    """The `corpora` and `training` sections one worker trains with (see the module doc)."""
    config = config.copy()
    filled = config.interpolate()
    training = config["training"]
    section, key = training["train_corpus"].rsplit(".", 1)
    corpora = config[section]
    corpora[key] = {
        "@readers": "spacy_bert_ner.Shard.v1",
        "rank": rank,
        "workers": workers,
        "corpus": corpora[key],
    }
    batcher = training["batcher"]
    mode = config.get("distributed", {}).get("batch_size", "per_worker")
    if mode not in BATCH_SIZES:
        raise BertNERError(f"[distributed] batch_size: {mode!r} is not one of {BATCH_SIZES}")
    if mode == "global":
        batcher["size"] = _divided(filled["training"]["batcher"]["size"], workers)
    training["batcher"] = {
        "@batchers": "spacy_bert_ner.WorkerBatches.v1",
        "batcher": batcher,
        "skip": done_steps,
    }
    logger = training["logger"] if rank == 0 else {"@loggers": "spacy.ConsoleLogger.v1"}
    training["logger"] = {
        "@loggers": "spacy_bert_ner.WorkerLogger.v1",
        "logger": logger,
        "step_offset": done_steps,
    }
    if filled["training"]["max_steps"]:
        training["max_steps"] = max(filled["training"]["max_steps"] - done_steps, 1)
    return {section: corpora, "training": training}


def _divided(size: Any, workers: int) -> Any:
    """A batcher size (a number or a constant/compounding schedule) divided among workers."""
    if isinstance(size, int | float):
        return max(1, round(size / workers))
    keys = SCALABLE_SCHEDULES.get(size.get("@schedules", "") if isinstance(size, dict) else "")
    if keys is None:
        raise BertNERError(
            f"[distributed] batch_size = global divides a number or a schedule in "
            f"{sorted(SCALABLE_SCHEDULES)}, not {size!r}; use per_worker and size it yourself"
        )
    return {**size, **{k: max(1, round(size[k] / workers)) for k in keys}}


def train_worker(
    config: Config,
    output_path: Path | None,
    *,
    use_gpu: int = -1,
    checkpoints: Checkpoints | None = None,
) -> None:
    """Train `config` as this process's share of the group (set up by the caller: Ray Train
    or `torch.distributed.init_process_group`)."""
    rank, workers = dist.get_rank(), dist.get_world_size()
    resume = checkpoints.latest() if checkpoints is not None else None
    state = torch.load(resume / STATE_FILE, weights_only=False) if resume is not None else None
    done_steps = state["steps"] if state is not None else 0
    if use_gpu >= 0:
        require_gpu(use_gpu)  # as `spacy train --gpu-id` does before it builds the pipeline
    # Every worker initializes from the whole corpus, so labels and head sizes agree.
    nlp = init_nlp(config, use_gpu=use_gpu)
    frozen = nlp.config.interpolate()["training"]["frozen_components"]
    averager = GradientAverager(nlp, averaged_components(nlp, frozen), device_of_group())
    weights = averager.weights()
    check_same_layout(weights, rank)
    if state is None:
        averager.broadcast_weights()
    else:
        for weight, value in zip(weights, state["weights"], strict=True):
            weight.set_value(value)
        averager.steps = done_steps

        def restore(optimizer: Optimizer) -> None:
            restore_optimizer(optimizer, averager.weights(), state["optimizer"])

        averager.on_first_step(restore)
    averager.install()
    _evaluate_on_rank_zero(nlp, averager, rank, checkpoints)
    original = {name: nlp.config[name] for name in REWRITTEN}
    nlp.config.update(worker_sections(nlp.config, rank, workers, done_steps))
    if rank == 0:
        _save_with_config(nlp, original)
        if output_path is not None:
            output_path.mkdir(parents=True, exist_ok=True)  # as `spacy train` does
    quiet = io.StringIO()
    train(
        nlp,
        output_path if rank == 0 else None,
        use_gpu=use_gpu,
        stdout=sys.stdout if rank == 0 else quiet,
        stderr=sys.stderr if rank == 0 else quiet,
    )


def _evaluate_on_rank_zero(
    nlp: Language, averager: GradientAverager, rank: int, checkpoints: Checkpoints | None
) -> None:
    """Rank 0 evaluates; every worker takes its scores (and so its decisions), then, with
    `checkpoints`, the group saves a checkpoint of the step."""
    evaluate = nlp.evaluate

    def evaluate_on_rank_zero(examples: Iterable[Any], **kwargs: Any) -> dict[str, Any]:
        scores: list[Any] = [evaluate(examples, **kwargs) if rank == 0 else None]
        dist.broadcast_object_list(scores, src=0)
        if checkpoints is not None:
            _save_checkpoint(averager, rank, checkpoints, scores[0])
        return scores[0]

    nlp.evaluate = evaluate_on_rank_zero  # type: ignore[method-assign]


def _save_checkpoint(
    averager: GradientAverager, rank: int, checkpoints: Checkpoints, scores: dict[str, Any]
) -> None:
    metrics = {"step": averager.steps - 1, **_numbers(scores)}
    if rank != 0 or averager.optimizer is None:
        checkpoints.save(None, metrics)
        return
    weights = averager.weights()
    state = {
        "steps": averager.steps,
        "weights": [weight.value().detach().cpu().clone() for weight in weights],
        "optimizer": optimizer_state(averager.optimizer, weights, averager.steps),
    }
    directory = Path(tempfile.mkdtemp(prefix="bert_ner_checkpoint_"))
    torch.save(state, directory / STATE_FILE, pickle_protocol=pickle.HIGHEST_PROTOCOL)
    checkpoints.save(directory, metrics)


def _numbers(scores: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}


def _save_with_config(nlp: Language, config_sections: dict[str, Any]) -> None:
    """Make `nlp.to_disk` write the user's corpora and training sections, not the worker's."""
    to_disk = nlp.to_disk

    def to_disk_with_user_config(path: Any, **kwargs: Any) -> None:
        worker = {name: nlp.config[name] for name in config_sections}
        nlp.config.update(config_sections)
        try:
            to_disk(path, **kwargs)
        finally:
            nlp.config.update(worker)

    nlp.to_disk = to_disk_with_user_config  # type: ignore[method-assign]
