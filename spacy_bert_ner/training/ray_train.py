"""`python -m spacy_bert_ner train --workers N`: spaCy's training loop on Ray Train.

Ray Train's `TorchTrainer` starts the N workers and their `torch.distributed` group (gloo on
CPUs, NCCL on GPUs); each runs `distributed.train_worker`. Checkpoints go through
`ray.train.report` at each evaluation, and `FailureConfig(max_failures)` restarts a failed
group from the last one. Set-ups that cannot run (more workers than the cluster can place,
GPUs it does not have) are refused before any worker starts, in one line.
"""

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from spacy.util import load_config

from ..errors import BertNERError


class RayCheckpoints:
    """`distributed.Checkpoints` on Ray Train: report at each evaluation, resume from the last."""

    def __init__(self) -> None:
        import ray.train

        self._train = ray.train
        self._resumed: Path | None = None

    def latest(self) -> Path | None:
        checkpoint = self._train.get_checkpoint()
        if checkpoint is None:
            return None
        self._resumed = Path(tempfile.mkdtemp(prefix="bert_ner_resume_"))
        return Path(checkpoint.to_directory(str(self._resumed)))

    def save(self, directory: Path | None, metrics: dict[str, Any]) -> None:
        checkpoint = None
        if directory is not None:
            checkpoint = self._train.Checkpoint.from_directory(str(directory))
        self._train.report(metrics, checkpoint=checkpoint)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


def _train_loop(settings: dict[str, Any]) -> None:
    """What each Ray Train worker runs."""
    import torch
    from thinc.api import Config

    from .distributed import train_worker

    torch.set_num_threads(settings["threads"])
    use_gpu = 0 if settings["gpus"] else -1  # Ray shows each worker its own GPU(s) only
    config = Config().from_str(settings["config"], interpolate=False)
    train_worker(config, Path(settings["output"]), use_gpu=use_gpu, checkpoints=RayCheckpoints())


def check_cluster(resources: dict[str, float], workers: int, cpus: float, gpus: float) -> None:
    """Refuse, in one line, a group the cluster cannot place."""
    if workers < 1:
        raise BertNERError(f"train: --workers must be at least 1, not {workers}")
    have_gpus = resources.get("GPU", 0.0)
    if gpus and not have_gpus:
        raise BertNERError(
            f"train: --gpus-per-worker {gpus} but the Ray cluster has no GPUs; "
            "use --gpus-per-worker 0 to train on CPUs"
        )
    if gpus and workers * gpus > have_gpus:
        raise BertNERError(
            f"train: {workers} workers x {gpus} GPUs need {workers * gpus:g} GPUs; "
            f"the Ray cluster has {have_gpus:g}"
        )
    have_cpus = resources.get("CPU", 0.0)
    if workers * cpus > have_cpus:
        raise BertNERError(
            f"train: {workers} workers x {cpus:g} CPUs need {workers * cpus:g} CPUs; "
            f"the Ray cluster has {have_cpus:g}: use fewer --workers or a larger cluster"
        )


def train_on_ray(
    config_path: Path,
    output_path: Path,
    overrides: dict[str, Any],
    *,
    workers: int,
    gpus_per_worker: float = 0.0,
    cpus_per_worker: float = 1.0,
    address: str | None = None,
    max_failures: int = 3,
) -> Any:
    """Train `config_path` (with `overrides`, as `spacy train` takes them) on `workers`
    Ray Train workers; rank 0 writes model-best and model-last under `output_path`, Ray
    its checkpoints under `output_path/ray`. Returns Ray Train's `Result`."""
    import ray
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    if not config_path.is_file():
        raise BertNERError(f"train: no config file at {config_path}")
    config = load_config(config_path, overrides=overrides, interpolate=False)
    if not ray.is_initialized():
        ray.init(address=address, include_dashboard=False, log_to_driver=True)
    check_cluster(ray.cluster_resources(), workers, cpus_per_worker, gpus_per_worker)
    output_path = output_path.resolve()
    settings = {
        "config": config.to_str(),
        "output": str(output_path),
        "gpus": gpus_per_worker,
        "threads": max(1, int(cpus_per_worker)),
    }
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
    trainer = TorchTrainer(
        _train_loop,
        train_loop_config=settings,
        torch_config=TorchConfig(backend="nccl" if gpus_per_worker else "gloo"),
        scaling_config=ScalingConfig(
            num_workers=workers, use_gpu=bool(gpus_per_worker), resources_per_worker=resources
        ),
        run_config=RunConfig(
            name=f"bert_ner_train_{time.strftime('%Y%m%d-%H%M%S')}",
            storage_path=str(output_path / "ray"),
            failure_config=FailureConfig(max_failures=max_failures),
        ),
    )
    try:
        return trainer.fit()
    except Exception as error:  # Ray wraps the workers' errors: show ours in one line
        cause = _worker_error(error)
        if isinstance(cause, BertNERError):
            raise BertNERError(str(cause)) from None
        raise


def _worker_error(error: BaseException) -> BaseException:
    """The first worker's `BertNERError` (the one-line kind) behind Ray's error, else that."""
    failures = getattr(error, "worker_failures", None) or {}
    for rank in sorted(failures):
        cause: BaseException | None = failures[rank]
        while cause is not None and not isinstance(cause, BertNERError):
            cause = cause.__cause__
        if cause is not None:
            return cause
    return error
