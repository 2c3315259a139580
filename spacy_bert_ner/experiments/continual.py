"""The continual-learning experiment: teach a trained pipeline a new entity type from a small
set annotated with that type alone, three ways, and measure what each forgets.

Starting from the same trained pipeline (the "base" model, which never saw the new type):

- naive: fine-tune on the new set, where every entity of the old types is O;
- rehearsal: the same, plus `BertNER.rehearse` on the old training text at every step;
- rehearsal+pseudo: rehearsal, on the new set completed with the base model's own
  predictions of the old types (gold spans win where they overlap).

Every variant runs the loop `spacy train` runs (the rehearsal gradients are accumulated
before each update, one optimizer step applies both) with the base pipeline's own recipe
(its config's optimizer and dropout, the schedule fitted to the run: `recipe`), the same
batches and seed, and is scored on the test set: F1 over the old types with the new type
removed from gold and predictions, and F1 of the new type. Training seconds are wall-clock
time of the update loop; pseudo-labelling is timed apart.
"""

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import spacy
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed
from wasabi import msg

from ..conll import load_gold_docs
from ..errors import BertNERError
from ..evaluation.plots import png_figure
from ..evaluation.scores import score_docs
from ..io import write_json
from ..pipeline.loading import load_pipeline, single_bert_ner_pipe
from ..pipeline.predict import predict_on_gold, unannotated_copy
from ..training.callbacks import make_rehearsal
from ..training.readers import create_sentence_runs_reader
from .continual_data import drop_types, merge_pseudo_labels
from .recipe import Recipe, shuffled_batches


@dataclass(frozen=True)
class Variant:
    name: str
    rehearse: bool
    pseudo_labels: bool


VARIANTS = (
    Variant("naive", rehearse=False, pseudo_labels=False),
    Variant("rehearsal", rehearse=True, pseudo_labels=False),
    Variant("rehearsal+pseudo", rehearse=True, pseudo_labels=True),
)


@dataclass(frozen=True)
class ContinualSettings:
    """How each variant continues training; the optimizer and dropout are the base pipeline's
    config's (`recipe`), `learn_rate` replaces its peak rate when given."""

    new_type: str = "MISC"
    epochs: int = 3
    words_per_batch: int = 464
    learn_rate: float | None = None
    rehearsal_max_words: int = 100
    seed: int = 0


def run_continual_experiment(
    base_model: Path,
    new_train: Path,
    rehearsal_corpus: Path,
    test: Path,
    settings: ContinualSettings,
    *,
    output: Path | None = None,
    plot: Path | None = None,
) -> dict[str, Any]:
    """Score the base model and the three variants on `test`; write the JSON and PNG.

    base_model: a pipeline with a trained `bert_ner` that does not predict the new type.
    new_train: .spacy docs annotated with the new type only.
    rehearsal_corpus: .spacy docs whose texts the rehearsal runs on (their annotations are
        not used), read as runs of sentences like the training corpus.
    """
    base = load_pipeline(str(base_model))
    name, base_pipe = single_bert_ner_pipe(base, base_model)
    old_types = list(base_pipe.labels)
    if settings.new_type in old_types:
        raise BertNERError(f"{base_model} already predicts {settings.new_type}")
    test_docs = load_gold_docs(test, base.vocab)
    new_docs = load_gold_docs(new_train, base.vocab)
    rehearsal_examples = list(
        create_sentence_runs_reader(rehearsal_corpus, max_words=settings.rehearsal_max_words)(base)
    )
    if not (test_docs and new_docs and rehearsal_examples):
        raise BertNERError("the test set, the new set and the rehearsal corpus must hold docs")

    results: dict[str, Any] = {
        "base": score_continual(test_docs, predict_on_gold(base, test_docs), settings.new_type)
    }
    start = time.perf_counter()
    pseudo_docs = merge_pseudo_labels(new_docs, predict_on_gold(base, new_docs))
    pseudo_seconds = time.perf_counter() - start

    for variant in VARIANTS:
        msg.divider(f"continual: {variant.name}")
        nlp = spacy.load(base_model, vocab=base.vocab)
        gold = pseudo_docs if variant.pseudo_labels else new_docs
        examples = [Example(unannotated_copy(nlp, doc), doc) for doc in gold]
        seconds, steps, losses = continue_training(
            nlp, examples, rehearsal_examples if variant.rehearse else None, settings
        )
        result = score_continual(test_docs, predict_on_gold(nlp, test_docs), settings.new_type)
        result.update(train_seconds=seconds, steps=steps, loss=losses.get(name, 0.0))
        if variant.pseudo_labels:
            result["pseudo_label_seconds"] = pseudo_seconds
        results[variant.name] = result

    metrics = {
        "settings": asdict(settings),
        "recipe": asdict(Recipe.of(base.config)),
        "old_types": old_types,
        "base_model": str(base_model),
        "n_new_docs": len(new_docs),
        "n_new_entities": sum(len(doc.ents) for doc in new_docs),
        "n_rehearsal_examples": len(rehearsal_examples),
        "models": results,
    }
    _print_table(metrics)
    if output is not None:
        write_json(output, metrics)
        msg.good(f"Metrics written to {output}")
    if plot is not None:
        msg.good(f"Plot written to {plot_continual(metrics, plot)}")
    return metrics


def continue_training(
    nlp: Language,
    examples: list[Example],
    rehearsal_examples: list[Example] | None,
    settings: ContinualSettings,
) -> tuple[float, int, dict[str, float]]:
    """Teach `nlp`'s bert_ner the new type from `examples`, rehearsing when given texts.

    Returns the seconds the update loop took, its number of steps and the summed losses.
    """
    name, pipe = single_bert_ner_pipe(nlp, "continual")
    recipe = Recipe.of(nlp.config)
    batches = shuffled_batches(examples, settings.epochs, settings.words_per_batch, settings.seed)
    optimizer = recipe.optimizer_for(len(batches), settings.learn_rate)
    rehearse = None
    if rehearsal_examples is not None:
        # The rehearsal copy must be taken before the head grows: it is the old model.
        nlp.resume_training(sgd=optimizer)
        rehearse = make_rehearsal(
            lambda _: rehearsal_examples,
            components=(name,),
            words_per_step=settings.words_per_batch,
            seed=settings.seed,
        )
    pipe.add_label(settings.new_type)
    fix_random_seed(settings.seed)
    losses: dict[str, float] = {}
    start = time.perf_counter()
    for step, batch in enumerate(batches):
        if rehearse is not None:
            rehearse(nlp, {"step": step})
        nlp.update(batch, sgd=optimizer, drop=recipe.dropout, losses=losses)
        optimizer.step_schedules()
    return time.perf_counter() - start, len(batches), losses


def score_continual(
    gold_docs: Sequence[Doc], pred_docs: Sequence[Doc], new_type: str
) -> dict[str, Any]:
    """conlleval F1: over the old types (new type removed from both sides), per old type,
    and of the new type; plus micro F1 over all types."""
    full = score_docs(gold_docs, pred_docs)["conlleval"]
    old = score_docs(drop_types(gold_docs, [new_type]), drop_types(pred_docs, [new_type]))
    old_scores = old["conlleval"]
    new_row = full["per_type"].get(new_type, {"precision": 0.0, "recall": 0.0, "f1": 0.0})
    return {
        "old_f1": old_scores["f1"],
        "old_per_type": {label: row["f1"] for label, row in old_scores["per_type"].items()},
        "new_precision": new_row["precision"],
        "new_recall": new_row["recall"],
        "new_f1": new_row["f1"],
        "all_f1": full["f1"],
    }


def _print_table(metrics: dict[str, Any]) -> None:
    new_type = metrics["settings"]["new_type"]
    old_types = metrics["old_types"]
    header = ("model", *old_types, "old", new_type, "all", "seconds")
    rows = []
    for name, result in metrics["models"].items():
        f1s = [result["old_per_type"].get(t, 0.0) for t in old_types]
        f1s += [result["old_f1"], result["new_f1"], result["all_f1"]]
        seconds = result.get("train_seconds", 0.0) + result.get("pseudo_label_seconds", 0.0)
        rows.append((name, *(f"{100 * f:.2f}" for f in f1s), f"{seconds:.0f}" if seconds else "-"))
    msg.divider(f"conlleval F1 on the test set: old types and {new_type}")
    msg.table(rows, header=header, aligns=("l", *["r"] * (len(header) - 1)), divider=True)


def plot_continual(metrics: dict[str, Any], path: Path) -> Path:
    """A PNG of F1 per old type, over the old types and of the new type, per model."""
    new_type = metrics["settings"]["new_type"]
    groups = [*metrics["old_types"], "old types", new_type]
    models = metrics["models"]
    width = 0.8 / len(models)
    with png_figure(path, figsize=(2 + 1.6 * len(groups), 4.8)) as (_, ax):
        for i, (name, result) in enumerate(models.items()):
            values = [result["old_per_type"].get(t, 0.0) for t in metrics["old_types"]]
            values += [result["old_f1"], result["new_f1"]]
            seconds = result.get("train_seconds", 0.0) + result.get("pseudo_label_seconds", 0.0)
            label = f"{name} ({seconds:.0f} s)" if seconds else name
            xs = [x + (i - (len(models) - 1) / 2) * width for x in range(len(groups))]
            bars = ax.bar(xs, [100 * v for v in values], width, label=label)
            ax.bar_label(bars, fmt="%.1f", fontsize=6, padding=1, rotation=90)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_ylim(0, 125)
        ax.set_yticks(range(0, 101, 20))
        ax.set_ylabel("test F1 (%, conlleval)")
        ax.set_title(f"Teaching {new_type} to a trained model: what is kept, what is learnt")
        ax.legend(loc="upper center", ncol=2, frameon=False, fontsize=8)
    return path
