"""The dynamic batcher without HTTP: texts of concurrent callers share batches within the
size and word limits, each caller gets its own texts back in order."""

import asyncio
import threading
import time
from pathlib import Path

import pytest

from spacy_bert_ner.annotate.annotator import Annotator
from spacy_bert_ner.serve.batcher import Batcher
from spacy_bert_ner.serve.service import EntityService
from spacy_bert_ner.serve.settings import ServiceSettings

TEXTS = ["angela merkel met macron in paris", "the berlin of angela", "paris and berlin met merkel"]


@pytest.fixture(scope="module")
def annotator(trained_tiny: Path) -> Annotator:
    return Annotator.load(str(trained_tiny))


def run_callers(batcher: Batcher, requests: list[list[str]]) -> list[list]:
    async def main() -> list[list]:
        try:
            return await asyncio.gather(*(batcher.batched_docs(texts) for texts in requests))
        finally:
            assert batcher.in_flight == 0
            batcher.close()

    return asyncio.run(main())


def test_concurrent_callers_share_batches_up_to_the_size(annotator):
    sizes: list[int] = []
    settings = ServiceSettings(max_batch_size=4, batch_wait_ms=50)
    batcher = Batcher(annotator, settings, on_batch=sizes.append)
    requests = [[TEXTS[i % 3]] * (1 + i % 2) for i in range(10)]  # 15 texts
    results = run_callers(batcher, requests)
    for texts, answered in zip(requests, results, strict=True):
        assert [result.doc.text for result in answered] == texts
        assert all(r.queued_s >= 0 and r.inference_s > 0 for r in answered)
    assert sum(sizes) == 15 and max(sizes) == 4  # batched across callers, never beyond 4


def test_a_batch_stops_at_the_word_budget(annotator):
    sizes: list[int] = []
    settings = ServiceSettings(max_batch_size=64, batch_wait_ms=50, batch_words=12)
    batcher = Batcher(annotator, settings, on_batch=sizes.append)
    results = run_callers(batcher, [[text] for text in TEXTS * 4])  # 4 or 5 words each
    assert len(results) == 12
    assert sum(sizes) == 12 and max(sizes) <= 3  # 12 words hold at most 3 of these texts


def test_unbatched_runs_one_text_at_a_time(annotator):
    sizes: list[int] = []
    batcher = Batcher(annotator, ServiceSettings(max_batch_size=1), on_batch=sizes.append)
    run_callers(batcher, [[text] for text in TEXTS])
    assert sizes == [1, 1, 1]


def test_a_lone_caller_does_not_wait_for_others(annotator):
    """After a batch of one, the next text runs at once rather than after `batch_wait_ms`."""
    batcher = Batcher(annotator, ServiceSettings(batch_wait_ms=2000))

    async def one_by_one() -> float:
        await batcher.batched_docs(TEXTS[:1])  # the first batch: nothing ran before it
        started = time.perf_counter()
        for text in TEXTS:
            await batcher.batched_docs([text])
        batcher.close()
        return time.perf_counter() - started

    assert asyncio.run(one_by_one()) < 2.0  # three texts, none waiting 2 s


def test_the_warm_up_runs_on_the_thread_every_batch_runs_on(trained_tiny, monkeypatch):
    """torch's OpenMP threads belong to the thread that starts them: a warm-up on the main
    thread would leave a second pool that slows every later batch."""
    threads: list[str] = []
    docs = Annotator.docs

    def recording(self, texts, budget):
        threads.append(threading.current_thread().name)
        return docs(self, texts, budget)

    monkeypatch.setattr(Annotator, "docs", recording)
    service = EntityService.start(str(trained_tiny), ServiceSettings(), metrics=False)
    try:
        (answered,) = asyncio.run(service.batcher.batched_docs(TEXTS[:1]))
    finally:
        service.close()
    assert answered.doc.text == TEXTS[0]
    assert len(threads) == 2 and len(set(threads)) == 1 and threads[0].startswith("bert_ner")
