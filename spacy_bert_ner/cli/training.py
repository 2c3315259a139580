"""Commands that fit weights: `train` (one process, or data-parallel on Ray Train), `tune`,
`continual`, `active-learning`, `calibrate` (a temperature, a feature calibrator and
guaranteed thresholds per bert_ner), `adapt` (a trained pipeline fine-tuned on a new domain),
and
`teacher-distributions` (what a distilled student learns from)."""

from pathlib import Path

import typer

from ..experiments.tune import TuneEngine
from .app import app


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def train(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Training config, as for spacy train"),
    output_path: Path = typer.Argument(..., help="Directory for model-best and model-last"),
    workers: int = typer.Option(1, "--workers", help="Data-parallel workers (1: spacy train)"),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker", help="GPUs per worker"),
    cpus_per_worker: float = typer.Option(
        1.0, "--cpus-per-worker", help="CPUs (and torch threads) per worker"
    ),
    address: str = typer.Option(
        None, "--address", help="Ray cluster to train on (auto, ray://...); none: a local Ray"
    ),
    max_failures: int = typer.Option(
        3, "--max-failures", help="Restarts of a failed group from its last checkpoint"
    ),
) -> None:
    """Train as `spacy train` does; with --workers above 1, on that many Ray Train workers
    with gradients averaged at every step (CPU gloo or GPU NCCL). Extra
    `--section.key value` options override the config."""
    from spacy.cli._util import parse_config_overrides

    overrides = parse_config_overrides(ctx.args)
    if workers == 1 and not gpus_per_worker and address is None:
        from spacy.cli.train import train as spacy_train

        spacy_train(config_path, output_path, overrides=overrides)
        return
    from ..extras import require

    require("ray.train", "ray")
    from ..training.ray_train import train_on_ray

    train_on_ray(
        config_path,
        output_path,
        overrides,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
        cpus_per_worker=cpus_per_worker,
        address=address,
        max_failures=max_failures,
    )


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def tune(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Training config to search around"),
    space: Path = typer.Option(
        Path("configs/search_space.yml"), "--space", help="YAML of dotted config keys and ranges"
    ),
    output_dir: Path = typer.Option(
        Path("training/tune"), "--output", "-o", help="Study, trials table, best.cfg, plot"
    ),
    trials: int = typer.Option(20, "--trials", "-n", help="Trials in all (a rerun resumes)"),
    engine: TuneEngine = typer.Option(
        TuneEngine.optuna, "--engine", help="optuna (SQLite study) or ray (Ray Tune)"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler"),
    prune: bool = typer.Option(True, "--prune/--no-prune", help="Stop trials whose dev scores lag"),
    study_name: str = typer.Option("bert_ner", "--study-name", help="Name of the study"),
    workers: int = typer.Option(1, "--workers", help="Ray Tune: trials at once"),
    cpus_per_trial: float = typer.Option(
        1.0, "--cpus-per-trial", help="Ray Tune: CPUs a trial takes"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Search hyperparameters: each trial trains CONFIG with the space's keys overridden and
    is scored by its best dev evaluation. Extra `--section.key value` options (as for
    `spacy train`: paths, max_steps) apply to every trial."""
    from spacy.cli._util import parse_config_overrides

    from ..experiments.tune import TuneSettings
    from ..experiments.tune import tune as run_search

    settings = TuneSettings(
        trials=trials,
        engine=engine,
        seed=seed,
        prune=prune,
        study_name=study_name,
        gpu_id=gpu_id,
        workers=workers,
        cpus_per_trial=cpus_per_trial,
    )
    run_search(config_path, space, output_dir, settings, parse_config_overrides(ctx.args))


@app.command()
def continual(
    base_model: Path = typer.Argument(..., help="Trained pipeline without the new type"),
    new_train: Path = typer.Argument(..., help=".spacy docs annotated with the new type only"),
    rehearsal_corpus: Path = typer.Argument(..., help=".spacy docs whose texts to rehearse on"),
    test: Path = typer.Argument(..., help="Gold test docs (.spacy or CoNLL), all types"),
    output: Path = typer.Option(None, "--output", "-o", help="Metrics JSON to write"),
    plot: Path = typer.Option(None, "--plot", help="PNG of the F1 scores per model"),
    new_type: str = typer.Option("MISC", "--new-type", help="Entity type to teach"),
    epochs: int = typer.Option(3, "--epochs", help="Passes over the new set"),
    words_per_batch: int = typer.Option(464, "--words-per-batch", help="Words per update"),
    learn_rate: float = typer.Option(
        None, "--learn-rate", help="Peak learning rate (default: the base pipeline's config's)"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of batching and dropout"),
) -> None:
    """Teach a trained pipeline a new type three ways (naive, rehearsal, rehearsal with
    pseudo-labels) and score what each keeps and learns on the test set."""
    from ..experiments.continual import ContinualSettings, run_continual_experiment

    settings = ContinualSettings(
        new_type=new_type,
        epochs=epochs,
        words_per_batch=words_per_batch,
        learn_rate=learn_rate,
        seed=seed,
    )
    run_continual_experiment(
        base_model, new_train, rehearsal_corpus, test, settings, output=output, plot=plot
    )


@app.command("active-learning")
def active_learning(
    source: Path = typer.Argument(
        ..., help="Training config (a base model is trained), or a trained pipeline to adapt"
    ),
    train: Path = typer.Argument(..., help=".spacy or CoNLL training corpus: seed set and pool"),
    dev: Path = typer.Argument(..., help=".spacy or CoNLL corpus to score each round on"),
    work_dir: Path = typer.Argument(..., help="Directory for the base model"),
    output: Path = typer.Option(None, "--output", "-o", help="Metrics JSON to write"),
    plot: Path = typer.Option(None, "--plot", help="PNG of dev F1 against labelled sentences"),
    model_name: str = typer.Option(None, "--model-name", help="Encoder instead of the config's"),
    seed_sentences: int = typer.Option(
        None, "--seed-sentences", help="Base model's sentences (1000; 0 from a pipeline)"
    ),
    sizes: str = typer.Option(
        "250,500,750,1000", "--sizes", help="Sentences labelled after each round, comma-separated"
    ),
    round_epochs: int = typer.Option(1, "--round-epochs", help="Passes per round's update"),
    random_seeds: int = typer.Option(3, "--random-seeds", help="Chains per strategy (seeds 0..N)"),
    pool_limit: int = typer.Option(0, "--pool-limit", help="Pool sentences (0: all the rest)"),
    dev_limit: int = typer.Option(0, "--dev-limit", help="Dev documents scored (0: all)"),
    base_epochs: int = typer.Option(3, "--base-epochs", help="Passes over the seed set"),
    seed: int = typer.Option(0, "--seed", help="Seed of the split, batching and dropout"),
) -> None:
    """Simulate labelling rounds with gold as the annotator: sentences chosen by uncertainty
    (select's expected errors) against random ones, dev F1 after each round."""
    from ..experiments.active_learning import ActiveLearningSettings, run_active_learning

    if seed_sentences is None:
        seed_sentences = 0 if source.is_dir() else 1000
    settings = ActiveLearningSettings(
        seed_sentences=seed_sentences,
        sizes=_sizes(sizes),
        round_epochs=round_epochs,
        random_seeds=tuple(range(random_seeds)),
        pool_limit=pool_limit,
        dev_limit=dev_limit,
        base_epochs=base_epochs,
        seed=seed,
    )
    run_active_learning(
        source, train, dev, work_dir, settings, output=output, plot=plot, model_name=model_name
    )


def _sizes(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise typer.BadParameter(f"whole numbers separated by commas, got {text!r}") from None


@app.command()
def calibrate(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    dev_path: Path = typer.Argument(..., help=".spacy DocBin or CoNLL file with gold entities"),
    output: Path = typer.Argument(..., help="Directory for the calibrated copy of the pipeline"),
    objective: str = typer.Option(
        "entities",
        "--objective",
        help="entities: log loss of the decoded entities being right; tags: NLL of gold tags",
    ),
    method: str = typer.Option(
        "features",
        "--method",
        help="temperature: one number; features: the temperature, then a calibrator that "
        "also reads training mentions, shape, label and context",
    ),
    train: Path = typer.Option(
        None, "--train", help="Training corpus whose entities the pipeline keeps as seen"
    ),
    target_precision: float = typer.Option(
        None, "--target-precision", help="Choose per-label thresholds for this precision"
    ),
    risk: float = typer.Option(
        0.1, "--risk", help="Chance the chosen thresholds miss the target precision"
    ),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Fit each bert_ner's temperature (and feature calibrator) on dev data and write a copy
    of the pipeline with it: the same entities, with scores that are probabilities. With
    --target-precision, also per-label thresholds that `threshold = "guaranteed"` applies."""
    from ..errors import BertNERError, parse_choice
    from ..evaluation.calibration import Method, Objective, calibrate_pipeline

    if objective not in Objective.__members__:
        raise BertNERError(f"--objective: {objective!r} is not one of {', '.join(Objective)}")
    for option, value in (("--target-precision", target_precision), ("--risk", risk)):
        if value is not None and not 0.0 < value < 1.0:
            raise BertNERError(f"{option}: {value} is not between 0 and 1")
    calibrate_pipeline(
        model, dev_path, output, gpu_id, Objective(objective),
        method=parse_choice(Method, method, "--method"), train_paths=[train] if train else [],
        target_precision=target_precision, risk=risk,
    )  # fmt: skip


@app.command("teacher-distributions")
def teacher_distributions(
    teachers: list[Path] = typer.Argument(..., help="Trained pipeline directories to average"),
    corpus: Path = typer.Option(..., "--corpus", help=".spacy training corpus (documents)"),
    output: Path = typer.Option(..., "--output", "-o", help="msgpack file, keyed by document"),
    limit: int = typer.Option(0, "--limit", help="Documents of the corpus (0: all)"),
    docs_per_batch: int = typer.Option(16, "--docs-per-batch", help="Documents per predict"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Write the teachers' averaged tag distributions for every token of the corpus, for
    spacy_bert_ner.TeacherRuns.v1; a rerun with the same teachers predicts only the documents
    the file lacks, one made by other teachers is replaced."""
    from ..training.distill import compute_teacher_distributions

    compute_teacher_distributions(
        teachers, corpus, output, limit=limit, docs_per_batch=docs_per_batch, gpu_id=gpu_id
    )


RETENTION_HELP = (
    "Old-domain text (e.g. the pipeline's dev set) whose entity F1 model-best and the threshold "
    "must keep within --max-forgetting (default: no such check)"
)


@app.command()
def adapt(
    model: str = typer.Argument(..., help="Trained pipeline directory or installed package name"),
    train: Path = typer.Argument(
        ..., help="In-domain data: .spacy, CoNLL or a Label Studio export"
    ),
    output: Path = typer.Argument(..., help="Directory for the adapted pipeline (must not exist)"),
    dev: Path = typer.Option(None, "--dev", help="In-domain dev set (default: cut from TRAIN)"),
    rehearse: Path = typer.Option(
        None, "--rehearse", help="Corpus of the old domain whose texts to rehearse on"
    ),
    max_steps: int = typer.Option(300, "--max-steps", help="Updates of the run"),
    eval_frequency: int = typer.Option(50, "--eval-frequency", help="Updates between dev scores"),
    dev_share: float = typer.Option(0.2, "--dev-share", help="Share of TRAIN cut for dev"),
    learn_rate: float = typer.Option(
        None, "--learn-rate", help="Peak learning rate (default: the pipeline's config's)"
    ),
    rehearse_ratio: float = typer.Option(
        1.0, "--rehearse-ratio", help="Rehearsal words per step, as a share of the update's"
    ),
    choose_threshold: bool = typer.Option(
        True, "--choose-threshold/--no-threshold", help="Set the entity threshold best on dev"
    ),
    retention: Path = typer.Option(None, "--retention", help=RETENTION_HELP),
    retention_words: int = typer.Option(20000, "--retention-words", help="Its words to score"),
    max_forgetting: float = typer.Option(1.0, "--max-forgetting", help="F1 points it may lose"),
    label_map: list[str] = typer.Option(
        [], "--label-map", help="FROM=TO: read the data's label FROM as TO (repeatable)"
    ),
    new_labels: bool = typer.Option(
        True, "--new-labels/--no-new-labels", help="Add the data's labels the pipeline lacks"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the dev split, batches and dropout"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Fine-tune a trained pipeline on your own documents, rehearsing its old domain; keep the
    checkpoint best on an in-domain dev set among those that kept the old domain, calibrated
    on it, with the entity threshold best there."""
    from ..errors import BertNERError
    from ..labelling.adapt import AdaptSettings, adapt_pipeline

    pairs = [item.split("=", 1) for item in label_map]
    if any(len(pair) != 2 or not all(pair) for pair in pairs):
        raise BertNERError(f"--label-map: give FROM=TO pairs, got {' '.join(label_map)}")
    settings = AdaptSettings(
        max_steps=max_steps,
        eval_frequency=eval_frequency,
        dev_share=dev_share,
        learn_rate=learn_rate,
        rehearse_ratio=rehearse_ratio,
        choose_threshold=choose_threshold,
        max_forgetting=max_forgetting,
        retention_words=retention_words,
        label_map=dict(pairs),
        new_labels=new_labels,
        seed=seed,
        gpu_id=gpu_id,
    )
    adapt_pipeline(
        model, train, output, dev=dev, rehearse=rehearse, settings=settings, retention=retention
    )
