"""What every route works with: the annotator core, the batcher feeding it, the requests held.

The count of requests held bounds the queue: beyond `replica_capacity` (a batch running and
`max_queued` waiting) a request gets 503 with `Retry-After` at once, on either engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import HTTPException

from ..annotate.annotator import Annotator
from .batcher import Batcher
from .metrics import ServiceMetrics
from .settings import ServiceSettings

WARM_UP_TEXT = "Angela Merkel met Emmanuel Macron in Berlin."


class EntityService:
    """The annotator, its batcher and the requests held: what every route works with.

    With `metrics`, `/metrics` counts requests, latencies and batch sizes (local engine), and
    for a pipeline calibrated with features, the quality of its entities (`metrics`).
    """

    def __init__(self, annotator: Annotator, settings: ServiceSettings, *, metrics: bool) -> None:
        self.annotator = annotator
        self.settings = settings
        self.held = 0  # requests running or waiting; beyond `replica_capacity`: 503
        self.ready = False
        self.metrics: ServiceMetrics | None = None
        self.batcher = Batcher(annotator, settings)
        if metrics:
            self.metrics = ServiceMetrics(
                queued=lambda: self.batcher.queued, in_flight=lambda: self.batcher.in_flight
            )
            self.batcher.on_batch = self.metrics.batch_size.observe
            self.batcher.on_docs = self.metrics.watch_quality(annotator.nlp, annotator.spans)

    @classmethod
    def start(cls, model: str, settings: ServiceSettings, *, metrics: bool) -> EntityService:
        """Load pipeline `model` and annotate a warm-up text, so that the first request does
        not pay for lazy loading and `/readyz` answers only when the pipeline works."""
        annotator = Annotator.load(model, gpu=settings.gpus_per_replica > 0)
        service = cls(annotator, settings, metrics=metrics)
        (warm_up,) = service.batcher.run_alone([WARM_UP_TEXT])
        if isinstance(warm_up, Exception):
            raise warm_up
        service.ready = True
        return service

    def admit(self) -> None:
        """Hold one more request, or refuse it with 503 and `Retry-After` when full."""
        if self.held >= self.settings.replica_capacity:
            raise HTTPException(
                503,
                detail=f"busy: {self.held} requests held; retry later",
                headers={"Retry-After": str(self.settings.retry_after_s)},
            )
        self.held += 1

    def release(self) -> None:
        self.held -= 1

    @contextmanager
    def holding(self) -> Iterator[None]:
        self.admit()
        try:
            yield
        finally:
            self.release()

    def metadata(self) -> dict[str, Any]:
        return {**self.annotator.metadata(), "settings": vars(self.settings)}

    def close(self) -> None:
        self.batcher.close()
