"""The active-learning experiment: does `select --strategy uncertainty` pick sentences that
teach the model more than random ones, with gold annotations standing in for the annotator?

The base model is either trained here, from the config's encoder on a random seed set of the
training corpus's sentences (`seed_sentences`; the rest is the pool), or a trained pipeline
given as `base_model` (adapting it to a new domain: the whole corpus is the pool, nothing is
labelled yet). Each chain (uncertainty and random, each with every seed of `random_seeds`)
then runs one round per entry of `sizes` from a copy of the base model: choose pool sentences
until the labelled set beyond the seed set holds that many (uncertainty: the most expected
entity errors, the measure `select` ranks by; random: a seeded sample), fine-tune
`round_epochs` passes on the new sentences plus as many labelled ones replayed at random (the
update a labelling loop can afford each round: retraining on everything would cost each
round more than the last), and score dev F1. Every chain of a seed trains with the same
recipe, batches and dropout, so the strategies differ only in which sentences they labelled.

The figure of merit: the labelled sentences (beyond the seed set) uncertainty needed, on its
mean curve over the seeds, to reach the dev F1 random reached after its last round (mean over
the seeds), read off by linear interpolation between rounds, as a share of random's.
"""

import random
import statistics
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
from ..labelling.select import expected_errors
from ..pipeline.loading import single_bert_ner_pipe
from ..pipeline.predict import predict_on_gold, scored_batches, unannotated_copy
from .recipe import Recipe, shuffled_batches

UNCERTAINTY = "uncertainty"


@dataclass(frozen=True)
class ActiveLearningSettings:
    """The simulation's sizes; the fine-tuning recipe is the config's (`recipe`: its optimizer
    and dropout, its schedule fitted to each run)."""

    seed_sentences: int = 1000  # 0 with a base model
    sizes: tuple[int, ...] = (250, 500, 750, 1000)  # labelled beyond the seed set, per round
    random_seeds: tuple[int, ...] = (0, 1, 2)  # the seeds of both strategies' chains
    pool_limit: int = 0  # sentences of the pool to choose from (0: all the others)
    dev_limit: int = 0  # dev documents to score on (0: all)
    base_epochs: int = 3
    round_epochs: int = 1
    words_per_batch: int = 464
    seed: int = 0

    def __post_init__(self) -> None:
        rises = zip((0, *self.sizes), self.sizes, strict=False)
        if not self.sizes or any(b <= a for a, b in rises):
            raise BertNERError(f"active learning: sizes must rise from above 0, got {self.sizes}")


def sentences_of(docs: Sequence[Doc]) -> list[Doc]:
    """Each sentence of `docs` as a doc of its own, with its gold entities (a doc without
    sentence boundaries is one sentence)."""
    out: list[Doc] = []
    for doc in docs:
        if doc.has_annotation("SENT_START"):
            out.extend(sent.as_doc() for sent in doc.sents)
        else:
            out.append(doc)
    return [sentence for sentence in out if len(sentence)]


def fine_tune(
    nlp: Language, gold: Sequence[Doc], epochs: int, settings: ActiveLearningSettings, seed: int
) -> float:
    """`epochs` passes over `gold` with the recipe of the config `nlp` was built from (the
    simulation's config); the seconds the update loop took."""
    recipe = Recipe.of(nlp.config)
    examples = [Example(unannotated_copy(nlp, doc), doc) for doc in gold]
    batches = shuffled_batches(examples, epochs, settings.words_per_batch, seed)
    optimizer = recipe.optimizer_for(len(batches))
    fix_random_seed(seed)
    start = time.perf_counter()
    for batch in batches:
        nlp.update(batch, sgd=optimizer, drop=recipe.dropout)
        optimizer.step_schedules()
    return time.perf_counter() - start


def most_uncertain(nlp: Language, pool: Sequence[Doc], n: int) -> list[int]:
    """Indices of the `n` pool sentences with the most expected entity errors (`select`'s
    measure), on the gold tokens, after the pipes before bert_ner (a listener's encoder)."""
    name, _ = single_bert_ner_pipe(nlp, "active learning")
    errors = [
        expected_errors(found)
        for batch in scored_batches(nlp, name, pool)
        for found in batch.decoded()
    ]
    return sorted(range(len(pool)), key=lambda i: -errors[i])[:n]


def dev_f1(nlp: Language, dev: Sequence[Doc]) -> float:
    return float(score_docs(dev, predict_on_gold(nlp, dev))["conlleval"]["f1"])


def run_chain(
    base_model: Path,
    strategy: str,
    seed: int,
    labelled: list[Doc],
    pool: list[Doc],
    dev: list[Doc],
    settings: ActiveLearningSettings,
) -> dict[str, Any]:
    """One strategy's rounds from the base model: labelled sentences added and dev F1 after
    each round (round 0: the base model)."""
    nlp = spacy.load(base_model)
    rng = random.Random(seed)
    labelled, pool = list(labelled), list(pool)
    added, f1s, seconds = [0], [dev_f1(nlp, dev)], 0.0
    for round_, size in enumerate(settings.sizes, start=1):
        n = min(size - added[-1], len(pool))
        if strategy == UNCERTAINTY:
            chosen = set(most_uncertain(nlp, pool, n))
        else:
            chosen = set(rng.sample(range(len(pool)), n))
        new = [doc for i, doc in enumerate(pool) if i in chosen]
        pool = [doc for i, doc in enumerate(pool) if i not in chosen]
        replay = rng.sample(labelled, min(len(new), len(labelled)))
        labelled += new
        seconds += fine_tune(nlp, new + replay, settings.round_epochs, settings, seed + round_)
        added.append(added[-1] + len(new))
        f1s.append(dev_f1(nlp, dev))
        msg.text(f"{strategy} (seed {seed}), round {round_}: +{added[-1]}, dev F1 {f1s[-1]:.4f}")
    return {"strategy": strategy, "seed": seed, "added": added, "dev_f1": f1s, "seconds": seconds}


def sentences_to_reach(added: Sequence[int], f1s: Sequence[float], target: float) -> float | None:
    """Labelled sentences at which the curve first reaches `target` (linear between rounds);
    None if it never does."""
    if f1s[0] >= target:
        return float(added[0])
    points = list(zip(added, f1s, strict=True))
    for (a0, f0), (a1, f1) in zip(points, points[1:], strict=False):
        if f1 >= target:
            return a0 + (a1 - a0) * (target - f0) / (f1 - f0)
    return None


def run_active_learning(
    source: Path,
    train: Path,
    dev: Path,
    work_dir: Path,
    settings: ActiveLearningSettings,
    *,
    output: Path | None = None,
    plot: Path | None = None,
    model_name: str | None = None,
) -> dict[str, Any]:
    """Train the base model (or take the pipeline `source` names), run every chain, compare;
    write the JSON and the PNG. `source` is a training config, or a trained pipeline's
    directory to adapt (then the fine-tuning recipe is its own config's)."""
    from_pipeline = source.is_dir()
    if from_pipeline and (settings.seed_sentences or model_name):
        raise BertNERError(
            f"{source}: a trained pipeline is the base model itself; the simulation takes no "
            "seed set (seed sentences 0) and no encoder name with it"
        )
    nlp = spacy.load(source) if from_pipeline else _untrained(source, model_name)
    sentences = sentences_of(load_gold_docs(train, nlp.vocab))
    dev_docs = load_gold_docs(dev, nlp.vocab)[: settings.dev_limit or None]
    needed = settings.seed_sentences + settings.sizes[-1]
    if len(sentences) < needed or not dev_docs:
        raise BertNERError(
            f"{train}: {len(sentences)} sentences, the simulation needs {needed} (seed set and "
            f"rounds); {dev}: {len(dev_docs)} documents"
        )
    random.Random(settings.seed).shuffle(sentences)
    seed_set = sentences[: settings.seed_sentences]
    pool = sentences[settings.seed_sentences :]
    pool = pool[: settings.pool_limit or None]
    work_dir.mkdir(parents=True, exist_ok=True)
    if from_pipeline:
        base_model, base_seconds = source, 0.0
    else:
        base_model, base_seconds = work_dir / "base", _train_base(nlp, seed_set, settings)
        nlp.to_disk(base_model)

    seeds = settings.random_seeds
    chains = [(UNCERTAINTY, s) for s in seeds] + [("random", s) for s in seeds]
    results = []
    for strategy, seed in chains:
        msg.divider(f"active learning: {strategy} (seed {seed})")
        results.append(run_chain(base_model, strategy, seed, seed_set, pool, dev_docs, settings))
    metrics = {
        "settings": asdict(settings),
        "source": str(source),
        "scored_on": str(dev),
        "recipe": asdict(Recipe.of(nlp.config)),
        "n_pool": len(pool),
        "n_dev_docs": len(dev_docs),
        "base_seconds": base_seconds,
        "chains": results,
        "summary": summarise(results),
    }
    _print_summary(metrics)
    if output is not None:
        write_json(output, metrics)
        msg.good(f"Metrics written to {output}")
    if plot is not None:
        msg.good(f"Plot written to {plot_active_learning(metrics, plot)}")
    return metrics


def _untrained(config_path: Path, model_name: str | None) -> Language:
    config = spacy.util.load_config(config_path)
    if model_name:
        config["components"]["bert_ner"]["model"]["name"] = model_name
    return spacy.util.load_model_from_config(config, auto_fill=True)


def _train_base(nlp: Language, seed_set: list[Doc], settings: ActiveLearningSettings) -> float:
    """Initialise `nlp` on the seed set and train it there; the seconds it took."""
    msg.divider(f"active learning: base model on {len(seed_set)} sentences")
    nlp.initialize(lambda: [Example(unannotated_copy(nlp, d), d) for d in seed_set])
    return fine_tune(nlp, seed_set, settings.base_epochs, settings, settings.seed)


def summarise(chains: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Each strategy's mean curve over its seeds, and the share of random's labelled
    sentences uncertainty needed, on its mean curve, to reach random's final mean dev F1
    (None if it never did)."""

    def mean_curve(strategy_chains: list[dict[str, Any]]) -> list[float]:
        curves = [c["dev_f1"] for c in strategy_chains]
        return [statistics.fmean(values) for values in zip(*curves, strict=True)]

    randoms = [c for c in chains if c["strategy"] != UNCERTAINTY]
    ours = mean_curve([c for c in chains if c["strategy"] == UNCERTAINTY])
    random_mean = mean_curve(randoms)
    random_added = randoms[0]["added"]
    reached = sentences_to_reach(random_added, ours, random_mean[-1])
    return {
        "uncertainty_mean_dev_f1": ours,
        "random_mean_dev_f1": random_mean,
        "random_final_dev_f1": random_mean[-1],
        "uncertainty_sentences_to_random_final": reached,
        "share_of_random": None if reached is None else reached / random_added[-1],
    }


def _print_summary(metrics: dict[str, Any]) -> None:
    chains = metrics["chains"]
    header = ("strategy", "seed", *(f"+{n}" for n in chains[0]["added"]), "seconds")
    rows = [
        (c["strategy"], c["seed"], *(f"{100 * f:.2f}" for f in c["dev_f1"]), f"{c['seconds']:.0f}")
        for c in chains
    ]
    summary = metrics["summary"]
    for strategy in (UNCERTAINTY, "random"):
        curve = summary[f"{strategy}_mean_dev_f1"]
        rows.append((strategy, "mean", *(f"{100 * f:.2f}" for f in curve), ""))
    msg.divider("dev F1 (conlleval) by labelled sentences added to the seed set")
    msg.table(rows, header=header, aligns=("l", "r", *["r"] * (len(header) - 2)), divider=True)
    share = summary["share_of_random"]
    final = 100 * summary["random_final_dev_f1"]
    if share is None:
        msg.warn(f"uncertainty did not reach random's final dev F1 ({final:.2f})")
    else:
        msg.info(
            f"uncertainty reached random's final dev F1 ({final:.2f}) with "
            f"{summary['uncertainty_sentences_to_random_final']:.0f} added sentences: "
            f"{share:.2f} of random's {chains[0]['added'][-1]}"
        )


def plot_active_learning(metrics: dict[str, Any], path: Path) -> Path:
    """A PNG of dev F1 against labelled sentences: each strategy's mean over its seeds, and
    each chain as a faint line of the same colour."""
    added = metrics["chains"][0]["added"]
    colours = {UNCERTAINTY: "tab:blue", "random": "tab:orange"}
    with png_figure(path, figsize=(6.4, 4.8)) as (_, ax):
        for chain in metrics["chains"]:
            f1s = [100 * f for f in chain["dev_f1"]]
            ax.plot(added, f1s, color=colours[chain["strategy"]], linewidth=0.8, alpha=0.35)
        for strategy, colour in colours.items():
            curve = [100 * f for f in metrics["summary"][f"{strategy}_mean_dev_f1"]]
            ax.plot(added, curve, color=colour, marker="o", linewidth=2, label=f"{strategy}, mean")
        seed_set = metrics["settings"]["seed_sentences"]
        beyond = f" beyond the {seed_set} seed" if seed_set else ""
        ax.set_xlabel(f"sentences labelled{beyond}")
        ax.set_ylabel(f"F1 on {Path(metrics['scored_on']).name} (%, conlleval)")
        ax.set_title("Active learning, gold as the annotator")
        ax.legend(frameon=False, fontsize=8)
    return path
