"""Commands that run a trained pipeline on new text: `annotate` (local or Ray Data),
`export-onnx`, `optimize` (the fastest inference path for this CPU) and `serve` (local
engine or Ray Serve)."""

from pathlib import Path

import typer

from ..annotate.command import Engine
from ..serve.settings import ServeEngine, ServiceSettings
from .app import app

#: The service's defaults, shown by `serve --help`: written once, in `ServiceSettings`.
SERVE = ServiceSettings()


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
    from ..annotate.command import annotate as annotate_records

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
    from ..pipeline.export import export_onnx_pipeline

    names = export_onnx_pipeline(model, output, int8=int8)
    typer.echo(f"\u2714 {output}: {', '.join(names)} on onnxruntime{' (int8)' if int8 else ''}")


@app.command("optimize")
def optimize(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    output: Path = typer.Argument(..., help="New pipeline directory, set to the fastest path"),
    texts: Path = typer.Option(
        None, "--texts", help="UTF-8 file, one text per line (default: 300 built-in sentences)"
    ),
    lossy: bool = typer.Option(
        False, "--lossy", help="Also measure int8 (torch and ONNX Runtime), which changes entities"
    ),
    min_agreement: float = typer.Option(
        0.99,
        "--min-agreement",
        help="Share of texts whose entities must equal torch fp32's for a path to be picked",
    ),
    rounds: int = typer.Option(3, "--rounds", help="Timed rounds per path; the median"),
) -> None:
    """Time every inference path this CPU can run on your texts, and save a copy of the
    pipeline set to the fastest whose entities agree with torch fp32's; `spacy.load`,
    `serve` and `annotate` of OUTPUT run that path."""
    from ..pipeline.optimize import optimize_pipeline, print_report, read_texts

    optimized = optimize_pipeline(
        model,
        output,
        texts=read_texts(texts),
        lossy=lossy,
        min_agreement=min_agreement,
        rounds=rounds,
    )
    print_report(optimized)
    chosen = optimized.chosen
    typer.echo(
        f"\u2714 {output}: runs {chosen.path.name} "
        f"(agreement {chosen.agreement:.3f} >= {min_agreement})"
    )


@app.command("serve")
def serve(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    engine: ServeEngine = typer.Option(
        ServeEngine.local, "--engine", help="local (one process, no Ray) or ray (Ray Serve)"
    ),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)"),
    port: int = typer.Option(8000, "--port", help="HTTP port"),
    replicas: int = typer.Option(SERVE.replicas, "--replicas", help="Replicas (ray engine)"),
    min_replicas: int = typer.Option(
        SERVE.min_replicas, "--min-replicas", help="Autoscaling lower bound (ray engine)"
    ),
    max_replicas: int = typer.Option(
        None, "--max-replicas", help="Autoscaling upper bound (ray engine; turns autoscaling on)"
    ),
    max_batch_size: int = typer.Option(
        SERVE.max_batch_size, "--max-batch-size", help="Texts per batch (1: no batching)"
    ),
    batch_wait_ms: float = typer.Option(
        SERVE.batch_wait_ms, "--batch-wait-ms", help="How long a batch waits for more texts"
    ),
    batch_words: int = typer.Option(
        SERVE.batch_words, "--batch-words", help="Word budget per forward batch"
    ),
    max_texts: int = typer.Option(
        SERVE.max_texts, "--max-texts", help="Texts per JSON request (413 beyond)"
    ),
    max_chars: int = typer.Option(
        SERVE.max_chars, "--max-chars", help="Characters per text (413 beyond)"
    ),
    max_queued: int = typer.Option(
        SERVE.max_queued, "--max-queued", help="Requests waiting beyond a batch (503 beyond)"
    ),
    cpus_per_replica: float = typer.Option(
        SERVE.cpus_per_replica,
        "--cpus-per-replica",
        help="Torch threads (and Ray CPUs) per process or replica (0: cores / replicas)",
    ),
    gpus_per_replica: float = typer.Option(
        SERVE.gpus_per_replica, "--gpus-per-replica", help="GPU fraction (0: CPU)"
    ),
    address: str = typer.Option(
        None, "--address", help="Ray cluster to deploy on (auto, ray://...; ray engine)"
    ),
    cors_origin: list[str] = typer.Option(
        [], "--cors-origin", help="Origin allowed by CORS (repeatable); none: CORS off"
    ),
    metrics_port: int = typer.Option(
        None, "--metrics-port", help="Port of Ray's Prometheus metrics (ray engine, local Ray)"
    ),
) -> None:
    """Serve a pipeline over HTTP, batching across requests, until Ctrl-C or SIGTERM.

    An API key is asked for when the BERT_NER_API_KEY environment variable is set."""
    import os

    from ..serve.command import serve_pipeline
    from ..serve.settings import API_KEY_VARIABLE

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
        engine=engine,
        host=host,
        port=port,
        address=address,
        api_key=os.environ.get(API_KEY_VARIABLE) or None,
        cors_origins=cors_origin,
        metrics_port=metrics_port,
    )
