"""Commands that run a trained pipeline on new text: `annotate` (local or Ray Data),
`export-onnx`, `optimize` (the fastest inference path for this CPU) and `serve` (local
engine or Ray Serve)."""

from pathlib import Path
from typing import Annotated

import typer

from ..annotate.command import Engine
from ..serve.settings import ServeEngine, ServiceSettings
from .app import app

#: The service's defaults, shown by `serve --help`: written once, in `ServiceSettings`.
SERVE = ServiceSettings()

# The `serve` command's options, one line each in its signature.
Model = Annotated[str, typer.Argument(help="Pipeline directory or installed package name")]
EngineOption = Annotated[
    ServeEngine, typer.Option("--engine", help="local (one process, no Ray) or ray (Ray Serve)")
]
Host = Annotated[str, typer.Option("--host", help="Address to bind (loopback by default)")]
Port = Annotated[int, typer.Option("--port", help="HTTP port")]
Replicas = Annotated[int, typer.Option("--replicas", help="Replicas (ray engine)")]
MinReplicas = Annotated[
    int, typer.Option("--min-replicas", help="Autoscaling lower bound (ray engine)")
]
MaxReplicas = Annotated[
    int | None,
    typer.Option(
        "--max-replicas", help="Autoscaling upper bound (ray engine; turns autoscaling on)"
    ),
]
MaxBatchSize = Annotated[
    int, typer.Option("--max-batch-size", help="Texts per batch (1: no batching)")
]
BatchWaitMs = Annotated[
    float, typer.Option("--batch-wait-ms", help="How long a batch waits for more texts")
]
BatchWords = Annotated[int, typer.Option("--batch-words", help="Word budget per forward batch")]
MaxTexts = Annotated[int, typer.Option("--max-texts", help="Texts per JSON request (413 beyond)")]
MaxChars = Annotated[int, typer.Option("--max-chars", help="Characters per text (413 beyond)")]
MaxQueued = Annotated[
    int, typer.Option("--max-queued", help="Requests waiting beyond a batch (503 beyond)")
]
CpusPerReplica = Annotated[
    float,
    typer.Option(
        "--cpus-per-replica",
        help="Torch threads (and Ray CPUs) per process or replica (0: cores / replicas)",
    ),
]
GpusPerReplica = Annotated[float, typer.Option("--gpus-per-replica", help="GPU fraction (0: CPU)")]
Address = Annotated[
    str | None,
    typer.Option("--address", help="Ray cluster to deploy on (auto, ray://...; ray engine)"),
]
CorsOrigins = Annotated[
    list[str] | None,
    typer.Option("--cors-origin", help="Origin allowed by CORS (repeatable); none: CORS off"),
]
MetricsPort = Annotated[
    int | None,
    typer.Option("--metrics-port", help="Port of Ray's Prometheus metrics (ray engine, local Ray)"),
]
LabelStudioDir = Annotated[
    Path | None,
    typer.Option(
        "--label-studio",
        help="Also be Label Studio's ML backend (/label-studio; local engine), writing each "
        "pipeline its annotations train to this directory",
    ),
]
LabelStudioEvery = Annotated[
    int, typer.Option("--label-studio-every", help="New annotations that start an update")
]


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
    from ..annotate.command import annotate_file

    annotate_file(
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
    model: Model,
    engine: EngineOption = ServeEngine.local,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    replicas: Replicas = SERVE.replicas,
    min_replicas: MinReplicas = SERVE.min_replicas,
    max_replicas: MaxReplicas = None,
    max_batch_size: MaxBatchSize = SERVE.max_batch_size,
    batch_wait_ms: BatchWaitMs = SERVE.batch_wait_ms,
    batch_words: BatchWords = SERVE.batch_words,
    max_texts: MaxTexts = SERVE.max_texts,
    max_chars: MaxChars = SERVE.max_chars,
    max_queued: MaxQueued = SERVE.max_queued,
    cpus_per_replica: CpusPerReplica = SERVE.cpus_per_replica,
    gpus_per_replica: GpusPerReplica = SERVE.gpus_per_replica,
    address: Address = None,
    cors_origin: CorsOrigins = None,
    metrics_port: MetricsPort = None,
    label_studio: LabelStudioDir = None,
    label_studio_every: LabelStudioEvery = 10,
) -> None:
    """Serve a pipeline over HTTP, batching across requests, until Ctrl-C or SIGTERM.

    An API key is asked for when the BERT_NER_API_KEY environment variable is set."""
    import os

    from ..serve.command import serve_pipeline
    from ..serve.label_studio_update import LabelStudioSettings
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
        cors_origins=cors_origin or (),
        metrics_port=metrics_port,
        label_studio=None
        if label_studio is None
        else LabelStudioSettings(label_studio, update_every=label_studio_every),
    )
