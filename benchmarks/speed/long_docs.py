"""The long-document table: memory and words/s of one Doc of 1k, 10k, 100k words.

Each size runs in a fresh process (this module, `python -m benchmarks.speed.long_docs`), so
that its peak memory is its own and not the high-water mark of the sizes or systems before it.
"""

import argparse
import contextlib
import json
import resource
import time
from collections.abc import Sequence
from itertools import chain, cycle, islice
from pathlib import Path
from typing import Any

from ..children import ChildFailed, run_json
from ..measure import Sampler
from ..tables import print_table
from .systems import BERT_NER_SYSTEMS, DESCRIPTIONS, bert_ner_nlp, pipe_docs


def high_water_kib() -> int:
    """Peak RSS of this process in KiB: VmHWM where Linux has it, else ru_maxrss.

    ru_maxrss is not reset by exec, so in a subprocess it can report the parent's RSS at fork
    time; VmHWM belongs to the new address space.
    """
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS


def measure_one(args: argparse.Namespace) -> dict[str, Any]:
    """One doc of `--words` words, repeated up to `--min-words`, through `--system`."""
    import psutil
    import torch
    from spacy.tokens import Doc

    from ..inputs import read_sentences

    torch.set_num_threads(args.threads)
    sents = read_sentences(args.conll, args.n_sents)
    precision, backend = BERT_NER_SYSTEMS[args.system]
    nlp = bert_ner_nlp(args.model, args.batch_size, precision=precision, backend=backend)
    pipe_docs(nlp, sents.head(32), args.batch_size)  # warm-up on sentences, not on the big doc
    words = list(islice(cycle(chain.from_iterable(sents.words)), args.words))
    repeats = max(1, args.min_words // args.words)
    docs = [Doc(nlp.vocab, words=words) for _ in range(repeats)]
    process = psutil.Process()
    rss_loaded = high_water_kib()
    current_loaded = process.memory_info().rss
    with Sampler(lambda: process.memory_info().rss, interval=0.005) as rss:
        start = time.perf_counter()
        for doc in docs:
            nlp(doc)
        seconds = time.perf_counter() - start
    return {
        "words": args.words,
        "repeats": repeats,
        "seconds": seconds,
        "words_per_s": args.words * repeats / seconds,
        "maxrss_loaded_mib": rss_loaded / 1024,
        "maxrss_peak_mib": high_water_kib() / 1024,
        "rss_loaded_mib": current_loaded / 2**20,
        "rss_peak_mib": rss.peak / 2**20,
        "n_samples": len(rss.samples),
        "threads": torch.get_num_threads(),
        "n_ents": len(docs[0].ents),
    }


def memory_table(args: argparse.Namespace, model_dir: Path, short_doc_wps: dict) -> None:
    """One table per `--memory-systems` system; `short_doc_wps` holds each system's best
    words/s on sentence batches (from the speed table), for the long-doc vs batches ratio."""
    for system in args.memory_systems:
        rows = []
        for size in args.doc_sizes:
            print(f"[memory {system}] {size} words in a fresh process", flush=True)
            try:
                rows.append(
                    run_json(
                        __name__,
                        *("--model", model_dir, "--conll", Path(args.conll).resolve()),
                        *("-n", args.n_sents, "--batch-size", args.batch_size),
                        *("--threads", args.threads, "--min-words", args.memory_min_words),
                        *("--words", size, "--system", system),
                    )
                )
            except ChildFailed as err:
                print(f"[memory] {size} words FAILED: {err}")
        if rows:
            print_memory_rows(system, rows, short_doc_wps.get(system))


def print_memory_rows(system: str, rows: list[dict], short_doc_wps: float | None) -> None:
    print()
    print(
        f"Long documents: {DESCRIPTIONS[system]}, one pre-tokenized Doc per size, each size "
        "in a fresh process, memory in MiB.\n  RSS: current RSS after loading + warm-up + "
        "building the Doc, and its peak sampled every 5 ms while predicting (psutil);\n  "
        "maxrss: the process's high-water mark (VmHWM) after predicting, which includes model "
        "loading."
    )
    print_table(
        ["words", "runs", "RSS loaded", "RSS peak", "growth", "maxrss", "seconds", "words/s"],
        [
            [
                row["words"],
                row["repeats"],
                f"{row['rss_loaded_mib']:.0f}",
                f"{row['rss_peak_mib']:.0f}",
                f"{row['rss_peak_mib'] - row['rss_loaded_mib']:.0f}",
                f"{row['maxrss_peak_mib']:.0f}",
                f"{row['seconds']:.2f}",
                f"{row['words_per_s']:.0f}",
            ]
            for row in rows
        ],
        left=0,
    )
    first, last = rows[0], rows[-1]
    if first is last:
        return
    peak = last["rss_peak_mib"] / first["rss_peak_mib"]
    maxrss = last["maxrss_peak_mib"] / first["maxrss_peak_mib"]
    grow = (last["rss_peak_mib"] - last["rss_loaded_mib"]) / max(
        first["rss_peak_mib"] - first["rss_loaded_mib"], 1.0
    )
    speed = last["words_per_s"] / first["words_per_s"]
    print(
        f"{last['words']} vs {first['words']} words: peak RSS x{peak:.2f} "
        f"(maxrss x{maxrss:.2f}; target <= 1.5), growth x{grow:.1f}; "
        f"words/s x{speed:.2f} (target >= 0.80)"
    )
    if short_doc_wps:
        print(
            f"{last['words']}-word doc vs sentence batches ({system} above, best pipe batch): "
            f"words/s x{last['words_per_s'] / short_doc_wps:.2f}"
        )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", type=Path, required=True, help="HF token-classifier dir")
    p.add_argument("--conll", type=Path, required=True, help="CoNLL file the doc repeats")
    p.add_argument("-n", "--n-sents", type=int, default=1500, help="its first N sentences")
    p.add_argument("--batch-size", type=int, default=32, help="windows per forward pass")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--min-words", type=int, default=10_000, help="repeat shorter docs to this")
    p.add_argument("--words", type=int, required=True, help="words in the doc")
    p.add_argument("--system", choices=BERT_NER_SYSTEMS, default="fp32")
    print(json.dumps(measure_one(p.parse_args(argv))))


if __name__ == "__main__":
    main()
