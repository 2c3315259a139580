"""Load test of `python -m spacy_bert_ner serve`: single-sentence requests from 1 to 256
concurrent clients, against the same service without batching, the offline `nlp.pipe`
ceiling and a hand-written FastAPI + transformers server. Loopback only; every level is
bounded by a request count and a time limit.

Systems, all on the same model and the same CoNLL-2003 test sentences:
  (a) batched   our service, batches of up to --max-batch-size texts across requests
  (b) unbatched the same service with --max-batch-size 1
  (c) offline   nlp.pipe over the sentences with batch_size = --max-batch-size: the ceiling
                 of a service, which cannot sort more than one batch by length
  (d) handmade  FastAPI + uvicorn + transformers pipeline(aggregation_strategy="first"),
                 one forward pass per request (benchmarks/handwritten_server.py)

    python -m benchmarks.serve_load                      # random-head MiniLM
    python -m benchmarks.serve_load --model training/cpu/model-best
"""

import argparse
import asyncio
import os
import re
import signal
import socket
import statistics
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

from .children import in_repo, module_command
from .inputs import Sentences, bert_ner_pipeline, conll_file, read_sentences
from .machine import describe
from .measure import Sampler
from .tables import print_table, ratio

LEVELS = (1, 8, 64, 256)


@dataclass
class LevelResult:
    system: str
    clients: int
    latencies: list[float] = field(default_factory=list)  # seconds, successful requests
    statuses: Counter = field(default_factory=Counter)
    words: int = 0
    seconds: float = 0.0
    peak_rss_mib: float = 0.0

    @property
    def words_per_second(self) -> float:
        return self.words / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    """One system under load: where it takes a text, the JSON body it wants, and which
    processes (by command line) hold its memory."""

    system: str
    url: str
    body: Callable[[str], dict[str, Any]]
    rss_pattern: str


@contextmanager
def running(command: list[str], ready_url: str, log: Path, **env: str) -> Iterator[None]:
    """A server process from start until it answers `ready_url`, stopped on the way out
    whatever happens (a server left running would hold the cores of the next system). Its
    output goes to `log`, whose tail says why when it exits before it is ready."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, **in_repo(**env))
    try:
        deadline = time.monotonic() + 300
        while not ready(ready_url):
            if process.poll() is not None:
                tail = log.read_text(errors="replace")[-3000:]
                raise SystemExit(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready after 300 s: {ready_url}")
            time.sleep(0.5)
        yield
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()


def ready(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def process_tree_rss(pattern: str) -> float:
    """Summed RSS (MiB) of the processes whose command line matches `pattern`."""
    total = 0
    for process in psutil.process_iter(["cmdline", "memory_info"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if re.search(pattern, cmdline) and process.info["memory_info"]:
            total += process.info["memory_info"].rss
    return total / 2**20


async def load_level(
    server: Server, sents: Sentences, n_requests: int, args: argparse.Namespace, result: LevelResult
) -> None:
    """`result.clients` coroutines send one sentence per request until `n_requests` are sent
    or --time-limit passes; latencies of successful requests and every status are kept.

    aiohttp rather than httpx: the client shares the 2 cores with the servers, and aiohttp
    spends about half the CPU per request that httpx does, on every system alike.
    """
    texts = sents.texts()
    sent = 0
    start = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=result.clients)
    client_timeout = aiohttp.ClientTimeout(total=args.timeout)
    async with aiohttp.ClientSession(connector=connector, timeout=client_timeout) as session:

        async def one_client(offset: int) -> None:
            nonlocal sent
            while sent < n_requests and time.perf_counter() - start < args.time_limit:
                index = (offset + sent) % len(texts)
                sent += 1
                began = time.perf_counter()
                try:
                    async with session.post(server.url, json=server.body(texts[index])) as response:
                        await response.read()
                        status = response.status
                except TimeoutError:
                    result.statuses["timeout"] += 1
                    continue
                except aiohttp.ClientError as err:
                    result.statuses[type(err).__name__] += 1
                    continue
                result.statuses[status] += 1
                if status == 200:
                    result.latencies.append(time.perf_counter() - began)
                    result.words += len(sents.words[index])

        await asyncio.gather(*(one_client(i * 7919) for i in range(result.clients)))
    result.seconds = time.perf_counter() - start


def run_levels(server: Server, sents: Sentences, args: argparse.Namespace) -> list[LevelResult]:
    results = []
    for clients in args.levels:
        n_requests = args.requests if clients > 1 else args.requests_single
        result = LevelResult(server.system, clients)
        print(f"[{server.system}] {clients} clients, up to {n_requests} requests", flush=True)
        with Sampler(lambda: process_tree_rss(server.rss_pattern), interval=0.25) as rss:
            asyncio.run(load_level(server, sents, n_requests, args, result))
        result.peak_rss_mib = rss.peak
        results.append(result)
    return results


def service_command(
    pipeline: Path, port: int, batch: int, args: argparse.Namespace, metrics_port: int | None
) -> list[str]:
    command = module_command(
        "spacy_bert_ner",
        "serve",
        pipeline,
        f"--port={port}",
        f"--max-batch-size={batch}",
        f"--batch-wait-ms={args.batch_wait_ms}",
        f"--max-queued={args.max_queued}",
    )
    if metrics_port:
        command.append(f"--metrics-port={metrics_port}")
    return command + args.serve_args.split()


def mean_batch_size(metrics_port: int) -> str:
    """Ray Serve's own figure for the batches our replica ran (its Prometheus export)."""
    try:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
    except httpx.HTTPError as err:
        return f"metrics not reachable: {err}"
    sums = [
        float(m) for m in re.findall(r"^ray_serve_actual_batch_size_sum\{[^}]*\} (\S+)", text, re.M)
    ]
    counts = [
        float(m)
        for m in re.findall(r"^ray_serve_actual_batch_size_count\{[^}]*\} (\S+)", text, re.M)
    ]
    if not counts or not sum(counts):
        return "no ray_serve_actual_batch_size samples exported yet"
    return f"{sum(sums) / sum(counts):.1f} texts per batch over {sum(counts):.0f} batches"


def offline_ceiling(pipeline: Path, sents: Sentences, batch: int) -> tuple[float, float]:
    """Words/s of nlp.pipe over the sentences in batches of `batch`, and the median latency of
    one `nlp(text)` call (seconds), in this process with the service's thread count."""
    import spacy
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    nlp = spacy.load(pipeline)
    texts = sents.texts()
    list(nlp.pipe(texts[:64], batch_size=batch))  # warm-up
    start = time.perf_counter()
    for _ in nlp.pipe(texts, batch_size=batch):
        pass
    words_per_second = sents.n_words / (time.perf_counter() - start)
    single = []
    for text in texts[:100]:
        began = time.perf_counter()
        nlp(text)
        single.append(time.perf_counter() - began)
    return words_per_second, statistics.median(single)


def print_results(results: list[LevelResult], ceiling: float, single_latency: float) -> None:
    print()
    rows = []
    for r in results:
        errors = ", ".join(f"{k}: {v}" for k, v in sorted(r.statuses.items(), key=str) if k != 200)
        rate = r.words_per_second
        percentiles = [f"{r.percentile(q):.1f}" for q in (0.5, 0.95, 0.99)]
        rows.append(
            [r.system, r.clients, r.statuses[200], errors or None, f"{rate:.0f}"]
            + [ratio(rate, ceiling), *percentiles, f"{r.peak_rss_mib:.0f}"]
        )
    rows.append(["offline", None, None, None, f"{ceiling:.0f}", "1.00", None, None, None, None])
    header = ["system", "clients", "ok", "errors", "words/s", "x offline", "p50 ms", "p95 ms"]
    print_table([*header, "p99 ms", "RSS MiB"], rows)
    print()
    print(
        f"one nlp(text), median: {single_latency * 1000:.1f} ms; target p50 at 1 client <= "
        f"1.5 x that + 20 ms = {1.5 * single_latency * 1000 + 20:.1f} ms"
    )
    by = {(r.system, r.clients): r for r in results}
    a, b, d = (by.get((s, 64)) for s in ("batched", "unbatched", "handmade"))
    if a and b and d:
        rate = a.words_per_second
        print(
            f"at 64 clients: batched {ratio(rate, ceiling)}x offline (target >= 0.8), "
            f"{ratio(rate, b.words_per_second)}x unbatched, "
            f"{ratio(rate, d.words_per_second)}x handmade (targets >= 3)"
        )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--model",
        help="bert_ner pipeline dir or HF token-classifier dir (default: MiniLM, random head)",
    )
    p.add_argument("--conll", type=Path, default=conll_file("eng.testb"))
    p.add_argument("-n", "--n-sents", type=int, default=1500)
    p.add_argument("--levels", type=lambda s: [int(x) for x in s.split(",")], default=list(LEVELS))
    p.add_argument("--requests", type=int, default=1000, help="requests per level (%(default)s)")
    p.add_argument("--requests-single", type=int, default=100, help="requests at 1 client")
    p.add_argument("--time-limit", type=float, default=60.0, help="seconds per level")
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout per request")
    p.add_argument("--max-batch-size", type=int, default=32)
    p.add_argument("--batch-wait-ms", type=float, default=5.0)
    p.add_argument("--max-queued", type=int, default=256)
    p.add_argument("--systems", default="batched,unbatched,handmade")
    p.add_argument("--serve-args", default="", help="more options for `serve` (a and b)")
    args = p.parse_args(argv)

    sents = read_sentences(args.conll, args.n_sents)
    systems = args.systems.split(",")
    print(
        describe(
            f"{os.cpu_count()} torch threads in every system (the service's replica reserves "
            "all cores, the hand-made server gets OMP_NUM_THREADS, offline nlp.pipe sets them); "
            "the load generator shares the same cores"
        )
    )
    print(
        f"{len(sents.words)} sentences, {sents.n_words} words; levels {args.levels}; max batch "
        f"{args.max_batch_size}"
    )
    results: list[LevelResult] = []
    with tempfile.TemporaryDirectory(prefix="bert_ner_serve_load_") as tmp:
        pipeline, hf_dir, _ = bert_ner_pipeline(args.model, Path(tmp))
        for system, batch in (("batched", args.max_batch_size), ("unbatched", 1)):
            if system not in systems:
                continue
            port = free_port()
            metrics_port = free_port() if system == "batched" else None
            command = service_command(pipeline, port, batch, args, metrics_port)
            with running(command, f"http://127.0.0.1:{port}/readyz", Path(tmp, f"{system}.log")):
                url = f"http://127.0.0.1:{port}/v1/entities"
                server = Server(
                    system, url, lambda text: {"texts": [text]}, "ServeReplica:bert_ner"
                )
                results += run_levels(server, sents, args)
                if metrics_port:
                    time.sleep(12)  # Ray's metrics agent exports every few seconds
                    print(f"[batched] Ray Serve metrics: {mean_batch_size(metrics_port)}")
        if "handmade" in systems:
            port = free_port()
            command = module_command(
                "uvicorn",
                "benchmarks.handwritten_server:app",
                f"--port={port}",
                "--log-level=warning",
            )
            threads = str(os.cpu_count())
            with running(
                command,
                f"http://127.0.0.1:{port}/healthz",
                Path(tmp, "handmade.log"),
                MODEL_DIR=str(hf_dir),
                OMP_NUM_THREADS=threads,
            ):
                url = f"http://127.0.0.1:{port}/ner"
                pattern = r"uvicorn benchmarks\.handwritten_server"
                server = Server("handmade", url, lambda text: {"text": text}, pattern)
                results += run_levels(server, sents, args)
        ceiling, single = offline_ceiling(pipeline, sents, args.max_batch_size)
    print_results(results, ceiling, single)


if __name__ == "__main__":
    main()
