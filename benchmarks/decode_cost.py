"""What span probabilities cost: pipeline words/s with the entity scores of today's decoding
(constrained Viterbi, then the mean probability of each entity's tags) against the same with
the forward-backward posteriors `bert_ner` now gives (`spacy_bert_ner.posteriors`).

The forward pass is shared and timed once; each decoding is timed over the same logits, so the
ratio is (forward + mean-score decoding) / (forward + posterior decoding), the words/s share
that the pipeline keeps. Medians of `--runs` runs after a warm-up; the machine and the load
average before and after are printed.

    python -m benchmarks.decode_cost [-n 1500] [--model PIPELINE_OR_HF_DIR]
"""

import argparse
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import spacy
from spacy.tokens import Doc, Span

from spacy_bert_ner.pipeline.bert_ner import BertNER
from spacy_bert_ner.pipeline.loading import single_bert_ner_pipe
from spacy_bert_ner.pipeline.losses import log_softmax

from .inputs import bert_ner_pipeline, conll_file, read_sentences
from .machine import describe
from .measure import median_seconds
from .tables import print_table, ratio

Decoding = Callable[[BertNER, list[Doc], list], float]


def mean_score_decoding(pipe: BertNER, docs: list[Doc], scores: list) -> float:
    """The decoding before span posteriors, step for step: per doc, Viterbi, then the mean
    probability of each entity's tags, and its `Span`."""
    start = time.perf_counter()
    scheme = pipe.tag_scheme
    for doc, doc_scores in zip(docs, scores, strict=True):
        log_probs = log_softmax(pipe.model.ops.to_numpy(doc_scores), np)
        starts = doc.to_array("SENT_START") == 1 if doc.has_annotation("SENT_START") else None
        entities = scheme.entities(scheme.decode(log_probs, starts), np.exp(log_probs), starts)
        [(Span(doc, s, e, label=label), score) for s, e, label, score in entities]
    return time.perf_counter() - start


def posterior_decoding(pipe: BertNER, docs: list[Doc], scores: list) -> float:
    start = time.perf_counter()
    pipe.decode(docs, scores)
    return time.perf_counter() - start


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=1500, help="CoNLL-2003 test sentences")
    parser.add_argument("--model", help="spaCy pipeline or HF classifier (default: random MiniLM)")
    parser.add_argument("--batch", type=int, default=256, help="Docs per predict/decode call")
    parser.add_argument("--runs", type=int, default=3, help="Timed runs (median)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(describe())
    print(f"load before: {os.getloadavg()[0]:.2f}")
    sents = read_sentences(conll_file("eng.testb"), args.n)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline, _, kind = bert_ner_pipeline(args.model, Path(tmp))
        nlp = spacy.load(pipeline)
    _, pipe = single_bert_ner_pipe(nlp, pipeline)
    docs = [Doc(nlp.vocab, words=words) for words in sents.words]
    batches = [docs[i : i + args.batch] for i in range(0, len(docs), args.batch)]
    scores: list[list] = []

    def forward() -> float:
        start = time.perf_counter()
        scores[:] = [pipe.predict(batch) for batch in batches]
        return time.perf_counter() - start

    forward_s = median_seconds(forward, args.runs)
    rows = []
    for name, decoding in (("mean tag probability", mean_score_decoding),
                           ("span posterior", posterior_decoding)):  # fmt: skip

        def decode_all(decoding: Decoding = decoding) -> float:
            pairs = zip(batches, scores, strict=True)
            return sum(decoding(pipe, batch, batch_scores) for batch, batch_scores in pairs)

        seconds = median_seconds(decode_all, args.runs)
        rows.append((name, seconds, sents.n_words / (forward_s + seconds)))
    base = rows[0][2]
    print(f"{len(docs)} sentences, {sents.n_words} words, model: {kind}; forward {forward_s:.2f} s")
    print_table(
        ["entity score", "decode s", "pipeline words/s", "vs mean"],
        [(name, f"{s:.3f}", f"{wps:.0f}", ratio(wps, base)) for name, s, wps in rows],
    )
    print(f"load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
