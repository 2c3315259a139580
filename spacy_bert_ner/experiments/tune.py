"""`tune`: a hyperparameter search over a training config, with Optuna or Ray Tune.

Each trial is the config with a few dotted keys overridden (the search space, see
`search_space`), trained in-process without saving (`trial.run_trial`); its value is the best
dev score `spacy train` reached, which is what model-best would keep. Bad trials stop early:
the dev score of every evaluation goes to the engine's pruner (Optuna's median rule, or Ray
Tune's ASHA). Both engines end in the same outputs (`tune_report`): a table of trials, the
best config as a `.cfg`, and a plot of dev score by trial and of parameter importance
(Optuna's fANOVA).

Optuna keeps the study in SQLite, so a search stopped with Ctrl-C (or killed) resumes where it
was: rerunning the command runs only the trials still missing, and a trial that was cut off
is run again with the same values. Ray Tune resumes its own experiment directory the same way
and spreads trials over whatever cluster `ray.init()` joins.
"""

from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

from spacy import util
from wasabi import msg

from ..errors import BertNERError, parse_choice
from ..extras import require
from .search_space import load_search_space
from .trial import run_trial
from .tune_report import TrialRecord, write_outputs

STUDY_FILE = "study.db"
#: Metric the trials report to Ray Tune: the best dev score so far.
RAY_METRIC = "best_score"


class TuneEngine(StrEnum):
    """Which library runs the trials (see the module's docstring); the CLI's choices."""

    optuna = "optuna"
    ray = "ray"


@dataclass
class TuneSettings:
    """How a search runs. `trials` counts the study's trials in all, earlier runs included."""

    trials: int = 20
    engine: TuneEngine = TuneEngine.optuna
    seed: int = 0
    prune: bool = True
    study_name: str = "bert_ner"
    gpu_id: int = -1
    #: Ray Tune: trials running at once, and CPUs each one reserves.
    workers: int = 1
    cpus_per_trial: float = 1.0

    def __post_init__(self) -> None:
        # A Python caller may give the engine's name; a misspelt one must not fall to optuna.
        self.engine = parse_choice(TuneEngine, self.engine, "engine")


def tune(
    config_path: Path,
    space_path: Path,
    output_dir: Path,
    settings: TuneSettings,
    overrides: dict[str, Any] | None = None,
) -> list[TrialRecord]:
    """Search, then write `trials.json`, `best.cfg` and `search.png` under `output_dir`.

    `overrides` (dotted keys, as `spacy train` takes them: paths, a smaller budget) apply to
    every trial but are not written into `best.cfg`, which is the config with the best
    trial's values only.
    """
    config_path = Path(config_path).resolve()
    if not config_path.is_file():
        raise BertNERError(f"{config_path}: config not found")
    require("optuna", "tune")  # its distributions describe the space, whichever the engine
    space = load_search_space(space_path)
    overrides = dict(overrides or {})
    for key in space:  # a wrong key is an error now, not in the first trial
        try:
            util.load_config(config_path, overrides={key: _probe(space[key])}, interpolate=False)
        except Exception as err:  # noqa: BLE001 - confection raises several kinds
            raise BertNERError(f"{space_path}: {key}: not a key of {config_path} ({err})") from None
    output_dir.mkdir(parents=True, exist_ok=True)
    if settings.engine == TuneEngine.ray:
        records = _search_ray(config_path, space, output_dir, settings, overrides)
    else:
        records = _search_optuna(config_path, space, output_dir, settings, overrides)
    write_outputs(records, space, config_path, output_dir)
    return records


def _probe(distribution: Any) -> Any:
    """A value of the distribution, to check that its key exists in the config."""
    import optuna.distributions as dist

    if isinstance(distribution, dist.CategoricalDistribution):
        return distribution.choices[0]
    return distribution.low


# -- Optuna ------------------------------------------------------------------------------------


def _search_optuna(
    config_path: Path,
    space: dict[str, Any],
    output_dir: Path,
    settings: TuneSettings,
    overrides: dict[str, Any],
) -> list[TrialRecord]:
    """The trials still missing from the study in `output_dir` (a rerun resumes it), each
    pruned by the median rule at its evaluations unless `settings.prune` is off."""
    import optuna
    from optuna.trial import TrialState

    study = _open_study(output_dir, settings)
    if not study.trials:
        _enqueue_config_values(study, config_path, space)
    _requeue_interrupted(study)
    max_steps = util.load_config(config_path, overrides=overrides, interpolate=False)["training"][
        "max_steps"
    ]
    finished = (TrialState.COMPLETE, TrialState.PRUNED)
    remaining = settings.trials - len(study.get_trials(deepcopy=False, states=finished))
    if remaining <= 0:
        msg.info(f"{settings.trials} trials already in {output_dir / STUDY_FILE}")
    for _ in range(max(remaining, 0)):
        trial = study.ask(space)

        def report(score: float, step: int, trial: optuna.Trial = trial) -> None:
            trial.report(score, step)
            # At the last evaluation the trial is done: pruning it would only lose its value.
            last = bool(max_steps) and step >= max_steps
            if settings.prune and not last and trial.should_prune():
                raise optuna.TrialPruned(f"dev score {score:.4f} at step {step}")

        try:
            result = run_trial(
                config_path, {**overrides, **trial.params}, report, gpu_id=settings.gpu_id
            )
        except optuna.TrialPruned as pruned:
            study.tell(trial, state=TrialState.PRUNED)
            msg.info(f"trial {trial.number} pruned ({pruned})")
            continue
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        trial.set_user_attr("best_step", result.step)
        trial.set_user_attr("seconds", round(result.seconds, 1))
        study.tell(trial, result.score)
        msg.good(f"trial {trial.number}: dev score {result.score:.4f} in {result.seconds:.0f} s")
    # Queued trials (a rerun's retries) have no values yet: they show once they run.
    return [
        _optuna_record(t) for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING
    ]


def _open_study(output_dir: Path, settings: TuneSettings) -> Any:
    """The study's SQLite file in `output_dir`, created or loaded: TPE sampling, median
    pruning after two trials."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(
        study_name=settings.study_name,
        storage=f"sqlite:///{(output_dir / STUDY_FILE).resolve()}",
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=settings.seed),
        pruner=(
            optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=1)
            if settings.prune
            else optuna.pruners.NopPruner()
        ),
        load_if_exists=True,
    )


def _enqueue_config_values(study: Any, config_path: Path, space: dict[str, Any]) -> None:
    """Make the config's own values the first trial, where they lie in the space: the search
    then shows what it gains over the config at the same budget."""
    config = util.load_config(config_path, interpolate=False)
    values = {}
    for key, distribution in space.items():
        value = _lookup(config, key)
        if _in_space(value, distribution):
            values[key] = value
    if len(values) == len(space):
        study.enqueue_trial(values, user_attrs={"config_values": True})


def _in_space(value: Any, distribution: Any) -> bool:
    choices = getattr(distribution, "choices", None)
    if choices is not None:
        return value in choices
    numeric = isinstance(value, int | float) and not isinstance(value, bool)
    return numeric and distribution.low <= value <= distribution.high


def _lookup(config: Any, key: str) -> Any:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _requeue_interrupted(study: Any) -> None:
    """Queue again, once, the values of trials an earlier run left unfinished: still
    RUNNING (the process was killed) or FAIL (Ctrl-C, or an error in the trial)."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            study.tell(trial.number, state=TrialState.FAIL)
        elif trial.state != TrialState.FAIL:
            continue
        if trial.number in retried or "retry_of" in trial.user_attrs:
            continue
        study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
        msg.info(f"trial {trial.number} was interrupted: queued again")


def _optuna_record(trial: Any) -> TrialRecord:
    scores = [trial.intermediate_values[s] for s in sorted(trial.intermediate_values)]
    return TrialRecord(
        number=trial.number,
        state=trial.state.name,
        score=trial.value,
        params=dict(trial.params),
        best_step=trial.user_attrs.get("best_step"),
        seconds=trial.user_attrs.get("seconds"),
        scores=scores,
    )


# -- Ray Tune ----------------------------------------------------------------------------------


def _search_ray(
    config_path: Path,
    space: dict[str, Any],
    output_dir: Path,
    settings: TuneSettings,
    overrides: dict[str, Any],
) -> list[TrialRecord]:
    """The same trials on Ray Tune: Optuna's TPE as its searcher, ASHA as its pruner. Ray
    Tune runs each trial in a worker of the cluster `ray.init()` joins (a local one here);
    rerunning resumes the experiment in `output_dir/ray`."""
    ray_tune = require("ray.tune", "tune --engine ray")
    import ray

    trainable = _ray_trainable(config_path, overrides, settings.gpu_id)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False, log_to_driver=False)
    storage = (output_dir / "ray").resolve()
    experiment = storage / settings.study_name
    resources = ray_tune.with_resources(
        trainable, {"cpu": settings.cpus_per_trial, "gpu": 1 if settings.gpu_id >= 0 else 0}
    )
    try:
        if ray_tune.Tuner.can_restore(str(experiment)):
            msg.info(f"resuming the Ray Tune experiment in {experiment}")
            tuner = ray_tune.Tuner.restore(str(experiment), resources, resume_errored=True)
        else:
            tuner = _new_ray_tuner(resources, space, storage, settings)
        results: Any = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    return [_ray_record(number, result, space) for number, result in enumerate(results)]


def _ray_trainable(
    config_path: Path, overrides: dict[str, Any], gpu_id: int
) -> Callable[[dict[str, Any]], None]:
    """One trial as Ray Tune runs it: the best dev score so far reported at each evaluation
    (what ASHA compares), from the user's working directory."""
    from ray import tune as ray_tune

    cwd = Path.cwd()

    def trainable(params: dict[str, Any]) -> None:
        import os

        os.chdir(cwd)  # Ray Tune starts trials in their own directory; paths are the user's
        best = float("-inf")

        def report(score: float, step: int) -> None:
            nonlocal best
            best = max(best, score)
            ray_tune.report({RAY_METRIC: best, "score": score, "step": step})

        run_trial(config_path, {**overrides, **params}, report, gpu_id=gpu_id)

    return trainable


def _new_ray_tuner(
    resources: Any, space: dict[str, Any], storage: Path, settings: TuneSettings
) -> Any:
    """A Ray Tune experiment under `storage`: Optuna's TPE over the space, ASHA pruning (or
    none), `settings.workers` trials at once."""
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    scheduler = (
        ASHAScheduler(metric=RAY_METRIC, mode="max", grace_period=1)
        if settings.prune
        else FIFOScheduler()
    )
    return ray_tune.Tuner(
        resources,
        tune_config=ray_tune.TuneConfig(
            search_alg=OptunaSearch(space, metric=RAY_METRIC, mode="max", seed=settings.seed),
            scheduler=scheduler,
            num_samples=settings.trials,
            max_concurrent_trials=settings.workers,
        ),
        run_config=ray_tune.RunConfig(
            name=settings.study_name, storage_path=str(storage), verbose=0
        ),
    )


def _ray_record(number: int, result: Any, space: dict[str, Any]) -> TrialRecord:
    metrics = result.metrics or {}
    history = result.metrics_dataframe
    return TrialRecord(
        number=number,
        state="FAIL" if result.error else "COMPLETE",
        score=metrics.get(RAY_METRIC),
        params={key: (result.config or {}).get(key) for key in space},
        seconds=metrics.get("time_total_s"),
        scores=[] if history is None else [float(s) for s in history["score"]],
    )
