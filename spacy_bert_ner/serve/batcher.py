"""Dynamic batching: the texts of concurrent requests gathered into one `nlp.pipe` call.

On CPU a transformer runs several times faster on a batch than text by text, and a service
gets single sentences from many clients. The batcher queues each text with a future; one
asyncio task takes the queue's head as a batch (at most `max_batch_size` texts and
`batch_words` words, waiting at most `batch_wait_ms` after the first text for others to join)
and hands it to one worker thread that runs the annotator, so the event loop stays free to
answer probes, 413s and 503s while a batch runs. While a batch runs the next one gathers, so
under load batches fill without any waiting. The wait is skipped after a batch of one text:
a lone client, whose text no other will join, waits for nothing but its text (the first
batch of a burst then runs alone, and the wait is back from the next one on).

Both engines use it: in the `local` engine's process and inside each Ray Serve replica.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from spacy.tokens import Doc

from ..annotate.annotator import Annotator
from .settings import ServiceSettings


@dataclass(frozen=True)
class Annotated:
    """One text's doc (or the exception the pipeline raised on it), with how long it waited
    in the queue and how long the batch that held it took, in seconds."""

    doc: Doc | Exception
    queued_s: float
    inference_s: float


@dataclass
class _Waiting:
    text: str
    words: int
    future: asyncio.Future[Annotated]
    since: float


class Batcher:
    """Texts in, `Annotated` out, batched across callers (see the module's docstring).

    `on_batch` hears the size of each batch run (for the batch-size histogram), `on_docs` its
    annotated docs (for the quality metrics).
    """

    def __init__(
        self,
        annotator: Annotator,
        settings: ServiceSettings,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.annotator = annotator
        self.settings = settings
        self.on_batch = on_batch
        self.on_docs: Callable[[list[Doc | Exception]], None] | None = None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bert_ner")
        self.queue: deque[_Waiting] = deque()
        self.running = 0  # texts in the batch on the worker thread
        self.last_size = 0  # texts in the batch run last
        self._arrived: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def queued(self) -> int:
        return len(self.queue)

    @property
    def in_flight(self) -> int:
        """Texts queued or being annotated."""
        return len(self.queue) + self.running

    async def batched_docs(self, texts: Sequence[str]) -> list[Annotated]:
        """The result of each text, in order, once the batches holding them have run."""
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._arrived = asyncio.Event()
            self._task = loop.create_task(self._run())
        assert self._arrived is not None
        now = time.perf_counter()
        futures = []
        for text in texts:
            future: asyncio.Future[Annotated] = loop.create_future()
            self.queue.append(_Waiting(text, len(text.split()), future, now))
            futures.append(future)
        self._arrived.set()
        return list(await asyncio.gather(*futures))

    def _take_batch(self) -> list[_Waiting]:
        batch = [self.queue.popleft()]
        words = batch[0].words
        while self.queue and len(batch) < self.settings.max_batch_size:
            if words + self.queue[0].words > self.settings.batch_words:
                break
            words += self.queue[0].words
            batch.append(self.queue.popleft())
        return batch

    async def _gather(self) -> None:
        """Wait until the queue holds a full batch or its head has waited `batch_wait_ms`
        (not at all after a batch of one)."""
        assert self._arrived is not None
        while not self.queue:
            self._arrived.clear()
            await self._arrived.wait()
        if self.last_size <= 1:
            return
        deadline = self.queue[0].since + self.settings.batch_wait_ms / 1000
        while len(self.queue) < self.settings.max_batch_size:
            left = deadline - time.perf_counter()
            if left <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), left)
            except TimeoutError:
                return

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._gather()
            batch = self._take_batch()
            batch = [waiting for waiting in batch if not waiting.future.cancelled()]
            if not batch:
                continue
            self.running = self.last_size = len(batch)
            started = time.perf_counter()
            texts = [waiting.text for waiting in batch]
            try:
                docs = await loop.run_in_executor(
                    self.worker, self.annotator.docs, texts, self.settings.batch_words
                )
            except Exception as err:  # `docs` catches the pipeline's; this is a bug's last net
                docs = [err] * len(batch)
            finally:
                self.running = 0
            took = time.perf_counter() - started
            if self.on_batch is not None:
                self.on_batch(len(batch))
            if self.on_docs is not None:
                self.on_docs(docs)
            for waiting, doc in zip(batch, docs, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(Annotated(doc, started - waiting.since, took))

    def run_alone(self, texts: Sequence[str]) -> list[Doc | Exception]:
        """Annotate `texts` now, outside any batch, on the worker thread, and wait: the
        warm-up. It must run on the thread that runs every batch: torch's OpenMP threads
        belong to the thread that starts them, and a pipeline first run on another thread
        leaves a second pool behind that slows every later batch (one CoNLL sentence on 2
        cores: 16.4 ms against 12.7 ms a call)."""
        return self.worker.submit(self.annotator.docs, texts, self.settings.batch_words).result()

    def close(self) -> None:
        """Stop gathering and let the worker thread end once its batch is done."""
        if self._task is not None:
            self._task.cancel()
        self.worker.shutdown(wait=True, cancel_futures=True)
