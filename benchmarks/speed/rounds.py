"""Timing the systems in interleaved rounds, and the speed table."""

import argparse
import statistics
import time
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..inputs import Sentences
from ..tables import print_table, ratio
from .systems import DESCRIPTIONS, SETUPS, SPACY_SYSTEMS, Runner


@dataclass
class Result:
    system: str
    pipe_batch: int | None = None  # None: not a spaCy system, no nlp.pipe batch
    runs: list[float] = field(default_factory=list)  # seconds of each timed run
    words: int = 0
    docs: list[Any] | None = field(default=None, repr=False)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.runs) if self.runs else None

    @property
    def words_per_s(self) -> float | None:
        return self.words / self.seconds if self.seconds else None


def _failed(result: Result, err: Exception, verbose: bool) -> None:
    """An optional system failing must not stop the others: say why and go on."""
    print(f"[{result.system}] FAILED: {type(err).__name__}: {err}", flush=True)
    if verbose:
        traceback.print_exc()
    result.error = f"{type(err).__name__}: {err}"


def run_systems(args: argparse.Namespace, model_dir: Path, sents: Sentences) -> list[Result]:
    """Set every system up, then time them round after round (--repeats), so that a noisy
    spell of the machine hits every system instead of one; a system's figure is its median."""
    runners: dict[str, Runner] = {}
    results: list[Result] = []
    for name in args.systems:
        pipe_batches = args.pipe_batches if name in SPACY_SYSTEMS else [None]
        ours = [Result(name, b, words=sents.n_words) for b in pipe_batches]
        results.extend(ours)
        print(f"[{name}] setting up", flush=True)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                runners[name] = SETUPS[name](args, model_dir)
                for pipe_batch in pipe_batches:
                    runners[name](sents.head(args.warmup), pipe_batch or args.batch_size)
        except Exception as err:
            for result in ours:
                _failed(result, err, args.verbose)
    for round_no in range(1, args.repeats + 1):
        for result in results:
            if result.error is not None:
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    start = time.perf_counter()
                    out = runners[result.system](sents, result.pipe_batch or args.batch_size)
                    result.runs.append(time.perf_counter() - start)
            except Exception as err:
                _failed(result, err, args.verbose)
                continue
            result.docs = out
            print(
                f"[{result.system} pipe {result.pipe_batch or '-'}] round {round_no}: "
                f"{result.runs[-1]:.2f} s",
                flush=True,
            )
    return results


def padding_summary(model_dir: Path, sents: Sentences, batch_size: int) -> str:
    """Wordpieces the forward passes compute: sorted batches vs batches in input order."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    backend = tokenizer.backend_tokenizer
    backend.no_padding()
    backend.no_truncation()
    encodings = backend.encode_batch(sents.words, is_pretokenized=True, add_special_tokens=True)
    n = [len(e.ids) for e in encodings]

    def padded(order: list[int]) -> int:
        return sum(
            max(n[i] for i in order[b : b + batch_size]) * len(order[b : b + batch_size])
            for b in range(0, len(order), batch_size)
        )

    real = sum(n)
    by_length = padded(sorted(range(len(n)), key=n.__getitem__))
    in_order = padded(list(range(len(n))))
    return (
        f"Wordpieces (with specials) {real}; padded to each batch's longest: length-sorted "
        f"batches (raw) {by_length} (x{by_length / real:.2f}), input-order batches of "
        f"{batch_size} (nlp.pipe, hf, rawseq) {in_order} (x{in_order / real:.2f})"
    )


def print_speed_table(results: list[Result], args: argparse.Namespace, sents: Sentences) -> None:
    def wps_of(system: str, pipe_batch: int | None = None) -> float | None:
        return next(
            (
                r.words_per_s
                for r in results
                if r.system == system and r.pipe_batch == pipe_batch and r.words_per_s
            ),
            None,
        )

    raw_wps, rawseq_wps = wps_of("raw"), wps_of("rawseq")
    print()
    print(
        f"Speed: {len(sents.words)} sentences, {sents.n_words} words, forward batches of "
        f"{args.batch_size}, {args.threads} threads, median of {args.repeats} runs"
    )
    print(
        "  x raw: words/s over the length-sorted raw forward pass; x rawseq: over the raw "
        "forward pass in input order; x fp32: over bert_ner torch fp32 at the same pipe batch"
    )
    rows = []
    for r in results:
        wps = r.words_per_s
        if r.error is not None or wps is None or r.seconds is None:
            figures: list[object] = [f"failed: {(r.error or '')[:60]}", *[None] * 5]
        else:
            fp32 = wps_of("fp32", r.pipe_batch) if r.pipe_batch is not None else None
            spread = f"{min(r.runs):.2f}-{max(r.runs):.2f}"
            figures = [f"{r.seconds:.2f}", spread, f"{wps:.0f}", ratio(wps, raw_wps)]
            figures += [ratio(wps, rawseq_wps), ratio(wps, fp32)]
        rows.append([r.system, DESCRIPTIONS[r.system], r.pipe_batch, *figures])
    header = ["system", "description", "pipe", "seconds", "min-max", "words/s", "x raw"]
    print_table([*header, "x rawseq", "x fp32"], rows, left=2)
