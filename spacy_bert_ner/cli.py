"""`python -m spacy_bert_ner ...`: the commands that project.yml runs.

Each command catches the package's own input errors and prints them as one line, so a bad
CoNLL line or a missing model never ends in a traceback.
"""

from pathlib import Path

import typer

from .errors import BertNERError

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)


def fail(err: BertNERError) -> None:
    """One unwrapped line (wasabi wraps at 80 columns, splitting file:line from its problem)."""
    typer.echo(f"\u2718 {err}", err=True)
    raise typer.Exit(1)


@app.command()
def convert(
    input_path: Path = typer.Argument(..., help="CoNLL file (2003, 2002 or 2-column style)"),
    output_dir: Path = typer.Argument(..., help="Directory for the .spacy DocBin"),
    scheme: str = typer.Option(None, "--scheme", help="IOB1 or IOB2; detected when omitted"),
    n_sents: int = typer.Option(
        10, "--n-sents", "-n", help="Sentences per doc for files without -DOCSTART- lines"
    ),
    lang: str = typer.Option("en", "--lang", help="Language of the blank vocab"),
) -> None:
    """Convert a CoNLL NER file to a .spacy DocBin, one doc per -DOCSTART- document."""
    from .conll import convert_file

    try:
        convert_file(input_path, output_dir, scheme=scheme, n_sents=n_sents, lang=lang)
    except BertNERError as err:
        fail(err)


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
    from .evaluation import evaluate_pipeline

    try:
        evaluate_pipeline(
            model, data_path, output=output, plot=plot, errors_html=errors_html, gpu_id=gpu_id
        )
    except BertNERError as err:
        fail(err)


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
    from .continual import prepare_continual_data

    try:
        prepare_continual_data(
            train_path, dev_path, output_dir, new_type=new_type, n_new=n_new, seed=seed
        )
    except BertNERError as err:
        fail(err)


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
    from .continual_experiment import ContinualSettings, run_continual_experiment

    settings = ContinualSettings(
        new_type=new_type,
        epochs=epochs,
        words_per_batch=words_per_batch,
        learn_rate=learn_rate,
        seed=seed,
    )
    try:
        run_continual_experiment(
            base_model, new_train, rehearsal_corpus, test, settings, output=output, plot=plot
        )
    except BertNERError as err:
        fail(err)
