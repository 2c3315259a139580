"""`python -m spacy_bert_ner evaluate`: predict on gold docs, score, report, write files.

Prediction runs on the gold docs' own tokens (CoNLL tokenization, not spaCy's) so gold and
predicted tags line up one to one; then the tables are printed and, on request, the metrics
JSON, a PNG and a displaCy page of the sentences the model got wrong are written.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from spacy.language import Language
from wasabi import msg

from ..conll import load_gold_docs
from ..errors import BertNERError
from ..io import write_json
from ..pipeline.loading import load_pipeline
from ..pipeline.mentions import TrainingMentions
from ..pipeline.predict import predict_on_gold
from .errors_page import write_error_page
from .generalisation import print_seen_unseen, seen_unseen_scores
from .plots import plot_metrics
from .scores import entity_confusion, print_report, score_docs


def evaluate_pipeline(
    model: str,
    data_path: Path,
    output: Path | None = None,
    plot: Path | None = None,
    errors_html: Path | None = None,
    gpu_id: int = -1,
    train: Path | None = None,
) -> dict[str, Any]:
    """Predict with pipeline `model` on the gold docs in `data_path` and score the entities.

    Prediction runs on copies of the gold tokens without entities, so scores are never
    affected by spaCy's tokenizer. Returns `score_docs`'s dict plus "words_per_second",
    "confusion" (see `entity_confusion`), "model" and "data_path"; prints the tables and
    writes the JSON (`output`), PNG (`plot`) and displaCy page (`errors_html`) when given.
    With `train`, the corpus the model was trained on (.spacy or CoNLL), "generalisation"
    holds the scores of the entities seen and unseen in it (`generalisation`).
    """
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
    mentions = None if train is None else training_mentions(Path(train), nlp)

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
    if mentions is not None:
        metrics["generalisation"] = seen_unseen_scores(gold_docs, pred_docs, mentions)
        metrics["generalisation"]["train_path"] = str(train)
        print_seen_unseen(metrics["generalisation"], train)
    if output is not None:
        output = Path(output)
        write_json(output, metrics)
        msg.good(f"Metrics written to {output}")
    if plot is not None:
        msg.good(f"Plot written to {plot_metrics(metrics, confusion, plot)}")
    if errors_html is not None:
        msg.good(f"Error page written to {write_error_page(gold_docs, pred_docs, errors_html)}")
    return metrics


def training_mentions(train: Path, nlp: Language) -> TrainingMentions:
    """The (text, label) mentions of the gold entities of the training corpus `train`."""
    if not train.exists():
        raise BertNERError(f"--train: training corpus not found: {train}")
    mentions = TrainingMentions.from_docs(load_gold_docs(train, nlp.vocab))
    if not mentions:
        raise BertNERError(f"--train: {train} holds no entities; give the training corpus")
    return mentions
