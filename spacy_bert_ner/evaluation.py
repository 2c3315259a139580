"""Score a pipeline's entities against gold docs the way NER papers do, and show the errors.

The headline figure is seqeval's default mode, which reproduces the CoNLL shared task's
`conlleval` script: the number papers report for CoNLL-2003. seqeval's strict IOB2 mode is
shown beside it because the two differ only when a tag sequence is ill-formed (an `I-` that
starts an entity, or one whose type changes mid-span): conlleval repairs such sequences, strict
mode discards the broken entities. Tags taken from spaCy `Doc.ents` are always well-formed IOB2
spans, so the two modes agree on them, and spaCy's own `Scorer.score_spans(..., "ents")`, which
compares exact labelled token spans, must give the same micro P/R/F1 as the conlleval figure.
Reporting all three makes a disagreement, i.e. a bug in tag conversion, visible at once.

`evaluate_pipeline` is what `python -m spacy_bert_ner evaluate` runs: it predicts on the gold
docs' own tokens (CoNLL tokenization, not spaCy's) so gold and predicted tags line up one to
one, then prints the tables and optionally writes the metrics JSON, a PNG and a displaCy page
of the sentences the model got wrong.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import spacy
import srsly
from seqeval.metrics import classification_report
from seqeval.scheme import IOB2
from spacy import displacy
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example
from tqdm import tqdm
from wasabi import msg

from .errors import BertNERError
from .io import atomic_path
from .loading import load_pipeline

MISSED = "MISSED"
SPURIOUS = "SPURIOUS"
_AVERAGES = ("micro avg", "macro avg", "weighted avg")
# displaCy colours OntoNotes labels only; give CoNLL's PER and MISC their PERSON/NORP colours.
DISPLACY_OPTIONS = {"colors": {"PER": "#aa9cfc", "MISC": "#c887fb"}}


def doc_iob2(doc: Doc) -> list[str]:
    """The IOB2 tags of `doc.ents`, one per token; tokens without entity annotation are "O"."""
    tags = []
    for token in doc:
        if token.ent_iob_ in ("B", "I") and token.ent_type_:
            tags.append(f"{token.ent_iob_}-{token.ent_type_}")
        else:
            tags.append("O")
    return tags


def _check_pairs(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> None:
    if len(gold_docs) != len(pred_docs):
        raise BertNERError(
            f"{len(gold_docs)} gold docs but {len(pred_docs)} predicted docs: cannot pair them"
        )
    for i, (gold, pred) in enumerate(zip(gold_docs, pred_docs, strict=True)):
        if len(gold) != len(pred):
            raise BertNERError(
                f"doc {i}: gold has {len(gold)} tokens, prediction has {len(pred)}; "
                "predict on the gold tokens"
            )


def _seqeval_mode(y_true: list[list[str]], y_pred: list[list[str]], **mode: Any) -> dict:
    """Micro P/R/F1 and per-type P/R/F1/support from one seqeval classification report."""
    with warnings.catch_warnings():
        # The macro average of an empty report is nan (numpy warns); we don't use it.
        warnings.simplefilter("ignore", RuntimeWarning)
        report = classification_report(y_true, y_pred, output_dict=True, zero_division=0, **mode)
    micro = report["micro avg"]
    per_type = {
        label: {
            "precision": float(row["precision"]),
            "recall": float(row["recall"]),
            "f1": float(row["f1-score"]),
            "support": int(row["support"]),
        }
        for label, row in sorted(report.items())
        if label not in _AVERAGES
    }
    return {
        "precision": float(micro["precision"]),
        "recall": float(micro["recall"]),
        "f1": float(micro["f1-score"]),
        "support": int(micro["support"]),
        "per_type": per_type,
    }


def score_docs(gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]) -> dict[str, Any]:
    """Entity scores of `pred_docs` against `gold_docs` (paired by position, same tokens).

    One tag sequence per doc goes to seqeval. Returns floats in 0..1:
    {"conlleval": {precision, recall, f1, support, per_type: {LABEL: {precision, recall, f1,
    support}}}, "strict": {same layout}, "spacy": {precision, recall, f1, per_type: {LABEL:
    {precision, recall, f1}}}, "n_docs", "n_tokens"}. spaCy's Scorer reports None when there
    are no gold or predicted entities at all; that is written as 0.0, conlleval's figure.
    """
    _check_pairs(gold_docs, pred_docs)
    y_true = [doc_iob2(doc) for doc in gold_docs]
    y_pred = [doc_iob2(doc) for doc in pred_docs]
    examples = [Example(pred, gold) for gold, pred in zip(gold_docs, pred_docs, strict=True)]
    spacy_scores = Scorer.score_spans(examples, "ents")
    spacy_per_type = {
        label: {"precision": float(s["p"]), "recall": float(s["r"]), "f1": float(s["f"])}
        for label, s in sorted((spacy_scores.get("ents_per_type") or {}).items())
    }
    return {
        "conlleval": _seqeval_mode(y_true, y_pred),
        "strict": _seqeval_mode(y_true, y_pred, mode="strict", scheme=IOB2),
        "spacy": {
            "precision": float(spacy_scores["ents_p"] or 0.0),
            "recall": float(spacy_scores["ents_r"] or 0.0),
            "f1": float(spacy_scores["ents_f"] or 0.0),
            "per_type": spacy_per_type,
        },
        "n_docs": len(gold_docs),
        "n_tokens": sum(len(doc) for doc in gold_docs),
    }


def entity_confusion(
    gold_docs: Sequence[Doc], pred_docs: Sequence[Doc]
) -> dict[str, dict[str, int]]:
    """Counts of gold entity type (row) against predicted type (column), matched by exact span.

    A gold span and a predicted span match when they cover exactly the same tokens of paired
    docs. A match adds 1 to [gold label][predicted label] (the diagonal when the labels agree);
    a gold span that no predicted span matches adds 1 to [gold label]["MISSED"]; a predicted
    span that no gold span matches adds 1 to ["SPURIOUS"][predicted label]. A boundary error
    (gold "Angela Merkel", predicted "Merkel") is therefore one MISSED plus one SPURIOUS, as in
    conlleval, where it costs both a false negative and a false positive.

    Rows: every gold or predicted label (sorted) then "SPURIOUS"; columns: the same labels then
    "MISSED"; absent pairs are 0, so the result is a full matrix (SPURIOUS/MISSED is always 0).
    """
    _check_pairs(gold_docs, pred_docs)
    counts: dict[tuple[str, str], int] = {}
    labels: set[str] = set()

    def add(row: str, col: str) -> None:
        counts[row, col] = counts.get((row, col), 0) + 1

    for gold, pred in zip(gold_docs, pred_docs, strict=True):
        gold_spans = {(ent.start, ent.end): ent.label_ for ent in gold.ents}
        pred_spans = {(ent.start, ent.end): ent.label_ for ent in pred.ents}
        labels.update(gold_spans.values(), pred_spans.values())
        for offsets, gold_label in gold_spans.items():
            add(gold_label, pred_spans.get(offsets, MISSED))
        for offsets, pred_label in pred_spans.items():
            if offsets not in gold_spans:
                add(SPURIOUS, pred_label)
    ordered = sorted(labels)
    return {
        row: {col: counts.get((row, col), 0) for col in [*ordered, MISSED]}
        for row in [*ordered, SPURIOUS]
    }


def print_report(metrics: dict[str, Any]) -> None:
    """conlleval-style per-type tables (percentages, 2 decimals) for both seqeval modes."""
    titles = {
        "conlleval": "seqeval default mode (conlleval)",
        "strict": "seqeval strict mode (IOB2)",
    }
    header = ("type", "precision", "recall", "F1", "support")
    aligns = ("l", "r", "r", "r", "r")
    for key, title in titles.items():
        scores = metrics[key]
        rows: list[tuple[str, ...]] = [
            (label, *_percentages(row), str(row["support"]))
            for label, row in scores["per_type"].items()
        ]
        rows.append(("micro avg", *_percentages(scores), str(scores["support"])))
        msg.divider(title)
        msg.table(rows, header=header, aligns=aligns, divider=True)
    spacy_scores = metrics["spacy"]
    msg.info(
        "spaCy Scorer ents: P {} R {} F1 {}".format(*_percentages(spacy_scores))
        + (f", {metrics['words_per_second']:.0f} words/s" if "words_per_second" in metrics else "")
    )


def _percentages(row: dict[str, Any]) -> tuple[str, str, str]:
    return (
        f"{100 * row['precision']:.2f}",
        f"{100 * row['recall']:.2f}",
        f"{100 * row['f1']:.2f}",
    )


@contextlib.contextmanager
def png_figure(path: Path, **subplots: Any) -> Iterator[tuple[Any, Any]]:
    """`plt.subplots(**subplots)` to draw on; written to `path` as a PNG (whole or not at all,
    see `atomic_path`) when the block ends without error, and closed either way.

    matplotlib runs on its file-only Agg backend, and a missing matplotlib is a one-line error:
    it comes with the `project` extra, not with the core.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        raise BertNERError(
            "plotting needs matplotlib: pip install 'spacy-bert-ner[project]'"
        ) from err
    fig, axes = plt.subplots(**subplots)
    try:
        yield fig, axes
        fig.tight_layout()
        with atomic_path(path) as tmp_path:
            fig.savefig(tmp_path, format="png", dpi=120)
    finally:
        plt.close(fig)


def plot_metrics(
    metrics: dict[str, Any], confusion: dict[str, dict[str, int]], path: Path | str
) -> Path:
    """Write a PNG: per-type P/R/F1 bars (conlleval mode) and the span confusion heatmap."""
    path = Path(path)
    scores = metrics["conlleval"]
    labels = list(scores["per_type"])
    rows = list(confusion)
    cols = list(next(iter(confusion.values()), {}))
    figsize = (6 + 1.1 * max(len(labels), len(cols)), 5.5)
    with png_figure(path, nrows=1, ncols=2, figsize=figsize) as (fig, (ax_bars, ax_conf)):
        from matplotlib.colors import LogNorm

        width = 0.27
        for i, (key, name) in enumerate((("precision", "P"), ("recall", "R"), ("f1", "F1"))):
            xs = [x + (i - 1) * width for x in range(len(labels))]
            values = [100 * scores["per_type"][label][key] for label in labels]
            bars = ax_bars.bar(xs, values, width, label=name)
            ax_bars.bar_label(bars, fmt="%.0f", fontsize=7, padding=1)
        ax_bars.set_xticks(range(len(labels)), labels)
        ax_bars.set_ylim(0, 122)  # headroom for the legend above 100%
        ax_bars.set_yticks(range(0, 101, 20))
        ax_bars.set_xlabel("entity type")
        ax_bars.set_ylabel("score (%)")
        ax_bars.set_title(f"conlleval per type (micro F1 {100 * scores['f1']:.2f})")
        ax_bars.legend(loc="upper center", ncol=3, frameon=False)

        matrix = np.array([[confusion[row][col] for col in cols] for row in rows], dtype=int)
        if matrix.size == 0:
            matrix = np.zeros((1, 1), dtype=int)
        peak = int(matrix.max())
        # Log colours: on real data the diagonal is 100x the errors, which would vanish on
        # a linear scale; empty cells stay white, every count is written in its cell.
        image = ax_conf.imshow(
            np.ma.masked_equal(matrix, 0), cmap="Blues", norm=LogNorm(vmin=0.5, vmax=max(peak, 2))
        )
        for r, values in enumerate(matrix):
            for c, value in enumerate(values):
                color = "white" if value > 1 and value >= peak**0.75 else "black"
                ax_conf.text(c, r, str(value), ha="center", va="center", color=color)
        ax_conf.set_xticks(range(len(cols)), cols, rotation=45, ha="right")
        ax_conf.set_yticks(range(len(rows)), rows)
        ax_conf.set_xlabel("predicted type")
        ax_conf.set_ylabel("gold type")
        ax_conf.set_title("entity spans: gold vs predicted")
        bar = fig.colorbar(image, ax=ax_conf, fraction=0.046, pad=0.04)
        bar.set_label("spans (log colour scale)")
        bar.minorticks_off()
    return path


def _units(doc: Doc) -> list[Span]:
    """Sentences when the doc has sentence boundaries, else the whole doc as one span."""
    if doc.has_annotation("SENT_START"):
        return list(doc.sents)
    return [doc[:]]


def _manual_ents(doc: Doc, start: int, end: int) -> list[dict[str, Any]]:
    """displaCy's manual entities of `doc` in tokens [start, end), char offsets relative to
    `start` and clipped to the range (a prediction may run across a gold sentence boundary)."""
    base = doc[start].idx
    ents = []
    for ent in doc.ents:
        if ent.end <= start or ent.start >= end:
            continue
        span = doc[max(ent.start, start) : min(ent.end, end)]
        ents.append(
            {"start": span.start_char - base, "end": span.end_char - base, "label": ent.label_}
        )
    return ents


def write_error_page(
    gold_docs: Sequence[Doc],
    pred_docs: Sequence[Doc],
    path: Path | str,
    max_examples: int = 50,
) -> Path:
    """Write a displaCy page of the first `max_examples` sentences whose entities differ.

    Sentences come from the gold docs' sentence starts (whole docs when they have none); each
    is rendered twice, titled "gold ..." then "predicted ...", with doc and sentence numbers.
    """
    _check_pairs(gold_docs, pred_docs)
    parsed: list[dict[str, Any]] = []
    n_examples = 0
    for doc_i, (gold, pred) in enumerate(zip(gold_docs, pred_docs, strict=True)):
        for sent_i, sent in enumerate(_units(gold)):
            if n_examples >= max_examples:
                break
            if len(sent) == 0:
                continue
            gold_ents = _manual_ents(gold, sent.start, sent.end)
            pred_ents = _manual_ents(pred, sent.start, sent.end)
            if gold_ents == pred_ents:
                continue
            n_examples += 1
            where = f"doc {doc_i}, sentence {sent_i}"
            parsed.append({"text": sent.text, "ents": gold_ents, "title": f"gold ({where})"})
            pred_text = pred[sent.start : sent.end].text
            parsed.append({"text": pred_text, "ents": pred_ents, "title": f"predicted ({where})"})
    if not parsed:
        text = "Gold and predicted entities agree everywhere."
        parsed.append({"text": text, "ents": [], "title": "no gold/predicted differences"})
    html = displacy.render(
        parsed, style="ent", page=True, manual=True, jupyter=False, options=DISPLACY_OPTIONS
    )
    path = Path(path)
    with atomic_path(path) as tmp_path:
        tmp_path.write_text(html, encoding="utf8")
    return path


def unannotated_copy(nlp: spacy.Language, gold: Doc) -> Doc:
    """The gold doc's tokens (and sentence starts, if any) without any entities."""
    sent_starts: list[bool | int | None] | None = (
        [bool(token.is_sent_start) for token in gold] if gold.has_annotation("SENT_START") else None
    )
    return Doc(
        nlp.vocab,
        words=[token.text for token in gold],
        spaces=[bool(token.whitespace_) for token in gold],
        sent_starts=sent_starts,
    )


def predict_on_gold(nlp: spacy.Language, gold_docs: Sequence[Doc]) -> list[Doc]:
    """The pipeline's predictions on copies of the gold docs' own tokens, in order."""
    inputs = (unannotated_copy(nlp, gold) for gold in gold_docs)
    return list(tqdm(nlp.pipe(inputs), total=len(gold_docs), unit="doc", desc="predicting"))


def evaluate_pipeline(
    model: str,
    data_path: Path,
    output: Path | None = None,
    plot: Path | None = None,
    errors_html: Path | None = None,
    gpu_id: int = -1,
) -> dict[str, Any]:
    """Predict with pipeline `model` on the gold docs in `data_path` and score the entities.

    Prediction runs on copies of the gold tokens without entities, so scores are never
    affected by spaCy's tokenizer. Returns `score_docs`'s dict plus "words_per_second",
    "confusion" (see `entity_confusion`), "model" and "data_path"; prints the tables and
    writes the JSON (`output`), PNG (`plot`) and displaCy page (`errors_html`) when given.
    """
    from .conll import load_gold_docs

    data_path = Path(data_path)
    if not data_path.exists():
        raise BertNERError(f"gold data not found: {data_path}")
    for target in (output, plot, errors_html):
        # Caught before predicting, which may take minutes; other write failures come after.
        if target is not None and Path(target).is_dir():
            raise BertNERError(f"{target}: is a directory; give a file name to write")
    nlp = load_pipeline(model, gpu_id)
    gold_docs = load_gold_docs(data_path, nlp.vocab)
    if not gold_docs:
        raise BertNERError(f"{data_path}: no documents to evaluate on")

    n_tokens = sum(len(doc) for doc in gold_docs)
    start = time.perf_counter()
    pred_docs = predict_on_gold(nlp, gold_docs)
    seconds = time.perf_counter() - start

    metrics = score_docs(gold_docs, pred_docs)
    metrics["words_per_second"] = n_tokens / seconds if seconds > 0 else 0.0
    confusion = entity_confusion(gold_docs, pred_docs)
    metrics["confusion"] = confusion
    metrics["model"] = str(model)
    metrics["data_path"] = str(data_path)
    print_report(metrics)
    if output is not None:
        output = Path(output)
        with atomic_path(output) as tmp_path:
            srsly.write_json(tmp_path, metrics)
        msg.good(f"Metrics written to {output}")
    if plot is not None:
        msg.good(f"Plot written to {plot_metrics(metrics, confusion, plot)}")
    if errors_html is not None:
        msg.good(f"Error page written to {write_error_page(gold_docs, pred_docs, errors_html)}")
    return metrics
