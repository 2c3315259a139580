"""Data-parallel training speed: 1 worker x T threads against N workers x T/N threads.

The same compute on the same cores, so the ratio is what data parallelism costs here: the
all-reduce of every step and the padding of unequal shards. Each worker is a spawned
process in a torch.distributed gloo group running bert_ner's update step (cpu.cfg's
optimizer) with `training.gradients.GradientAverager` hooked in exactly as under
`python -m spacy_bert_ner train --workers N` (Ray Train only starts these processes).
The global batch is the same for every row: N workers take batch / N sentences each.
"""

import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from .children import free_port
from .inputs import config_file, read_sentences


def _worker(rank: int, workers: int, port: int, settings: dict[str, Any], results: Any) -> None:
    import spacy
    from spacy.tokens import Doc
    from spacy.training import Example
    from spacy.util import load_config, registry

    from spacy_bert_ner.training.gradients import GradientAverager

    torch.set_num_threads(settings["threads"])
    dist.init_process_group("gloo", f"tcp://127.0.0.1:{port}", rank=rank, world_size=workers)
    config = load_config(config_file("cpu.cfg"))
    config["components"]["bert_ner"]["model"]["name"] = settings["model"]
    nlp = spacy.blank("en")
    nlp.add_pipe("bert_ner", config={"model": config["components"]["bert_ner"]["model"]})
    optimizer = registry.resolve(config["training"])["optimizer"]
    sentences = settings["sentences"]
    examples = [
        Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags))
        for words, tags in sentences
    ]
    nlp.initialize(lambda: examples, sgd=optimizer)
    averager = GradientAverager(nlp, ["bert_ner"], torch.device("cpu"))
    averager.broadcast_weights()
    averager.install()
    per_worker = settings["batch"] // workers
    batches = [
        examples[start + rank : start + settings["batch"] : workers][:per_worker]
        for start in range(0, len(examples), settings["batch"])
    ]
    for batch in batches[:2]:  # warm-up
        nlp.update(batch, sgd=optimizer)
    dist.barrier()
    start, words = time.perf_counter(), 0
    for batch in batches[2 : 2 + settings["steps"]]:
        nlp.update(batch, sgd=optimizer)
        words += sum(len(eg.reference) for eg in batch)
    seconds = time.perf_counter() - start
    totals = torch.tensor([float(words), seconds])
    dist.all_reduce(totals[:1])
    dist.all_reduce(totals[1:], op=dist.ReduceOp.MAX)
    if rank == 0:
        results.put((float(totals[0]), float(totals[1])))
    dist.destroy_process_group()


def measure(workers: int, cores: int, settings: dict[str, Any]) -> tuple[float, float]:
    """(words, seconds) of `steps` global steps on `workers` processes sharing `cores`."""
    context = mp.get_context("spawn")
    results = context.SimpleQueue()
    settings = {**settings, "threads": max(1, cores // workers)}
    mp.start_processes(
        _worker,
        args=(workers, free_port(), settings, results),
        nprocs=workers,
        join=True,
        start_method="spawn",
    )
    return results.get()


def run(
    conll: Path, model: str, worker_counts: list[int], steps: int, batch: int, rounds: int
) -> list[list[object]]:
    """Rows of the speed table: words/s per worker count, median of `rounds`, and the
    median of each round's ratio to the first count: rounds run back to back, so a drift of
    the machine between rounds cancels out of a round's ratio but not out of the medians'."""
    sents = read_sentences(conll, limit=(steps + 2) * batch)
    settings = {
        "model": model,
        "steps": steps,
        "batch": batch,
        "sentences": list(zip(sents.words, sents.tags, strict=True)),
    }
    cores = max(worker_counts)
    speeds: dict[int, list[float]] = {n: [] for n in worker_counts}
    for _ in range(rounds):  # interleaved, so drifts of the machine hit every row alike
        for n in worker_counts:
            words, seconds = measure(n, cores, settings)
            speeds[n].append(words / seconds)
            print(f"{n} worker(s): {words:.0f} words in {seconds:.1f} s", flush=True)
    base = speeds[worker_counts[0]]
    rows: list[list[object]] = []
    for n in worker_counts:
        ratio = statistics.median(s / b for s, b in zip(speeds[n], base, strict=True))
        rounds_text = ", ".join(f"{s:.0f}" for s in speeds[n])
        rows.append([f"{n} worker(s) x {max(1, cores // n)} thread(s)", rounds_text])
        rows[-1] += [f"{statistics.median(speeds[n]):.0f}", f"{ratio:.2f}"]
    return rows
