"""`python -m spacy_bert_ner ...`: the commands that project.yml runs, and `annotate`.

The package's own input errors (`BertNERError`) and typer's usage errors are printed as one
line in one place (`OneLineErrors`), so a bad CoNLL line, a missing model or a mistyped option
never ends in a traceback. Each command imports what it runs when it runs, so `--help` and
the other commands never pay for Ray or matplotlib; the options' choices are the enums of the
modules that use them (`ConllScheme`, `Engine`, `TuneEngine`, `Strategy`, `TaskFormat`), none
of which imports either.
"""

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperGroup

from .annotate.command import Engine
from .conll import ConllScheme
from .errors import BertNERError
from .experiments.tune import TuneEngine
from .labelling.formats import Strategy, TaskFormat

# typer 0.2x vendors its own click: take click's exceptions from where typer's live.
_click_exceptions = sys.modules[typer.BadParameter.__module__]
_UsageError: type[Exception] = _click_exceptions.UsageError
# Raised for a bare `python -m spacy_bert_ner`, whose output is the help page: kept as is.
_NoArgsIsHelpError = getattr(_click_exceptions, "NoArgsIsHelpError", ())


@contextmanager
def _one_line_errors() -> Iterator[None]:
    try:
        yield
    except BertNERError as err:
        # One unwrapped line (wasabi wraps at 80 columns, splitting file:line from its problem).
        typer.echo(f"\u2718 {err}", err=True)
        raise typer.Exit(1) from None
    except _UsageError as err:
        if isinstance(err, _NoArgsIsHelpError):
            raise
        ctx = getattr(err, "ctx", None)
        where = f"{ctx.command_path} --help" if ctx is not None else "--help"
        message = " ".join(err.format_message().split())  # type: ignore[attr-defined]
        typer.echo(f"\u2718 {message} (see {where})", err=True)
        raise typer.Exit(getattr(err, "exit_code", 2)) from None


class OneLineErrors(TyperGroup):
    """Every command's `BertNERError` as one line with exit code 1, and usage errors (a
    missing argument, an unknown option, a bad value) as one line with exit code 2, instead
    of a traceback or typer's usage block and framed box."""

    def make_context(self, *args: Any, **kwargs: Any) -> Any:
        with _one_line_errors():
            return super().make_context(*args, **kwargs)

    def invoke(self, ctx: Any) -> Any:
        with _one_line_errors():
            return super().invoke(ctx)


app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__, cls=OneLineErrors)


@app.command()
def convert(
    input_path: Path = typer.Argument(..., help="CoNLL file (2003, 2002 or 2-column style)"),
    output_dir: Path = typer.Argument(..., help="Directory for the .spacy DocBin"),
    scheme: ConllScheme = typer.Option(
        None, "--scheme", case_sensitive=False, help="Tag scheme of the file; detected when omitted"
    ),
    n_sents: int = typer.Option(
        10, "--n-sents", "-n", help="Sentences per doc for files without -DOCSTART- lines"
    ),
    lang: str = typer.Option("en", "--lang", help="Language of the blank vocab"),
) -> None:
    """Convert a CoNLL NER file to a .spacy DocBin, one doc per -DOCSTART- document."""
    from .conll import convert_file

    convert_file(input_path, output_dir, scheme=scheme, n_sents=n_sents, lang=lang)


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., help=".spacy DocBin or CoNLL file with gold entities"),
    output: Path = typer.Option(None, "--output", "-o", help="Metrics JSON to write"),
    plot: Path = typer.Option(None, "--plot", help="PNG with per-type scores and confusions"),
    errors_html: Path = typer.Option(None, "--errors-html", help="displaCy page of errors"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Predict on gold data and report seqeval scores (conlleval and strict IOB2)."""
    from .evaluation.command import evaluate_pipeline

    evaluate_pipeline(
        model, data_path, output=output, plot=plot, errors_html=errors_html, gpu_id=gpu_id
    )


@app.command()
def annotate(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    input_path: Path = typer.Argument(..., help="JSONL file (or .parquet), one record per line"),
    output: Path = typer.Argument(..., help="JSONL of entities per record; a rerun resumes it"),
    engine: Engine = typer.Option(
        Engine.local, "--engine", help="local (nlp.pipe) or ray (Ray Data)"
    ),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text"),
    id_field: str = typer.Option(
        "id", "--id-field", help="Field holding the id (the line number where absent)"
    ),
    batch_size: int = typer.Option(256, "--batch-size", help="Docs per pipeline batch"),
    workers: int = typer.Option(1, "--workers", help="Processes (local) or actors (ray)"),
    gpus_per_worker: float = typer.Option(
        0.0, "--gpus-per-worker", help="GPUs per worker (ray actors may take fractions)"
    ),
    errors: Path = typer.Option(
        None, "--errors", help="JSONL of records that failed (default: OUTPUT.errors.jsonl)"
    ),
) -> None:
    """Write the entities of every input record; failures go to the errors file."""
    from .annotate.command import annotate as annotate_records

    annotate_records(
        model,
        input_path,
        output,
        errors=errors,
        engine=engine,
        text_field=text_field,
        id_field=id_field,
        batch_size=batch_size,
        workers=workers,
        gpus_per_worker=gpus_per_worker,
    )


@app.command("export-onnx")
def export_onnx(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    output: Path = typer.Argument(..., help="New pipeline directory, running on ONNX Runtime"),
    int8: bool = typer.Option(False, "--int8", help="int8 graph (dynamic quantization)"),
) -> None:
    """Write a copy of a pipeline whose bert_ner runs on ONNX Runtime (CPU inference),
    with the graph exported from its weights; `spacy.load(OUTPUT)` uses it."""
    from .pipeline.export import export_onnx_pipeline

    names = export_onnx_pipeline(model, output, int8=int8)
    typer.echo(f"\u2714 {output}: {', '.join(names)} on onnxruntime{' (int8)' if int8 else ''}")


@app.command("serve")
def serve(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)"),
    port: int = typer.Option(8000, "--port", help="HTTP port"),
    replicas: int = typer.Option(1, "--replicas", help="Replicas (without autoscaling)"),
    min_replicas: int = typer.Option(1, "--min-replicas", help="Autoscaling lower bound"),
    max_replicas: int = typer.Option(
        None, "--max-replicas", help="Autoscaling upper bound (turns autoscaling on)"
    ),
    max_batch_size: int = typer.Option(
        32, "--max-batch-size", help="Texts per batch across requests (1: no batching)"
    ),
    batch_wait_ms: float = typer.Option(
        5.0, "--batch-wait-ms", help="How long a batch waits for more texts"
    ),
    batch_words: int = typer.Option(4096, "--batch-words", help="Word budget per forward batch"),
    max_texts: int = typer.Option(64, "--max-texts", help="Texts per request (413 beyond)"),
    max_chars: int = typer.Option(20_000, "--max-chars", help="Characters per text (413 beyond)"),
    max_queued: int = typer.Option(
        256, "--max-queued", help="Queued requests per replica set (503 beyond)"
    ),
    cpus_per_replica: float = typer.Option(
        0.0, "--cpus-per-replica", help="CPUs and torch threads per replica (0: cores / replicas)"
    ),
    gpus_per_replica: float = typer.Option(0.0, "--gpus-per-replica", help="GPU fraction"),
    address: str = typer.Option(
        None, "--address", help="Ray cluster to deploy on (auto, ray://...); none: a local Ray"
    ),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="Origin allowed by CORS (repeatable); none: CORS off"
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Port of Ray's Prometheus metrics (local Ray only)"
    ),
) -> None:
    """Serve a pipeline over HTTP (Ray Serve, batching across requests) until Ctrl-C.

    An API key is asked for when the BERT_NER_API_KEY environment variable is set."""
    import os

    from .extras import require
    from .serve.settings import API_KEY_VARIABLE, ServiceSettings

    for module in ("ray.serve", "fastapi"):
        require(module, "serve")
    from .serve.command import serve_pipeline

    settings = ServiceSettings(
        max_batch_size=max_batch_size,
        batch_wait_ms=batch_wait_ms,
        batch_words=batch_words,
        max_texts=max_texts,
        max_chars=max_chars,
        max_queued=max_queued,
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        cpus_per_replica=cpus_per_replica,
        gpus_per_replica=gpus_per_replica,
    )
    serve_pipeline(
        model,
        settings,
        host=host,
        port=port,
        address=address,
        api_key=os.environ.get(API_KEY_VARIABLE) or None,
        cors_origins=cors_origin,
        metrics_port=metrics_port,
    )


@app.command("continual-data")
def continual_data(
    train_path: Path = typer.Argument(..., help="Training .spacy DocBin (or CoNLL file)"),
    dev_path: Path = typer.Argument(..., help="Dev .spacy DocBin (or CoNLL file)"),
    output_dir: Path = typer.Argument(..., help="Directory for the three DocBins"),
    new_type: str = typer.Option("MISC", "--new-type", help="Entity type to teach later"),
    n_new: int = typer.Option(1000, "--n-new", help="Sentences holding it in the new set"),
    seed: int = typer.Option(0, "--seed", help="Seed of the sentence sample"),
) -> None:
    """Write old-train/old-dev (without the new type) and new-train (the new type alone)."""
    from .experiments.continual_data import prepare_continual_data

    prepare_continual_data(
        train_path, dev_path, output_dir, new_type=new_type, n_new=n_new, seed=seed
    )


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
    learn_rate: float = typer.Option(5e-5, "--learn-rate", help="Peak learning rate"),
    seed: int = typer.Option(0, "--seed", help="Seed of batching and dropout"),
) -> None:
    """Teach a trained pipeline a new type three ways (naive, rehearsal, rehearsal with
    pseudo-labels) and score what each keeps and learns on the test set."""
    from .experiments.continual import ContinualSettings, run_continual_experiment

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

    from .experiments.tune import TuneSettings
    from .experiments.tune import tune as run_search

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


@app.command(
    "debug-data", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def debug_data(
    ctx: typer.Context,
    config_path: Path = typer.Argument(..., help="Training config whose corpora to check"),
) -> None:
    """spaCy's NER data checks for bert_ner pipelines, plus wordpiece ones: gold entities
    misaligned with the tokenizer, tags the pretrained head lacks, wordpieces and windows per
    doc. Extra `--section.key value` options override the config (e.g. --paths.train).
    Exits 1 when something would stop or spoil training."""
    from spacy.cli._util import parse_config_overrides

    from .training.data_checks import debug_data as check_data

    report = check_data(config_path, parse_config_overrides(ctx.args))
    if report.n_failures:
        raise typer.Exit(1)


@app.command("package-meta")
def package_meta(
    template: Path = typer.Argument(..., help="JSON of description, author, license, sources"),
    metrics: Path = typer.Argument(..., help="Metrics JSON written by `evaluate`"),
    output: Path = typer.Option(..., "--output", "-o", help="meta.json for spacy package"),
) -> None:
    """Write the meta for `spacy package --meta-path`: the template plus the performance the
    evaluation measured."""
    from .evaluation.package_meta import write_package_meta

    write_package_meta(template, metrics, output)


@app.command("threshold-curve")
def threshold_curve(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., help=".spacy DocBin or CoNLL file with gold entities"),
    output: Path = typer.Option(None, "--output", "-o", help="JSON of the curve"),
    plot: Path = typer.Option(None, "--plot", help="PNG of the curve"),
    n_thresholds: int = typer.Option(21, "--n-thresholds", "-n", help="Thresholds over 0-1"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Precision, recall and F1 by bert_ner's threshold from one prediction pass (the figures
    `spacy find-threshold` computes with one pass per threshold), with a plot."""
    from .evaluation.threshold import write_threshold_curve

    write_threshold_curve(
        model, data_path, output=output, plot=plot, n_thresholds=n_thresholds, gpu_id=gpu_id
    )


@app.command()
def assets(
    project_dir: Path = typer.Argument(Path("."), help="Project directory (with project.yml)"),
) -> None:
    """`spacy project assets` (skips files with the right md5, downloads the others), with a
    one-line message naming each file still missing and where to put it."""
    from .project_assets import fetch_project_assets

    fetch_project_assets(project_dir)


@app.command()
def calibrate(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    dev_path: Path = typer.Argument(..., help=".spacy DocBin or CoNLL file with gold entities"),
    output: Path = typer.Argument(..., help="Directory for the calibrated copy of the pipeline"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Fit each bert_ner's temperature on dev data (NLL of the gold tags) and write a copy of
    the pipeline with it: the same entities, with scores that are probabilities."""
    from .evaluation.calibration import calibrate_pipeline

    calibrate_pipeline(model, dev_path, output, gpu_id)


@app.command()
def reliability(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., help=".spacy DocBin or CoNLL file with gold entities"),
    output: Path = typer.Option(None, "--output", "-o", help="JSON of the figures"),
    plot: Path = typer.Option(None, "--plot", help="PNG reliability diagram"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Whether entity scores are probabilities: ECE (10 bins), Brier score, precision/recall
    kept at thresholds, for the mean tag probability and the span probability."""
    from .evaluation.reliability import write_reliability_report

    write_reliability_report(model, data_path, output=output, plot=plot, gpu_id=gpu_id)


@app.command()
def select(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    input_path: Path = typer.Argument(..., help="JSONL (or .parquet) records, or a .spacy DocBin"),
    output: Path = typer.Argument(..., help="Tasks: Label Studio JSON or Prodigy JSONL"),
    n: int = typer.Option(200, "--n", "-n", help="Documents to choose"),
    strategy: Strategy = typer.Option(Strategy.uncertainty, "--strategy", help="Which ones"),
    task_format: TaskFormat = typer.Option(TaskFormat.label_studio, "--format"),
    seed: int = typer.Option(0, "--seed", help="Seed of the random strategy"),
    text_field: str = typer.Option("text", "--text-field", help="Field holding the text"),
) -> None:
    """Choose the documents people should label next (most expected entity errors, or at
    random) and write them as tasks with the model's entities pre-annotated."""
    from .labelling.select import select_documents

    select_documents(model, input_path, output, n=n, strategy=strategy,
                     task_format=task_format, seed=seed, text_field=text_field)  # fmt: skip


@app.command("import-annotations")
def import_annotations(
    export: Path = typer.Argument(..., help="Label Studio JSON export or Prodigy-style JSONL"),
    output: Path = typer.Argument(..., help=".spacy DocBin of the annotated documents"),
    lang: str = typer.Option("en", "--lang", help="Language whose tokenizer reads the texts"),
) -> None:
    """Read annotated tasks into a .spacy corpus, naming each task left out and why."""
    from .labelling.importer import import_annotations as read_annotations

    read_annotations(export, output, lang)
