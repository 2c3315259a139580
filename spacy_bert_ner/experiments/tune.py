"""`tune`: a hyperparameter search over a training config, with Optuna or Ray Tune.

Each trial is the config with a few dotted keys overridden (the search space, see
`search_space`), trained in-process without saving (`trial.run_trial`); its value is the best
dev score `spacy train` reached, which is what model-best would keep. Bad trials stop early:
the dev score of every evaluation goes to the engine's pruner (Optuna's median rule, or Ray
Tune's ASHA). Both engines end in the same outputs: a table of trials, the best config as a
`.cfg`, and a plot of dev score by trial and of parameter importance (Optuna's fANOVA).

Optuna keeps the study in SQLite, so a search stopped with Ctrl-C (or killed) resumes where it
was: rerunning the command runs only the trials still missing, and a trial that was cut off
is run again with the same values. Ray Tune resumes its own experiment directory the same way
and spreads trials over whatever cluster `ray.init()` joins.
"""

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from spacy import util
from wasabi import msg

from ..errors import BertNERError, parse_choice
from ..evaluation.plots import png_figure
from ..extras import require
from ..io import atomic_path, write_json
from .search_space import load_search_space
from .trial import run_trial

STUDY_FILE = "study.db"
BEST_CONFIG = "best.cfg"
TRIALS_JSON = "trials.json"
PLOT = "search.png"
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


@dataclass
class TrialRecord:
    """One trial as the outputs show it."""

    number: int
    state: str
    score: float | None
    params: dict[str, Any]
    best_step: int | None = None
    seconds: float | None = None
    scores: list[float] = field(default_factory=list)


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
    _write_outputs(records, space, config_path, output_dir)
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
    import optuna
    from optuna.trial import TrialState

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
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
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
    from ray.tune.search.optuna import OptunaSearch

    cwd = Path.cwd()
    gpu_id = settings.gpu_id

    def trainable(params: dict[str, Any]) -> None:
        import os

        os.chdir(cwd)  # Ray Tune starts trials in their own directory; paths are the user's
        best = float("-inf")

        def report(score: float, step: int) -> None:
            nonlocal best
            best = max(best, score)
            ray_tune.report({RAY_METRIC: best, "score": score, "step": step})

        run_trial(config_path, {**overrides, **params}, report, gpu_id=gpu_id)

    started_here = not ray.is_initialized()
    if started_here:
        ray.init(include_dashboard=False, log_to_driver=False)
    storage = (output_dir / "ray").resolve()
    experiment = storage / settings.study_name
    resources = ray_tune.with_resources(
        trainable, {"cpu": settings.cpus_per_trial, "gpu": 1 if gpu_id >= 0 else 0}
    )
    try:
        if ray_tune.Tuner.can_restore(str(experiment)):
            msg.info(f"resuming the Ray Tune experiment in {experiment}")
            tuner = ray_tune.Tuner.restore(str(experiment), resources, resume_errored=True)
        else:
            tuner = ray_tune.Tuner(
                resources,
                tune_config=ray_tune.TuneConfig(
                    search_alg=OptunaSearch(
                        space, metric=RAY_METRIC, mode="max", seed=settings.seed
                    ),
                    scheduler=(
                        ASHAScheduler(metric=RAY_METRIC, mode="max", grace_period=1)
                        if settings.prune
                        else FIFOScheduler()
                    ),
                    num_samples=settings.trials,
                    max_concurrent_trials=settings.workers,
                ),
                run_config=ray_tune.RunConfig(
                    name=settings.study_name, storage_path=str(storage), verbose=0
                ),
            )
        results: Any = tuner.fit()
    finally:
        if started_here:
            ray.shutdown()
    records = []
    for number, result in enumerate(results):
        metrics = result.metrics or {}
        history = result.metrics_dataframe
        scores = [] if history is None else [float(s) for s in history["score"]]
        records.append(
            TrialRecord(
                number=number,
                state="FAIL" if result.error else "COMPLETE",
                score=metrics.get(RAY_METRIC),
                params={key: (result.config or {}).get(key) for key in space},
                seconds=metrics.get("time_total_s"),
                scores=scores,
            )
        )
    return records


# -- outputs -----------------------------------------------------------------------------------


def _write_outputs(
    records: list[TrialRecord], space: dict[str, Any], config_path: Path, output_dir: Path
) -> None:
    scored = [r for r in records if r.state == "COMPLETE" and r.score is not None]
    _print_table(records, list(space))
    write_json(output_dir / TRIALS_JSON, [asdict(r) for r in records])
    if not scored:
        msg.warn("no trial completed: no best config")
        return
    best = max(scored, key=lambda r: r.score or 0.0)
    config = util.load_config(config_path, overrides=best.params, interpolate=False)
    with atomic_path(output_dir / BEST_CONFIG) as tmp:
        config.to_disk(tmp)
    msg.good(
        f"best: trial {best.number}, dev score {best.score:.4f}; config in "
        f"{output_dir / BEST_CONFIG}"
    )
    _plot(records, space, output_dir / PLOT)


def _print_table(records: list[TrialRecord], keys: list[str]) -> None:
    header = ["trial", "state", "dev score", "best step", "seconds", *keys]
    rows = [
        [
            r.number,
            r.state,
            "" if r.score is None else f"{r.score:.4f}",
            "" if r.best_step is None else r.best_step,
            "" if r.seconds is None else f"{r.seconds:.0f}",
            *(_short(r.params.get(key)) for key in keys),
        ]
        for r in records
    ]
    msg.table(rows, header=header, divider=True)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def parameter_importances(records: list[TrialRecord], space: dict[str, Any]) -> dict[str, float]:
    """Optuna's fANOVA importances over the completed trials (empty when there are fewer than
    two, or when their values do not vary)."""
    import optuna

    scored = [r for r in records if r.state == "COMPLETE" and r.score is not None]
    study = optuna.create_study(direction="maximize")
    study.add_trials(
        [
            optuna.trial.create_trial(params=r.params, distributions=space, value=r.score)
            for r in scored
        ]
    )
    if len(scored) < 2 or len({r.score for r in scored}) < 2:
        return {}
    try:
        return dict(optuna.importance.get_param_importances(study))
    except (RuntimeError, ValueError):
        return {}


def _plot(records: list[TrialRecord], space: dict[str, Any], path: Path) -> None:
    importances = parameter_importances(records, space)
    with png_figure(path, ncols=2, figsize=(11, 4)) as (_, (by_trial, importance)):
        for state, marker in (("COMPLETE", "o"), ("PRUNED", "x")):
            shown = [r for r in records if r.state == state and r.scores]
            by_trial.scatter(
                [r.number for r in shown],
                [r.score if r.score is not None else max(r.scores) for r in shown],
                marker=marker,
                label=state.lower(),
            )
        scored = [r for r in records if r.state == "COMPLETE" and r.score is not None]
        running = [
            max(float(r.score or 0.0) for r in scored if r.number <= n.number) for n in scored
        ]
        by_trial.plot([r.number for r in scored], running, drawstyle="steps-post", label="best")
        by_trial.set(
            xlabel="trial", ylabel="dev score (best evaluation)", title="Dev score by trial"
        )
        by_trial.legend()
        if importances:
            names = list(importances)[::-1]
            importance.barh(names, [importances[n] for n in names])
            importance.set(xlabel="importance (fANOVA)", title="Parameter importance")
        else:
            importance.text(
                0.5,
                0.5,
                "needs two completed trials\nwith different scores",
                ha="center",
                va="center",
            )
            importance.set_axis_off()
