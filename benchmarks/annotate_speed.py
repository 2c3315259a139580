"""docs/s of `annotate` on the local engine (1 and N processes) and on Ray Data (1 and N actors).

Every system annotates the same JSONL of CoNLL-2003-derived documents with the same pipeline
and batch size, one after the other in one run, each in a fresh subprocess with one torch
thread per worker (`OMP_NUM_THREADS=1`), so local with N processes and Ray with N actors use
the same N cores. Ray gets `ray.init(num_cpus=--ray-cpus)` in its subprocess, timed apart.
See benchmarks/README.md for the columns.

    python benchmarks/annotate_speed.py                      # 5,000 docs, random-head MiniLM
    python benchmarks/annotate_speed.py --n-docs 200 --batch-size 32      # a smoke test
    python benchmarks/annotate_speed.py --model training/cpu/model-best --systems local-2,ray-2
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from speed import build_random_minilm, read_sentences

REPO = Path(__file__).resolve().parents[1]
CONLL_DIR = REPO.parent / "shared" / "data" / "conll2003"
DEFAULT_CONLL = [CONLL_DIR / name for name in ("eng.train", "eng.testa", "eng.testb")]
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
    words = [w for p in conll for w in read_sentences(p, limit=10**9).words]
    n_words = 0
    with path.open("w", encoding="utf8") as out:
        for i in range(n_docs):
            start = i * sents_per_doc
            sentences = [words[(start + k) % len(words)] for k in range(sents_per_doc)]
            n_words += sum(len(s) for s in sentences)
            text = " ".join(" ".join(s) for s in sentences)
            out.write(json.dumps({"id": f"d{i}", "text": text}) + "\n")
    return n_words


def resolve_pipeline(arg: str | None, workdir: Path) -> tuple[Path, str]:
    """A spaCy pipeline directory: `--model` itself, or one wrapping a HF classifier
    (`--model` or, without it, all-MiniLM-L6-v2 with a random 9-tag head)."""
    if arg is not None and (Path(arg) / "config.cfg").is_file():
        return Path(arg).resolve(), "spaCy pipeline"
    import spacy

    hf_dir = Path(arg).resolve() if arg else build_random_minilm(workdir / "minilm-ner")
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": str(hf_dir)})
    nlp.to_disk(workdir / "pipeline")
    return workdir / "pipeline", "HF classifier" if arg else "MiniLM, random head"


# -- one system, in its own process -----------------------------------------------------------


class LineSampler(threading.Thread):
    """Counts the lines of a growing file every `interval` s: when which share was written.

    Ray streams results back in bursts once its actors are busy, so the time of the first
    batch says little; the rate over the last (1 - STEADY_FROM) of the output is the
    throughput once every worker is running, for both engines alike.
    """

    def __init__(self, path: Path, interval: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.path, self.interval = path, interval
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        lines = self.path.read_bytes().count(b"\n") if self.path.exists() else 0
        self.samples.append((time.perf_counter(), lines))

    def stop(self) -> None:
        self.stopped.set()
        self.join()
        self.sample()

    def rates(self, start: float) -> tuple[float, float]:
        """(seconds until the first line, docs/s from STEADY_FROM of the lines on)."""
        end, total = self.samples[-1]
        first = next(t for t, n in self.samples if n > 0)
        since, done = next((t, n) for t, n in self.samples if n >= STEADY_FROM * total)
        steady = (total - done) / (end - since) if end > since else 0.0
        return first - start, steady


def run_one(args: argparse.Namespace) -> None:
    """Child mode: annotate once and print the timings as JSON."""
    from spacy_bert_ner.annotate.command import annotate

    engine, workers = args.run_one.split("-")
    ray_init = 0.0
    if engine == "ray":
        import ray

        start = time.perf_counter()
        ray.init(num_cpus=args.ray_cpus, include_dashboard=False, log_to_driver=False)
        ray_init = time.perf_counter() - start
    sampler = LineSampler(Path(args.output))
    start = time.perf_counter()
    sampler.start()
    tally = annotate(
        args.model,
        Path(args.input),
        Path(args.output),
        engine=engine,
        batch_size=args.batch_size,
        workers=int(workers),
        progress=False,
    )
    sampler.stop()
    startup, steady = sampler.rates(start)
    timings = {"ray_init": ray_init, "seconds": tally.seconds, "startup": startup}
    print(json.dumps({**timings, "steady": steady}))


def run_system(system: str, args: argparse.Namespace, pipeline: Path, source: Path) -> Run:
    output = args.workdir / f"{system}.jsonl"
    for stale in (output, output.with_name(f"{system}.errors.jsonl")):
        stale.unlink(missing_ok=True)  # annotate would resume them
    command = [
        sys.executable,
        __file__,
        "--run-one",
        system,
        "--model",
        str(pipeline),
        "--input",
        str(source),
        "--output",
        str(output),
        "--batch-size",
        str(args.batch_size),
        "--ray-cpus",
        str(args.ray_cpus),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{system} failed:\n{done.stderr[-3000:]}")
    timings = json.loads(done.stdout.strip().splitlines()[-1])
    return Run(system=system, wall=wall, output=output, **timings)


# -- report -----------------------------------------------------------------------------------


def differing_records(run: Run, reference: Run) -> int:
    """Ids whose output line differs from the reference's, or that only one of them has."""

    def lines_by_id(path: Path) -> dict[str, str]:
        lines = path.read_text(encoding="utf8").splitlines()
        return {json.dumps(json.loads(line)["id"]): line for line in lines}

    ours, theirs = lines_by_id(run.output), lines_by_id(reference.output)
    return sum(ours.get(key) != theirs.get(key) for key in ours.keys() | theirs.keys())


def print_table(runs: list[Run], n_docs: int) -> None:
    by_system = {run.system: run for run in runs}
    base = runs[0]
    print(
        f"{'system':<9} {'wall s':>7} {'ray.init s':>10} {'annotate s':>10} {'startup s':>9} "
        f"{'docs/s':>7} {'steady':>7} {'x ' + base.system:>10} {'ray/local':>9} "
        f"{'ray/local':>9} {'differ':>6}"
    )
    print(f"{'':<80} {'docs/s':>9} {'steady':>9}")
    for run in runs:
        same = by_system.get(f"local-{run.workers}")
        versus_wall = versus_steady = ""
        if run.engine == "ray" and same is not None:
            versus_wall = f"{same.wall / run.wall:.2f}"
            versus_steady = f"{run.steady / same.steady:.2f}" if same.steady else ""
        ratio = f"{run.steady / base.steady:.2f}" if base.steady else ""
        print(
            f"{run.system:<9} {run.wall:7.1f} {run.ray_init:10.1f} {run.seconds:10.1f} "
            f"{run.startup:9.1f} {n_docs / run.wall:7.1f} {run.steady:7.1f} {ratio:>10} "
            f"{versus_wall:>9} {versus_steady:>9} {differing_records(run, base):6d}"
        )
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
        pipeline, kind = resolve_pipeline(args.model, args.workdir)
        source = args.workdir / "docs.jsonl"
        n_words = write_documents(source, args.conll, args.n_docs, args.sents_per_doc)
        print(
            f"{args.n_docs} docs ({n_words / args.n_docs:.0f} words each) from "
            f"{', '.join(p.name for p in args.conll)}; model: {kind} ({pipeline}); "
            f"batch size {args.batch_size}; OMP_NUM_THREADS=1; ray.init(num_cpus="
            f"{args.ray_cpus}); {os.cpu_count()} CPUs"
        )
        runs = []
        for system in systems:
            runs.append(run_system(system, args, pipeline, source))
            print(f"  {system}: {runs[-1].wall:.1f} s", flush=True)
        print_table(runs, args.n_docs)


if __name__ == "__main__":
    main()
