"""CPU inference speed of `bert_ner` against the raw forward pass and other spaCy/HF NER paths.

One process, one model, the same sentences and batch size for every system; each system gets a
warm-up pass before it is timed. See docs/benchmark-scripts.md for what each system is and how to
read the tables.

    python -m benchmarks.speed                         # all systems, random-head MiniLM
    python -m benchmarks.speed --model training/cpu/model-best --accuracy
    python -m benchmarks.speed --systems raw,fp32 --profile --no-memory
"""

import argparse
import importlib.util
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from ..inputs import conll_file, hf_model, read_sentences
from ..machine import describe
from .accuracy import print_accuracy
from .long_docs import memory_table
from .pick import print_optimize_picks
from .profile import profile_fp32
from .rounds import padding_summary, print_speed_table, run_systems
from .systems import ALL_SYSTEMS, BERT_NER_SYSTEMS

DOC_SIZES = (1_000, 10_000, 100_000)


def comma_list(text: str) -> list[str]:
    return [s.strip() for s in str(text).split(",") if s.strip()]


def build_parser() -> argparse.ArgumentParser:
    """The inputs, batches and systems timed; then `add_extra_tables`' options."""
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.speed",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    p.add_argument(
        "--model",
        help="HF token-classifier dir or spaCy pipeline dir with bert_ner "
        "(default: all-MiniLM-L6-v2 with a random CoNLL head, seed 0)",
    )
    p.add_argument(
        "--conll",
        type=Path,
        default=conll_file("eng.testb"),
        help="CoNLL file (%(default)s, from $SPACY_BERT_NER_DATA)",
    )
    p.add_argument(
        "-n", "--n-sents", type=int, default=1500, help="first N sentences (%(default)s)"
    )
    p.add_argument("--batch-size", type=int, default=32, help="sentences per batch (%(default)s)")
    p.add_argument(
        "--pipe-batches",
        default="32,1000",
        help="docs per nlp.pipe batch; every spaCy system is timed at each (%(default)s: what a "
        "service collecting concurrent requests hands it, and spaCy's default nlp.batch_size). "
        "bert_ner's forward passes still hold --batch-size windows, sorted by length across "
        "the pipe batch",
    )
    p.add_argument(
        "--repeats", type=int, default=3, help="timed runs per system; the median (%(default)s)"
    )
    p.add_argument(
        "--warmup", type=int, default=256, help="warm-up sentences per system (%(default)s)"
    )
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (%(default)s)")
    p.add_argument("--systems", default=",".join(ALL_SYSTEMS), help="comma list of %(default)s")
    add_extra_tables(p)
    return p


def add_extra_tables(p: argparse.ArgumentParser) -> None:
    """The options of the tables beside the speed table: long docs, profile, accuracy."""
    p.add_argument(
        "--memory-systems",
        default="fp32,ort",
        help="bert_ner systems of the long-doc table (%(default)s)",
    )
    p.add_argument(
        "--no-memory", dest="memory", action="store_false", help="skip the long-doc table"
    )
    p.add_argument(
        "--doc-sizes",
        default=",".join(map(str, DOC_SIZES)),
        help="words per long doc (%(default)s)",
    )
    p.add_argument(
        "--memory-min-words",
        type=int,
        default=10_000,
        help="repeat a long doc that is shorter than this for its timing (%(default)s)",
    )
    p.add_argument("--profile", action="store_true", help="pyinstrument over bert_ner fp32")
    p.add_argument("--profile-pipe-batch", type=int, default=32, help="nlp.pipe batch of --profile")
    p.add_argument("--profile-lines", type=int, default=60)
    p.add_argument("--profile-flat", type=int, default=25)
    p.add_argument(
        "--accuracy", action="store_true", help="entity F1 of the bert_ner systems and hfpipe"
    )
    p.add_argument("--verbose", action="store_true", help="tracebacks for failing systems")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.profile and importlib.util.find_spec("pyinstrument") is None:
        # Said before any system runs, not after minutes of timing rounds.
        p.error("--profile needs pyinstrument (pip install pyinstrument)")
    args.systems = comma_list(args.systems)
    unknown = set(args.systems) - set(ALL_SYSTEMS)
    if unknown:
        p.error(f"unknown systems {sorted(unknown)}; choose from {','.join(ALL_SYSTEMS)}")
    args.doc_sizes = [int(s) for s in comma_list(args.doc_sizes)]
    args.pipe_batches = [int(s) for s in comma_list(args.pipe_batches)]
    args.memory_systems = comma_list(args.memory_systems)
    if set(args.memory_systems) - set(BERT_NER_SYSTEMS):
        p.error(f"--memory-systems: choose from {','.join(BERT_NER_SYSTEMS)}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    import torch

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # no tokenizer threads beside torch
    torch.set_num_threads(args.threads)
    print(describe(), flush=True)
    sents = read_sentences(args.conll, args.n_sents)
    with tempfile.TemporaryDirectory(prefix="bert_ner_speed_") as tmp:
        model_dir, model_kind = hf_model(args.model, Path(tmp))
        print(
            f"model: {model_dir} ({model_kind}); {len(sents.words)} sentences, "
            f"{sents.n_words} words from {args.conll}",
            flush=True,
        )
        results = run_systems(args, model_dir, sents)
        print_speed_table(results, args, sents)
        print_optimize_picks(results, args.pipe_batches)
        print(padding_summary(model_dir, sents, args.batch_size))
        if args.accuracy:
            print_accuracy(results, sents, model_kind)
        best: dict[str, float] = {}  # each system's best words/s, for the long-doc ratio
        for r in results:
            r.docs = None  # free before the other parts
            if r.words_per_s:
                best[r.system] = max(best.get(r.system, 0.0), r.words_per_s)
        if args.profile:
            profile_fp32(args, model_dir, sents)
        if args.memory:
            memory_table(args, model_dir, best)


if __name__ == "__main__":
    main()
