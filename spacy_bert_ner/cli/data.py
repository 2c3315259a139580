"""Commands that bring data in and send it out: CoNLL conversion, assets, continual-learning
corpora, `debug-data`, and the annotation loop (`select`, `import-annotations`)."""

from pathlib import Path

import typer

from ..conll import ConllScheme
from ..labelling.formats import Strategy, TaskFormat
from .app import app


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
    from ..conll import convert_file

    convert_file(input_path, output_dir, scheme=scheme, n_sents=n_sents, lang=lang)


@app.command()
def assets(
    project_dir: Path = typer.Argument(Path("."), help="Project directory (with project.yml)"),
) -> None:
    """`spacy project assets` (skips files with the right md5, downloads the others), with a
    one-line message naming each file still missing and where to put it."""
    from ..project_assets import fetch_project_assets

    fetch_project_assets(project_dir)


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
    from ..experiments.continual_data import prepare_continual_data

    prepare_continual_data(
        train_path, dev_path, output_dir, new_type=new_type, n_new=n_new, seed=seed
    )


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

    from ..training.data_checks import debug_data as check_data

    report = check_data(config_path, parse_config_overrides(ctx.args))
    if report.n_failures:
        raise typer.Exit(1)


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
    from ..labelling.select import select_documents

    select_documents(model, input_path, output, n=n, strategy=strategy,
                     task_format=task_format, seed=seed, text_field=text_field)  # fmt: skip


@app.command("import-annotations")
def import_annotations(
    export: Path = typer.Argument(..., help="Label Studio JSON export or Prodigy-style JSONL"),
    output: Path = typer.Argument(..., help=".spacy DocBin of the annotated documents"),
    lang: str = typer.Option("en", "--lang", help="Language whose tokenizer reads the texts"),
) -> None:
    """Read annotated tasks into a .spacy corpus, naming each task left out and why."""
    from ..labelling.importer import import_annotations as read_annotations

    read_annotations(export, output, lang)
