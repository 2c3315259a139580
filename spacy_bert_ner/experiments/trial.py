"""One training run of a hyperparameter search: `spacy train` in this process, with every dev
evaluation handed to the search engine as it happens (so bad trials can be pruned early).

spaCy builds a config's logger from the registry and passes it nothing but the pipeline, so
the engine's callback reaches it through a context variable that `run_trial` sets; the
trial's config wraps its own logger in `spacy_bert_ner.TrialReporter.v1`, which calls it.
"""

import io
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from spacy import util
from spacy.language import Language
from spacy.util import registry

#: Called with (dev score, step) after each evaluation; may raise to stop the trial.
Report = Callable[[float, int], None]
#: A spaCy training logger: `setup(nlp, stdout, stderr) -> (log_step, finalize)`.
Logger = Callable[[Language, IO, IO], tuple[Callable[[dict[str, Any] | None], None], Callable]]

REPORTER = "spacy_bert_ner.TrialReporter.v1"
_report: ContextVar[Report | None] = ContextVar("spacy_bert_ner_trial_report", default=None)


@dataclass
class TrialResult:
    """What a finished trial reached: its best dev score (the one `spacy train` keeps as
    model-best) and the step of it, and its wall time."""

    score: float
    step: int
    seconds: float


@registry.loggers(REPORTER)
def make_trial_reporter(logger: Logger | None = None) -> Logger:
    """`logger` (the config's own), plus each dev score passed to the running trial."""

    def setup(nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr) -> Any:
        log_step, finalize = logger(nlp, stdout, stderr) if logger else (None, None)

        def step(info: dict[str, Any] | None) -> None:
            if log_step is not None:
                log_step(info)
            report = _report.get()
            if report is not None and info is not None and info.get("score") is not None:
                report(float(info["score"]), int(info["step"]))

        return step, finalize or (lambda: None)

    return setup


def run_trial(
    config_path: Path,
    overrides: dict[str, Any],
    report: Report,
    *,
    gpu_id: int = -1,
    stdout: IO | None = None,
) -> TrialResult:
    """Train `config_path` with `overrides` (dotted keys), saving nothing, and report each
    dev score. spaCy's console table goes to `stdout` (discarded when None)."""
    from spacy.cli._util import setup_gpu
    from spacy.training.initialize import init_nlp
    from spacy.training.loop import train

    setup_gpu(gpu_id, silent=True)
    config = util.load_config(config_path, overrides=overrides, interpolate=False)
    config["training"]["logger"] = {"@loggers": REPORTER, "logger": config["training"]["logger"]}
    best = (float("-inf"), 0)
    start = time.perf_counter()

    def on_evaluation(score: float, step: int) -> None:
        nonlocal best
        best = max(best, (score, -step))
        report(score, step)

    token = _report.set(on_evaluation)
    out = stdout if stdout is not None else io.StringIO()
    try:
        nlp = init_nlp(config, use_gpu=gpu_id)
        train(nlp, None, use_gpu=gpu_id, stdout=out, stderr=out)
    finally:
        _report.reset(token)
    return TrialResult(score=best[0], step=-best[1], seconds=time.perf_counter() - start)
