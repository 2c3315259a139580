"""Training speed: words/s of `bert_ner` updates vs a plain transformers/torch loop.

Both sides fine-tune the same encoder (the embedded MiniLM by default) on the same
CoNLL-2003 training words, in one process, with the same threads and about the same batch:
- plain: sentences, first-wordpiece labels, `AutoModelForTokenClassification`, torch AdamW,
  batches of `--batch-sentences` sentences padded to their longest (the usual HF recipe);
- bert_ner: whole documents cut into windows, the optimizer and batcher that
  `configs/cpu.cfg` gives `spacy train` (thinc Adam, batch_by_words), via `nlp.update`, which
  is exactly the step `spacy train` runs between its evaluations.
Dev evaluation is excluded from both. Prints words/s and the ratio.

    python -m benchmarks.train_speed [--steps 40] [--conll PATH/eng.train]
"""

import argparse
import time
from collections.abc import Sequence
from pathlib import Path

import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import load_config, registry
from transformers import AutoModelForTokenClassification, AutoTokenizer

from spacy_bert_ner.models.architectures import minilm_name

from .inputs import CONLL_TAGS, config_file, conll_file, gold_docs, read_sentences
from .machine import describe
from .tables import print_table, ratio


def plain_loop(sentences: list[tuple[list[str], list[str]]], name: str, batch: int, steps: int):
    """The reference: what a transformers user writes by hand. Returns (words, seconds)."""
    tokenizer = AutoTokenizer.from_pretrained(name)
    model = AutoModelForTokenClassification.from_pretrained(
        name, num_labels=len(CONLL_TAGS), id2label=dict(enumerate(CONLL_TAGS))
    )
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
    tag_id = {t: i for i, t in enumerate(CONLL_TAGS)}

    def step(chunk: list[tuple[list[str], list[str]]]) -> int:
        words = [w for w, _ in chunk]
        enc = tokenizer(words, is_split_into_words=True, padding=True, return_tensors="pt")
        labels = torch.full(enc["input_ids"].shape, -100)
        for i, (_, tags) in enumerate(chunk):
            seen = set()
            for j, word in enumerate(enc.word_ids(i)):
                if word is not None and word not in seen:
                    seen.add(word)
                    labels[i, j] = tag_id[tags[word]]
        loss = model(**enc, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        return sum(len(w) for w in words)

    chunks = [sentences[i : i + batch] for i in range(0, len(sentences), batch)]
    for chunk in chunks[:2]:  # warm-up
        step(chunk)
    start, n_words = time.perf_counter(), 0
    for chunk in chunks[2 : 2 + steps]:
        n_words += step(chunk)
    return n_words, time.perf_counter() - start


def bert_ner_loop(docs, name: str, steps: int, words_per_batch: int):
    """`spacy train`'s update step with the optimizer and batcher of configs/cpu.cfg."""
    config = load_config(config_file("cpu.cfg"))
    config["components"]["bert_ner"]["model"]["name"] = name
    config["training"]["batcher"]["size"]["rate"] = words_per_batch
    nlp = spacy.blank("en", vocab=docs[0].vocab)  # the gold docs' labels live in that vocab
    nlp.add_pipe("bert_ner", config={"model": config["components"]["bert_ner"]["model"]})
    training = registry.resolve(config["training"])
    optimizer, batcher = training["optimizer"], training["batcher"]
    # Gold docs are CoNLL-tokenized; predicted docs share their tokens, as in spacy train.
    examples = [Example(Doc(nlp.vocab, words=[t.text for t in d]), d) for d in docs]
    nlp.initialize(lambda: examples, sgd=optimizer)
    batches = list(batcher(examples))
    for batch in batches[:2]:
        nlp.update(batch, sgd=optimizer)
    start, n_words = time.perf_counter(), 0
    for batch in batches[2 : 2 + steps]:
        nlp.update(batch, sgd=optimizer)
        n_words += sum(len(eg.reference) for eg in batch)
    return n_words, time.perf_counter() - start


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--conll",
        type=Path,
        default=conll_file("eng.train"),
        help="CoNLL training file (%(default)s, from $SPACY_BERT_NER_DATA)",
    )
    parser.add_argument("--model", default=None, help="encoder (default: embedded MiniLM)")
    parser.add_argument("--steps", type=int, default=40, help="timed steps per system")
    parser.add_argument("--batch-sentences", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--workers",
        default=None,
        help="compare data-parallel worker counts instead, e.g. 1,2 (see train_parallel.py)",
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds per worker count")
    args = parser.parse_args(argv)
    if args.workers:
        parallel_speed(args)
        return
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(describe(), flush=True)
    name = args.model or minilm_name()

    sents = read_sentences(args.conll)
    words_per_batch = round(sents.n_words / len(sents.words) * args.batch_sentences)
    plain = list(zip(sents.words, sents.tags, strict=True))
    plain_words, plain_s = plain_loop(plain, name, args.batch_sentences, args.steps)
    ours_words, ours_s = bert_ner_loop(gold_docs(args.conll), name, args.steps, words_per_batch)
    plain_wps, ours_wps = plain_words / plain_s, ours_words / ours_s
    print(
        f"\nencoder {name}; {args.threads} threads; batch {args.batch_sentences} sentences"
        f" (~{words_per_batch} words); {args.steps} timed steps each\n"
    )
    print_table(
        ["system", "words", "seconds", "words/s", "ratio"],
        [
            ["plain transformers loop (sentences, AdamW)", plain_words, f"{plain_s:.1f}"]
            + [f"{plain_wps:.0f}", "1.00"],
            ["bert_ner under spacy train (documents)", ours_words, f"{ours_s:.1f}"]
            + [f"{ours_wps:.0f}", ratio(ours_wps, plain_wps)],
        ],
    )


def parallel_speed(args: argparse.Namespace) -> None:
    """`--workers 1,2`: words/s of the same global batch on 1 and on N workers."""
    import subprocess

    from .train_parallel import run

    counts = [int(n) for n in args.workers.split(",")]
    print(describe(threads="per worker: cores / workers"), flush=True)
    print("load before:", subprocess.run(["uptime"], capture_output=True, text=True).stdout)
    name = args.model or minilm_name()
    rows = run(args.conll, name, counts, args.steps, args.batch_sentences, args.rounds)
    print(f"\nencoder {name}; global batch {args.batch_sentences} sentences; {args.steps} timed")
    print(f"steps per run; median of {args.rounds} rounds (interleaved)\n")
    print_table(["setup", "words/s per round", "median words/s", "ratio (median per round)"], rows)
    print("\nload after:", subprocess.run(["uptime"], capture_output=True, text=True).stdout)


if __name__ == "__main__":
    main()
