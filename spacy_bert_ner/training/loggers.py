"""The training logger of our configs: spaCy's console table or an experiment tracker
(MLflow, Weights & Biases) from spacy-loggers, plus figures of `bert_ner`'s own.

`spacy train` hands a logger only its step info (losses, dev scores, words seen), so what the
component knows is added to that info as flat `bert_ner.*` numbers, which spacy-loggers'
trackers log as custom stats (`log_custom_stats`):

- `bert_ner.words_per_second`: training words per second so far, timed inside the
  component's `update` and `finish_update` (dev evaluations and corpus reading excluded);
- `bert_ner.skipped_gold`: bad gold entities left out of the loss (`on_bad_gold = "skip"`);
- `bert_ner.learn_rate.encoder` and `bert_ner.learn_rate.head`: the optimizer's schedule at
  the step, and that times `head_lr_scale`, the rate of the head and case embeddings.

The loss is spaCy's own (`loss_bert_ner` in MLflow). `spacy train` calls a logger with the
step info at each evaluation only, so that is where the figures are taken.

One setting picks the tracker (`tracker`, e.g. `--training.logger.tracker mlflow`), so a
project var switches it without editing the config.
"""

import sys
from collections.abc import Callable
from typing import IO, Any

from spacy.language import Language
from spacy.util import registry

from ..errors import BertNERError
from ..extras import require
from ..pipeline.loading import bert_ner_pipes

TRAINING_LOGGER = "spacy_bert_ner.TrainingLogger.v1"
TRACKERS = ("console", "mlflow", "wandb")
#: The prefix of our figures in the step info, and the pattern trackers log them by.
PREFIX = "bert_ner."
CUSTOM_STATS = [r"^bert_ner\."]

LogStep = Callable[[dict[str, Any] | None], None]


@registry.loggers(TRAINING_LOGGER)
def make_training_logger(
    tracker: str = "console",
    progress_bar: bool = False,
    project: str = "spacy-bert-ner",
    run_name: str | None = None,
    mlflow_tracking_uri: str | None = None,
) -> Callable[[Language, IO, IO], tuple[LogStep, Callable[[], None]]]:
    """spaCy's console table, with `tracker` "mlflow" or "wandb" also that tracker.

    project: the MLflow experiment or W&B project the runs go to.
    run_name: the run's name in the tracker (the tracker picks one when None).
    mlflow_tracking_uri: where MLflow writes, e.g. a local directory `mlruns` (a file store,
        offline; `mlflow ui --backend-store-uri mlruns` shows it); None takes MLflow's own
        default (`MLFLOW_TRACKING_URI`). W&B runs offline with `WANDB_MODE=offline`.
    """
    if tracker not in TRACKERS:
        raise BertNERError(f"training logger: tracker must be one of {TRACKERS}, not {tracker!r}")
    console = registry.loggers.get("spacy.ConsoleLogger.v3")(
        progress_bar="eval" if progress_bar else None  # v1's bar: steps until the next evaluation
    )

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> tuple[LogStep, Callable[[], None]]:
        loggers = [console(nlp, stdout, stderr)]
        if tracker == "mlflow":
            loggers.append(_mlflow_logger(project, run_name, mlflow_tracking_uri)(nlp))
        elif tracker == "wandb":
            require("wandb", "tracker wandb")
            wandb_logger = registry.loggers.get("spacy.WandbLogger.v5")
            loggers.append(
                wandb_logger(
                    project_name=project, run_name=run_name, log_custom_stats=CUSTOM_STATS
                )(nlp)
            )
        figures = ComponentFigures(nlp)

        def log_step(info: dict[str, Any] | None) -> None:
            if info is not None:
                info = {**info, **figures(info)}
            for step, _ in loggers:
                step(info)

        def finalize() -> None:
            for _, end in loggers:
                end()

        return log_step, finalize

    return setup


def _mlflow_logger(project: str, run_name: str | None, tracking_uri: str | None) -> Any:
    """spacy-loggers' MLflow logger, in the experiment named `project` under `tracking_uri`."""
    mlflow = require("mlflow", "tracker mlflow")
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    experiment = mlflow.set_experiment(project)
    return registry.loggers.get("spacy.MLflowLogger.v2")(
        experiment_id=experiment.experiment_id,
        run_name=run_name,
        log_custom_stats=CUSTOM_STATS,
    )


class ComponentFigures:
    """`bert_ner.*` figures for an evaluation step's info (see the module's docstring)."""

    def __init__(self, nlp: Language) -> None:
        self.pipes = bert_ner_pipes(nlp)
        self.schedule = _learn_rate_schedule(nlp)

    def __call__(self, info: dict[str, Any]) -> dict[str, float]:
        figures: dict[str, float] = {}
        rate = self.schedule(int(info.get("step", 0))) if self.schedule is not None else None
        for name, pipe in self.pipes:
            prefix = PREFIX if len(self.pipes) == 1 else f"{PREFIX}{name}."
            figures[f"{prefix}skipped_gold"] = float(pipe.skipped_gold_count)
            words_per_second = pipe.throughput.words_per_second
            if words_per_second is not None:
                figures[f"{prefix}words_per_second"] = words_per_second
            if rate is not None:
                figures[f"{prefix}learn_rate.encoder"] = rate
                figures[f"{prefix}learn_rate.head"] = rate * pipe.head_lr_scale
        return figures


def _learn_rate_schedule(nlp: Language) -> Callable[[int], float] | None:
    """The optimizer's learning rate by step, from the training config (None without one)."""
    block = nlp.config.get("training", {}).get("optimizer", {}).get("learn_rate")
    if block is None:
        return None
    if isinstance(block, int | float):
        return lambda step: float(block)
    try:
        schedule = registry.resolve({"rate": block})["rate"]
    except Exception:  # noqa: BLE001 - a schedule we cannot rebuild: no rate figures
        return None
    if isinstance(schedule, int | float):
        return lambda step: float(schedule)
    if callable(schedule):  # thinc's Schedule
        return lambda step: float(schedule(step=step))
    # A legacy generator schedule (warmup_linear.v1 and its kin): its n-th value is step n's.
    values: list[float] = []

    def rate_at(step: int) -> float:
        for value in schedule:
            values.append(float(value))
            if len(values) > step:
                break
        return values[min(step, len(values) - 1)]

    return rate_at
