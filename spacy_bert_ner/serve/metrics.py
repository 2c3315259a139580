"""`/metrics` of the local engine, in Prometheus' text format (prometheus-client).

A registry of its own per application, never prometheus-client's process-wide default: an
application built in a process that has its own metrics (a test, a host program) adds
nothing to theirs. The Ray engine leaves metrics to Ray Serve's own export (`--metrics-port`),
which sums its replicas; a `/metrics` per replica would answer for whichever replica the
proxy picked.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

#: Texts per `nlp.pipe` call: powers of two up to the largest batch anyone sets.
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class ServiceMetrics:
    """Requests by status, request latency, batch sizes, and two gauges read when scraped:
    the texts waiting for a batch and the texts queued or running."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, queued: Callable[[], float], in_flight: Callable[[], float]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "bert_ner_requests",
            "HTTP requests answered, by status code",
            ["status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "bert_ner_request_latency_seconds",
            "Time from a request's arrival to the end of its answer",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "bert_ner_batch_size",
            "Texts per nlp.pipe batch",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        queue = Gauge("bert_ner_queue_depth", "Texts waiting for a batch", registry=self.registry)
        queue.set_function(queued)
        running = Gauge(
            "bert_ner_texts_in_flight", "Texts queued or being annotated", registry=self.registry
        )
        running.set_function(in_flight)

    def observe(self, status: int, seconds: float) -> None:
        self.requests.labels(str(status)).inc()
        self.latency.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)
