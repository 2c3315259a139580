"""Commands that score a trained pipeline: seqeval scores, the threshold curve, reliability
(calibration), the estimate without labels, drift monitoring, and the package metadata that
carries the scores."""

from pathlib import Path

import typer

from .app import app


@app.command()
def evaluate(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., help=".spacy DocBin or CoNLL file with gold entities"),
    output: Path = typer.Option(None, "--output", "-o", help="Metrics JSON to write"),
    plot: Path = typer.Option(None, "--plot", help="PNG with per-type scores and confusions"),
    errors_html: Path = typer.Option(None, "--errors-html", help="displaCy page of errors"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
    train: Path = typer.Option(
        None, "--train", help="Training corpus (.spacy or CoNLL): also score seen/unseen entities"
    ),
) -> None:
    """Predict on gold data and report seqeval scores (conlleval and strict IOB2); with
    --train, also P/R/F1 of the entities seen and unseen in training (text with that label)."""
    from ..evaluation.command import evaluate_pipeline

    evaluate_pipeline(
        model,
        data_path,
        output=output,
        plot=plot,
        errors_html=errors_html,
        gpu_id=gpu_id,
        train=train,
    )


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
    from ..evaluation.threshold import write_threshold_curve

    write_threshold_curve(
        model, data_path, output=output, plot=plot, n_thresholds=n_thresholds, gpu_id=gpu_id
    )


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
    from ..evaluation.reliability import write_reliability_report

    write_reliability_report(model, data_path, output=output, plot=plot, gpu_id=gpu_id)


@app.command()
def estimate(
    model: str = typer.Argument(..., help="Pipeline directory or installed package name"),
    data_path: Path = typer.Argument(..., help="JSONL (or Parquet) texts, or .spacy docs"),
    output: Path = typer.Option(None, "--output", "-o", help="JSON of the figures"),
    text_field: str = typer.Option("text", "--text-field", help="JSONL field with the text"),
    gpu_id: int = typer.Option(-1, "--gpu-id", "-g", help="GPU id, -1 for CPU"),
) -> None:
    """Expected precision, recall and F1 per label on unlabelled texts, with intervals, from
    the calibrated scores and the entities the model expects to have missed (a .spacy
    file's gold entities are not read)."""
    from ..evaluation.estimate import write_estimate

    write_estimate(model, data_path, output=output, text_field=text_field, gpu_id=gpu_id)


@app.command()
def monitor(
    model: str = typer.Argument(..., help="The calibrated pipeline that wrote the output"),
    annotations: Path = typer.Argument(..., help="JSONL output of `annotate`"),
    output: Path = typer.Option(None, "--output", "-o", help="JSON of the figures"),
    plot: Path = typer.Option(None, "--plot", help="PNG of the drift score by document"),
    window: int = typer.Option(1000, "--window", help="Entities in the running window"),
) -> None:
    """Per label the estimated precision, the share of entities unseen in training and the
    drift of the scores from dev (PSI; alarm over 0.25), over `annotate`'s output: what
    `serve` exports as metrics."""
    from ..evaluation.monitor import write_monitor_report

    write_monitor_report(model, annotations, output=output, plot=plot, window=window)


@app.command("package-meta")
def package_meta(
    template: Path = typer.Argument(..., help="JSON of description, author, license, sources"),
    metrics: Path = typer.Argument(..., help="Metrics JSON written by `evaluate`"),
    output: Path = typer.Option(..., "--output", "-o", help="meta.json for spacy package"),
) -> None:
    """Write the meta for `spacy package --meta-path`: the template plus the performance the
    evaluation measured."""
    from ..evaluation.package_meta import write_package_meta

    write_package_meta(template, metrics, output)
