"""docs/s of `annotate` on the local engine (1 and N processes) and on Ray Data (1 and N actors).

Every system annotates the same JSONL of CoNLL-2003-derived documents with the same pipeline
and batch size, one after the other in one run, each in a fresh subprocess with one torch
thread per worker (`OMP_NUM_THREADS=1`), so local with N processes and Ray with N actors use
the same N cores. Ray gets `ray.init(num_cpus=--ray-cpus)` in its subprocess, timed apart.
See docs/benchmark-scripts.md for the columns.

    python -m benchmarks.annotate_speed                      # 5,000 docs, random-head MiniLM
    python -m benchmarks.annotate_speed --n-docs 200 --batch-size 32      # a smoke test
    python -m benchmarks.annotate_speed --model training/cpu/model-best --systems local-2,ray-2
"""

import argparse
import json
import os
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .children import ChildFailed, run_json
from .inputs import bert_ner_pipeline, conll_file, read_sentences
from .machine import describe
from .measure import Sampler
from .tables import print_table, ratio

DEFAULT_CONLL = [conll_file(name) for name in ("eng.train", "eng.testa", "eng.testb")]
SYSTEMS = ("local-1", "local-2", "ray-1", "ray-2")  # ENGINE-WORKERS
STEADY_FROM = 0.25  # the steady rate is measured over the output after this share


@dataclass
class Run:
    system: str
    wall: float  # the whole subprocess: imports, model load, Ray start, annotate
    ray_init: float
    seconds: float  # annotate() itself
    startup: float  # from annotate()'s start until the first output line
    steady: float  # docs/s from STEADY_FROM of the output on
    output: Path

    @property
    def engine(self) -> str:
        return self.system.split("-")[0]

    @property
    def workers(self) -> int:
        return int(self.system.split("-")[1])


# -- inputs -----------------------------------------------------------------------------------


def write_documents(path: Path, conll: Sequence[Path], n_docs: int, sents_per_doc: int) -> int:
    """`n_docs` JSONL records, each `sents_per_doc` consecutive CoNLL sentences joined by
    spaces (cycling through the files if they run out); returns the number of words."""
    words = [w for p in conll for w in read_sentences(p).words]
    n_words = 0
    with path.open("w", encoding="utf8") as out:
        for i in range(n_docs):
            start = i * sents_per_doc
            sentences = [words[(start + k) % len(words)] for k in range(sents_per_doc)]
            n_words += sum(len(s) for s in sentences)
            text = " ".join(" ".join(s) for s in sentences)
            out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return n_words


# -- one system, in its own process -----------------------------------------------------------


def rates(lines: Sampler, start: float) -> tuple[float, float]:
    """Seconds from `start` until the first output line, and docs/s from STEADY_FROM of the
    lines on.

    Ray streams results back in bursts once its actors are busy, so the time of the first
    batch says little; the rate over the last (1 - STEADY_FROM) of the output is the
    throughput once every worker is running, for both engines alike.
    """
    end, total = lines.samples[-1]
    first = next(t for t, n in lines.samples if n > 0)
    since, done = next((t, n) for t, n in lines.samples if n >= STEADY_FROM * total)
    steady = (total - done) / (end - since) if end > since else 0.0
    return first - start, steady


def run_one(args: argparse.Namespace) -> None:
    """Child mode: annotate once and print the timings as JSON."""
    from spacy_bert_ner.annotate.command import annotate_file

    engine, workers = args.run_one.split("-")
    ray_init = 0.0
    if engine == "ray":
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        ray_init = time.perf_counter() - start
    output = Path(args.output)

    def lines_written() -> int:
        return output.read_bytes().count(b"\n") if output.exists() else 0

    start = time.perf_counter()
    with Sampler(lines_written, interval=0.05) as lines:
        tally = annotate_file(
            args.model,
            Path(args.input),
            output,
            engine=engine,
            batch_size=args.batch_size,
            workers=int(workers),
            progress=False,
        )
    startup, steady = rates(lines, start)
    timings = {"ray_init": ray_init, "seconds": tally.seconds, "startup": startup}
    print(json.dumps({**timings, "steady": steady}))


def run_system(system: str, args: argparse.Namespace, pipeline: Path, source: Path) -> Run:
    output = args.workdir / f"{system}.jsonl"
    for stale in (output, output.with_name(f"{system}.errors.jsonl")):
        stale.unlink(missing_ok=True)  # annotate would resume them
    start = time.perf_counter()
    try:
        timings = run_json(
            __spec__.name,
            *("--run-one", system, "--model", pipeline, "--input", source, "--output", output),
            *("--batch-size", args.batch_size, "--ray-cpus", args.ray_cpus),
            OMP_NUM_THREADS="1",
            TOKENIZERS_PARALLELISM="false",
        )
    except ChildFailed as err:
        raise SystemExit(f"{system} failed: {err}") from None
    return Run(system=system, wall=time.perf_counter() - start, output=output, **timings)


# -- report -----------------------------------------------------------------------------------


def differing_records(run: Run, reference: Run) -> int:
    """Ids whose output line differs from the reference's, or that only one of them has."""

    def lines_by_id(path: Path) -> dict[str, str]:
        lines = path.read_text(encoding="utf8").splitlines()
        return {json.dumps(json.loads(line)["id"]): line for line in lines}

    ours, theirs = lines_by_id(run.output), lines_by_id(reference.output)
    return sum(ours.get(key) != theirs.get(key) for key in ours.keys() | theirs.keys())


def print_runs(runs: list[Run], n_docs: int) -> None:
    by_system = {run.system: run for run in runs}
    base = runs[0]
    rows = []
    for run in runs:
        same = by_system.get(f"local-{run.workers}") if run.engine == "ray" else None
        rows.append(
            [run.system]
            + [f"{t:.1f}" for t in (run.wall, run.ray_init, run.seconds, run.startup)]
            + [f"{n_docs / run.wall:.1f}", f"{run.steady:.1f}", ratio(run.steady, base.steady)]
            + [ratio(same.wall, run.wall) if same else None]
            + [ratio(run.steady, same.steady) if same else None]
            + [differing_records(run, base)]
        )
    header = ["system", "wall s", "ray.init s", "annotate s", "startup s", "docs/s", "steady"]
    header += [f"x {base.system}", "ray/local docs/s", "ray/local steady", "differ"]
    print_table(header, rows)
    print(
        "docs/s: documents over the whole subprocess (wall s). startup s: annotate() until "
        "its first output line.\n"
        f"steady: docs/s over the last {1 - STEADY_FROM:.0%} of the output. ray/local: Ray's "
        "docs/s over local's with as many workers (1 - it: Ray's overhead).\n"
        f"differ: records whose output line differs from {base.system}'s."
    )


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="spaCy pipeline or HF classifier dir (default: MiniLM)")
    parser.add_argument("--n-docs", type=int, default=5000)
    parser.add_argument("--sents-per-doc", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="ENGINE-WORKERS, ...")
    parser.add_argument("--ray-cpus", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--conll", type=Path, nargs="+", default=DEFAULT_CONLL)
    parser.add_argument("--workdir", type=Path, help="keep inputs and outputs here")
    # Child mode (one system in its own process):
    parser.add_argument("--run-one", help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--output", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.run_one:
        run_one(args)
        return
    systems = [s.strip() for s in args.systems.split(",") if s.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        args.workdir = (args.workdir or Path(tmp)).resolve()
        args.workdir.mkdir(parents=True, exist_ok=True)
        print(describe("1 torch thread per worker (OMP_NUM_THREADS=1)"), flush=True)
        pipeline, _, kind = bert_ner_pipeline(args.model, args.workdir)
        source = args.workdir / "docs.jsonl"
        n_words = write_documents(source, args.conll, args.n_docs, args.sents_per_doc)
        print(
            f"{args.n_docs} docs ({n_words / args.n_docs:.0f} words each) from "
            f"{', '.join(p.name for p in args.conll)}; model: {pipeline} ({kind}); "
            f"batch size {args.batch_size}; ray.init(num_cpus={args.ray_cpus})"
        )
        runs = []
        for system in systems:
            runs.append(run_system(system, args, pipeline, source))
            print(f"  {system}: {runs[-1].wall:.1f} s", flush=True)
        print_runs(runs, args.n_docs)


if __name__ == "__main__":
    main()
