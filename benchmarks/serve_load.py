"""Load test of `python -m spacy_bert_ner serve`: single-sentence requests from 1 to 256
concurrent clients (`wrk`, see `benchmarks/wrk.py`), every system in the same run:

  local            the local engine (uvicorn + asyncio batcher), batches up to --max-batch-size
  local-unbatched  the same with --max-batch-size 1
  ray              the ray engine, through Ray Serve's HTTP proxy
  ray-direct       the ray engine with Ray Serve's direct ingress (RAY_SERVE_ENABLE_DIRECT_INGRESS:
                   the replica answers HTTP itself, no proxy hop)
  handmade         FastAPI + uvicorn + transformers pipeline(aggregation_strategy="first"),
                   one forward pass per request (benchmarks/handwritten_server.py)

and, whatever --systems says, the offline ceiling: nlp.pipe over the same sentences at batch
--max-batch-size in this process, measured before and after the servers (the faster counts).

Each level runs --runs times for --seconds; the table gives the median of each figure. Then
one NDJSON request of --bulk-docs documents to the local engine: all answered, each id once,
the server's RSS growth. Loopback only.

    python -m benchmarks.serve_load                      # MiniLM, random head
    python -m benchmarks.serve_load --model training/cpu/model-best
"""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urljoin

import httpx
import psutil

from spacy_bert_ner.serve.bulk import NDJSON

from .children import free_port, module_command, running, tree_rss_mib
from .inputs import Sentences, bert_ner_pipeline, conll_file, read_sentences
from .machine import describe
from .measure import Sampler
from .tables import print_table, ratio
from .wrk import WrkRun, lua_script, run_wrk

LEVELS = (1, 8, 64, 256)
SYSTEMS = ("local", "local-unbatched", "ray", "ray-direct", "handmade")


@dataclass
class Level:
    system: str
    clients: int
    runs: list[WrkRun] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    texts_per_batch: float | None = None  # the local engine's own count, over the level

    def median(self, figure: str) -> float:
        return statistics.median(getattr(run, figure) for run in self.runs)

    def words_per_second(self, words_per_request: float) -> float:
        return statistics.median(run.ok / run.seconds * words_per_request for run in self.runs)

    def problems(self) -> str:
        """Non-200 answers and socket errors summed over the runs."""
        total: dict[str, int] = {}
        for run in self.runs:
            for kind, n in run.problems().items():
                total[kind] = total.get(kind, 0) + n
        return ", ".join(f"{kind}: {n}" for kind, n in sorted(total.items())) or "-"


def run_levels(
    system: str,
    url: str,
    script: Path,
    server: psutil.Process,
    args: argparse.Namespace,
    metrics_url: str | None,
) -> list[Level]:
    """Each level's runs; with `metrics_url` (the local engine's /metrics), the mean batch
    size over the level."""
    run_wrk(url, script, 8, 2, args.timeout)  # warm-up: connections, first batches
    levels = []
    for clients in args.levels:
        level = Level(system, clients)
        before = batch_totals(metrics_url) if metrics_url else None
        with Sampler(lambda: tree_rss_mib(server), interval=0.5) as rss:
            for _ in range(args.runs):
                level.runs.append(run_wrk(url, script, clients, args.seconds, args.timeout))
                # wrk leaves the requests of the connections it closes to the server; they
                # are let through before the next run, which would meet them as a queue.
                time.sleep(args.pause)
        level.peak_rss_mib = rss.peak
        if metrics_url and before is not None:
            texts, batches = (a - b for a, b in zip(batch_totals(metrics_url), before, strict=True))
            level.texts_per_batch = texts / batches if batches else None
        print(
            f"[{system}] {clients} clients: {level.median('ok'):.0f} ok per run, "
            f"p50 {level.median('p50_ms'):.1f} ms, {level.problems()}, "
            f"{level.texts_per_batch or 0:.1f} texts per batch",
            flush=True,
        )
        levels.append(level)
    return levels


def bulk_request(url: str, sents: Sentences, n_docs: int, server: psutil.Process, tmp: Path) -> str:
    """One NDJSON request of `n_docs` sentences (cycled, ids 0..n-1) with curl, which reads
    the answer while it sends; the answer checked, the server's RSS sampled."""
    texts = sents.texts()
    body = tmp / "bulk.ndjson"
    lines = (json.dumps({"id": i, "text": texts[i % len(texts)]}) + "\n" for i in range(n_docs))
    body.write_text("".join(lines))
    before = tree_rss_mib(server)
    started = time.perf_counter()
    with Sampler(lambda: tree_rss_mib(server), interval=0.25) as rss:
        out = subprocess.run(
            ["curl", "-sS", "-H", f"Content-Type: {NDJSON}", "--data-binary"] + [f"@{body}", url],
            capture_output=True,
            text=True,
        )
    seconds = time.perf_counter() - started
    records = [json.loads(line) for line in out.stdout.splitlines()]
    ids = [record.get("id") for record in records]
    errors = sum("error" in record for record in records)
    in_input_order = ids == list(range(n_docs))
    return (
        f"NDJSON bulk, {n_docs} documents in one request: {len(records)} records, "
        f"{len(set(ids))} distinct ids, all answered: {sorted(ids) == list(range(n_docs))}, "
        f"{errors} errors, in input order: {in_input_order}, {seconds:.1f} s "
        f"({n_docs / seconds:.0f} docs/s); server RSS {before:.0f} MiB before, peak "
        f"{rss.peak:.0f} MiB (growth {rss.peak - before:.0f} MiB)"
    )


def batch_totals(metrics_url: str) -> tuple[float, float]:
    """Texts and batches the local engine has run so far (its /metrics)."""
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(metrics_url, timeout=10).text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name in ("bert_ner_batch_size_sum", "bert_ner_batch_size_count")
    }
    return values.get("bert_ner_batch_size_sum", 0.0), values.get("bert_ner_batch_size_count", 0.0)


def offline_ceiling(pipeline: Path, sents: Sentences, batch: int) -> tuple[float, float]:
    """Words/s of nlp.pipe over the sentences in batches of `batch`, and the median latency of
    one `nlp(text)` call (seconds), in this process with the service's thread count."""
    import spacy
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    nlp = spacy.load(pipeline)
    texts = sents.texts()
    list(nlp.pipe(texts[:64], batch_size=batch))  # warm-up
    rates = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in nlp.pipe(texts, batch_size=batch):
            pass
        rates.append(sents.n_words / (time.perf_counter() - start))
    single = []
    for text in texts[:200]:
        began = time.perf_counter()
        nlp(text)
        single.append(time.perf_counter() - began)
    return statistics.median(rates), statistics.median(single)


def serve_command(pipeline: Path, port: int, engine: str, batch: int, args: argparse.Namespace):
    return module_command(
        "spacy_bert_ner",
        "serve",
        pipeline,
        f"--engine={engine}",
        f"--port={port}",
        f"--max-batch-size={batch}",
        f"--batch-wait-ms={args.batch_wait_ms}",
    )


def print_results(
    levels: list[Level], words_per_request: float, ceiling: float, single_s: float, bulk: str
) -> None:
    print()
    rows = []
    for level in levels:
        words_per_s = level.words_per_second(words_per_request)
        rows.append(
            [level.system, level.clients, f"{level.median('ok') / level.median('seconds'):.0f}"]
            + [f"{words_per_s:.0f}", ratio(words_per_s, ceiling), f"{level.median('p50_ms'):.1f}"]
            + [f"{level.median('p99_ms'):.1f}", level.problems(), f"{level.peak_rss_mib:.0f}"]
            + [f"{level.texts_per_batch:.1f}" if level.texts_per_batch else None]
        )
    offline = ["offline nlp.pipe", None, None, f"{ceiling:.0f}", "1.00", None, None, None, None]
    rows.append([*offline, None])
    header = ["system", "clients", "requests/s", "words/s", "x offline", "p50 ms", "p99 ms"]
    print_table([*header, "not 200 (all runs)", "RSS MiB", "texts/batch"], rows)
    print()
    print_targets(levels, words_per_request, ceiling, single_s)
    print(bulk)


def print_targets(
    levels: list[Level], words_per_request: float, ceiling: float, single_s: float
) -> None:
    """Each target with both sides of its comparison, so a reader checks the arithmetic."""
    by = {(level.system, level.clients): level for level in levels}

    def rate(system: str, clients: int) -> float | None:
        level = by.get((system, clients))
        return level.words_per_second(words_per_request) if level else None

    def words(value: float | None) -> str:
        return "-" if value is None else f"{value:.0f} words/s"

    one = single_s * 1000
    if ("local", 1) in by:
        p50 = by[("local", 1)].median("p50_ms")
        print(
            f"local, 1 client: p50 {p50:.1f} ms against one nlp(text) {one:.1f} ms + 3 = "
            f"{one + 3:.1f} ms (target: p50 <= nlp(text) + 3 ms; met: {p50 <= one + 3})"
        )
    local64 = rate("local", 64)
    comparisons = [
        ("local", "offline nlp.pipe at batch 64", ceiling, 0.85),
        ("local", "local-unbatched", rate("local-unbatched", 64), 2.5),
        ("local", "handmade", rate("handmade", 64), 2.0),
        ("ray", "offline nlp.pipe at batch 64", ceiling, 0.6),
        ("ray-direct", "offline nlp.pipe at batch 64", ceiling, 0.6),
    ]
    for system, against, base, target in comparisons:
        value = local64 if system == "local" else rate(system, 64)
        print(
            f"{system}, 64 clients: {words(value)} against {against} {words(base)} = "
            f"{ratio(value, base)}x (target >= {target})"
        )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", help="bert_ner pipeline dir (default: MiniLM, random head)")
    p.add_argument("--conll", type=Path, default=conll_file("eng.testb"))
    p.add_argument("-n", "--n-sents", type=int, default=1500)
    p.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=list(LEVELS))
    p.add_argument("--seconds", type=float, default=10.0, help="per level and run")
    p.add_argument("--runs", type=int, default=3, help="runs per level (median)")
    p.add_argument("--timeout", type=float, default=30.0, help="client timeout per request")
    p.add_argument("--pause", type=float, default=5.0, help="seconds between runs (drain)")
    p.add_argument("--max-batch-size", type=int, default=64)
    p.add_argument("--batch-wait-ms", type=float, default=2.0)
    p.add_argument("--bulk-docs", type=int, default=10_000, help="NDJSON documents (0: none)")
    p.add_argument("--systems", default=",".join(SYSTEMS))
    args = p.parse_args(argv)
    args.systems = args.systems.split(",")
    unknown = sorted(set(args.systems) - set(SYSTEMS))
    if unknown:  # a misspelt name would otherwise be served by the local engine
        p.error(f"--systems: unknown {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return args


@dataclass
class Server:
    """How to start one system and load it: its command, environment, URL and wrk script."""

    command: list[str]
    env: dict[str, str]
    url: str
    script: Path


def server_of(
    system: str, pipeline: Path, hf_dir: Path, args: argparse.Namespace, tmp: Path
) -> Server:
    port = free_port()
    batch = 1 if system == "local-unbatched" else args.max_batch_size
    engine = "ray" if system.startswith("ray") else "local"
    command = serve_command(pipeline, port, engine, batch, args)
    url = f"http://127.0.0.1:{port}/v1/entities"
    if system == "ray-direct":
        direct = free_port()
        env = {
            "RAY_SERVE_ENABLE_DIRECT_INGRESS": "1",
            "RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT": str(direct),
            "RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT": str(direct + 50),
        }
        return Server(command, env, f"http://127.0.0.1:{direct}/v1/entities", tmp / "ours.lua")
    if system == "handmade":
        command = module_command(
            "uvicorn", "benchmarks.handwritten_server:app", f"--port={port}"
        ) + ["--log-level=warning", "--no-access-log"]
        env = {"MODEL_DIR": str(hf_dir), "OMP_NUM_THREADS": str(os.cpu_count())}
        return Server(command, env, f"http://127.0.0.1:{port}/ner", tmp / "handmade.lua")
    return Server(command, {}, url, tmp / "ours.lua")


def run_system(
    system: str, server: Server, sents: Sentences, args: argparse.Namespace, tmp: Path
) -> tuple[list[Level], str | None]:
    """The levels of one system, and its bulk request's line (the local engine's); a system
    that cannot start is reported and stops no other."""
    base = urljoin(server.url, "/")
    ready_url = urljoin(base, "healthz" if system == "handmade" else "readyz")
    local = system in ("local", "local-unbatched")
    metrics_url = base + "metrics" if local else None
    bulk = None
    try:
        with running(server.command, ready_url, tmp / f"{system}.log", **server.env) as process:
            levels = run_levels(system, server.url, server.script, process, args, metrics_url)
            if system == "local" and args.bulk_docs:
                bulk = bulk_request(server.url, sents, args.bulk_docs, process, tmp)
                print(bulk, flush=True)
    except SystemExit as failed:
        print(f"[{system}] FAILED: {failed}", flush=True)
        return [], None
    return levels, bulk


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    sents = read_sentences(args.conll, args.n_sents)
    words_per_request = sents.n_words / len(sents.words)  # wrk rotates over all sentences
    print(os.popen("uptime").read().strip())
    print(
        describe(
            f"{os.cpu_count()} torch threads in every system (the serve process or replica, "
            "the hand-made server's OMP_NUM_THREADS, offline nlp.pipe); wrk (one thread) "
            "shares the same cores"
        )
    )
    print(
        f"{len(sents.words)} sentences, {sents.n_words} words ({words_per_request:.1f} per "
        f"request); levels {args.levels}; {args.runs} x {args.seconds:g} s each; max batch "
        f"{args.max_batch_size}, wait {args.batch_wait_ms} ms"
    )
    levels: list[Level] = []
    bulk = "NDJSON bulk: not run"
    with tempfile.TemporaryDirectory(prefix="bert_ner_serve_load_") as tmp_dir:
        tmp = Path(tmp_dir)
        pipeline, hf_dir, _ = bert_ner_pipeline(args.model, tmp)
        # Before and after the servers: a machine whose load changed shows it here.
        before = offline_ceiling(pipeline, sents, args.max_batch_size)
        texts = sents.texts()
        ours = lua_script([json.dumps({"texts": [t]}) for t in texts], "/v1/entities")
        (tmp / "ours.lua").write_text(ours)
        handmade = lua_script([json.dumps({"text": t}) for t in texts], "/ner")
        (tmp / "handmade.lua").write_text(handmade)
        for system in args.systems:
            server = server_of(system, pipeline, hf_dir, args, tmp)
            system_levels, system_bulk = run_system(system, server, sents, args, tmp)
            levels += system_levels
            bulk = system_bulk or bulk
        after = offline_ceiling(pipeline, sents, args.max_batch_size)
    print(
        f"offline nlp.pipe before the servers {before[0]:.0f} words/s, after {after[0]:.0f}; "
        f"one nlp(text) {before[1] * 1000:.1f} ms, {after[1] * 1000:.1f} ms (the table takes "
        "the faster of each)"
    )
    ceiling, single_s = max(before[0], after[0]), min(before[1], after[1])
    print_results(levels, words_per_request, ceiling, single_s, bulk)
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
