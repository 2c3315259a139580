"""`/metrics` of the local engine, in Prometheus' text format (prometheus-client).

A registry of its own per application, never prometheus-client's process-wide default: an
application built in a process that has its own metrics (a test, a host program) adds
nothing to theirs. The Ray engine leaves metrics to Ray Serve's own export (`--metrics-port`),
which sums its replicas; a `/metrics` per replica would answer for whichever replica the
proxy picked.

For a pipeline that `calibrate --method features` fitted, the entities answered also feed a
`QualityMonitor` (`evaluation.drift`): per label (and `overall`) the estimated precision of
the last entities, their share unseen in training, and the drift score (PSI) of their scores
against dev, with an alarm gauge, read when scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from spacy.language import Language
from spacy.tokens import Doc, Span

from ..evaluation.drift import QualityMonitor
from ..pipeline.loading import bert_ner_pipes
from ..pipeline.spans import SCORE_EXTENSION

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

    def watch_quality(
        self, nlp: Language, spans: Callable[[Doc], Sequence[Span]]
    ) -> Callable[[list[Doc | Exception]], None] | None:
        """Register the quality gauges of `nlp`'s bert_ner and return what feeds them the
        annotated docs; None (no gauges) unless it has one bert_ner with a dev reference."""
        pipes = bert_ner_pipes(nlp)
        reference = (pipes[0][1].cfg["calibrator"] or {}).get("reference") if pipes else None
        if len(pipes) != 1 or reference is None:
            return None
        pipe, monitor = pipes[0][1], QualityMonitor(reference)
        self.registry.register(QualityCollector(monitor))

        def feed(docs: list[Doc | Exception]) -> None:
            for doc in docs:
                if isinstance(doc, Exception):
                    continue
                for span in spans(doc):
                    score = span._.get(SCORE_EXTENSION)
                    if score is not None:
                        monitor.observe(span.label_, score, pipe.mentions.seen(span))

        return feed

    def observe(self, status: int, seconds: float) -> None:
        self.requests.labels(str(status)).inc()
        self.latency.observe(seconds)

    def text(self) -> bytes:
        return generate_latest(self.registry)


class QualityCollector:
    """The `QualityMonitor`'s figures as gauges labelled by entity label, read when scraped."""

    GAUGES = (
        ("bert_ner_estimated_precision", "estimated_precision",
         "Mean calibrated score of the last entities: their expected share right"),
        ("bert_ner_unseen_entity_share", "unseen_share",
         "Share of the last entities whose text and label training never had"),
        ("bert_ner_score_drift_psi", "psi",
         "Population stability index of the last entities' scores against dev"),
        ("bert_ner_drift_alarm", "alarm", "1 when the drift score is past its alarm level"),
    )  # fmt: skip

    def __init__(self, monitor: QualityMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterator[GaugeMetricFamily]:
        figures = {key: self.monitor.figures(key) for key in self.monitor.keys()}
        for name, field, help_text in self.GAUGES:
            family = GaugeMetricFamily(name, help_text, labels=["label"])
            for key, found in figures.items():
                if found[field] is not None:
                    family.add_metric([key], float(found[field]))
            yield family
