"""One shared transformer pass against one encoder per task, and a frozen transformer against
full fine-tuning: words/s measured side by side in one process.

Inference: the same CoNLL-2003 test sentences, the same `nlp.pipe` batch and torch threads,
through (a) configs/cpu_multitask.cfg (transformer + tagger + bert_ner listening) and (b) the
same two tasks as two pipelines with an encoder each: standalone bert_ner (configs/cpu.cfg)
plus transformer + tagger. Training: `nlp.update` words/s of cpu_multitask.cfg on the same
batches of train sentences, with every component learning and with the transformer frozen and
annotating (what configs/cpu_frozen_transformer.cfg does under `spacy train`).

Every pipeline is built from its config on the embedded MiniLM and initialized on a slice of
train; speed does not depend on what the heads have learnt. Each figure is the median of
`--runs` timed passes after a warm-up pass.

    python -m benchmarks.shared_encoder
    python -m benchmarks.shared_encoder --sentences 500 --runs 1     # a quick look
"""

import argparse
import os
import time
from collections.abc import Sequence
from functools import partial
from pathlib import Path

import torch
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_config, load_model_from_config
from thinc.api import fix_random_seed

from .inputs import config_file, conll_file, gold_docs
from .machine import describe
from .measure import median_seconds
from .tables import print_table, ratio


def sentence_docs(path: Path, limit: int) -> list[Doc]:
    """Gold sentences (entities and POS tags) of a CoNLL file, in file order."""
    return [sent.as_doc() for doc in gold_docs(path) for sent in doc.sents][:limit]


def build(config_name: str, gold: Sequence[Doc], **overrides: object) -> Language:
    config = load_config(config_file(config_name), overrides=dict(overrides))
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in g]), g) for g in gold]
    nlp.initialize(lambda: examples)
    return nlp


def pipe_seconds(nlps: Sequence[Language], words: Sequence[list[str]], batch: int) -> float:
    """Seconds every pipeline spends in `nlp.pipe` over fresh docs of `words` (the docs are
    made before the clock starts)."""
    seconds = 0.0
    for nlp in nlps:
        docs = [Doc(nlp.vocab, words=w) for w in words]
        start = time.perf_counter()
        for _ in nlp.pipe(docs, batch_size=batch):
            pass
        seconds += time.perf_counter() - start
    return seconds


def inference_table(train: list[Doc], test: list[Doc], args: argparse.Namespace) -> None:
    words = [[t.text for t in doc] for doc in test]
    n_words = sum(map(len, words))
    shared = build("cpu_multitask.cfg", train)
    ner = build("cpu.cfg", train)
    tagger = build("cpu_multitask.cfg", train, **{"nlp.pipeline": ["transformer", "tagger"]})
    systems = {
        "shared: transformer + tagger + bert_ner (listening)": [shared],
        "two encoders: bert_ner (cpu.cfg) + transformer/tagger": [ner, tagger],
        "  of which bert_ner (cpu.cfg) alone": [ner],
        "  of which transformer + tagger alone": [tagger],
    }
    rates = {
        name: n_words / median_seconds(partial(pipe_seconds, nlps, words, args.batch), args.runs)
        for name, nlps in systems.items()
    }
    two = rates["two encoders: bert_ner (cpu.cfg) + transformer/tagger"]
    print(f"\nInference: {len(words)} CoNLL-2003 test sentences ({n_words} words), nlp.pipe batch")
    print(f"{args.batch}, median of {args.runs} runs; target: shared >= 1.7x two encoders\n")
    rows = [[name, f"{rate:,.0f}", ratio(rate, two)] for name, rate in rates.items()]
    print_table(["system", "words/s", "x two encoders"], rows)


def training_table(train: list[Doc], args: argparse.Namespace) -> None:
    nlp = build("cpu_multitask.cfg", train)
    optimizer = nlp.create_optimizer()
    batches = [train[i : i + args.train_batch] for i in range(0, len(train), args.train_batch)]
    n_words = sum(len(doc) for doc in train)

    def epoch_seconds(frozen: bool) -> float:
        start = time.perf_counter()
        for batch in batches:
            examples = [Example(Doc(nlp.vocab, words=[t.text for t in g]), g) for g in batch]
            if frozen:
                nlp.update(
                    examples,
                    sgd=optimizer,
                    exclude=["transformer", "tagger"],
                    annotates=["transformer"],
                )
            else:
                nlp.update(examples, sgd=optimizer)
        return time.perf_counter() - start

    full = n_words / median_seconds(lambda: epoch_seconds(frozen=False), args.runs)
    frozen = n_words / median_seconds(lambda: epoch_seconds(frozen=True), args.runs)
    print(f"\nTraining: {len(train)} train sentences ({n_words} words) in batches of")
    print(f"{args.train_batch}, cpu_multitask.cfg, median of {args.runs} passes\n")
    rows = [
        ["full: transformer, tagger and bert_ner learn", f"{full:,.0f}", "1.00"],
        ["frozen transformer (annotating), bert_ner head only", f"{frozen:,.0f}"]
        + [ratio(frozen, full)],
    ]
    print_table(["training", "words/s", "x full"], rows)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=conll_file("eng.train").parent,
        help="directory of eng.train/eng.testb (%(default)s, from $SPACY_BERT_NER_DATA)",
    )
    parser.add_argument("--sentences", type=int, default=1500, help="test sentences to pipe")
    parser.add_argument("--train-sentences", type=int, default=320)
    parser.add_argument("--batch", type=int, default=256, help="nlp.pipe batch size")
    parser.add_argument("--train-batch", type=int, default=32, help="sentences per update")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--skip-training", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    fix_random_seed(0)
    print(describe(), flush=True)
    train = sentence_docs(args.data / "eng.train", args.train_sentences)
    test = sentence_docs(args.data / "eng.testb", args.sentences)
    inference_table(train, test, args)
    if not args.skip_training:
        training_table(train, args)


if __name__ == "__main__":
    main()
