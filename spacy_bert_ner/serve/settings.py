"""What the `serve` command sets: batching, limits, resources, for both engines. The one
place of their defaults (the CLI reads them from here). Kept free of Ray and FastAPI imports
so the CLI can offer the options without importing the service."""

from dataclasses import dataclass, replace
from enum import StrEnum

#: Environment variable that holds the API key; unset or empty: no key is asked for.
API_KEY_VARIABLE = "BERT_NER_API_KEY"
#: JSON text may spell a character as a 6-byte escape; an NDJSON line longer than
#: `max_chars` such characters and the rest of its record cannot hold a text within
#: `max_chars`, so it is refused without being kept (`ServiceSettings.max_line_bytes`).
BYTES_PER_CHAR = 6
LINE_OVERHEAD = 1024


class ServeEngine(StrEnum):
    """What runs the service (the CLI's choices): `local`, one process with uvicorn and no
    Ray; `ray`, Ray Serve replicas on this machine or a cluster."""

    local = "local"
    ray = "ray"


@dataclass(frozen=True)
class ServiceSettings:
    """How the service batches, what it refuses, and what each replica may use.

    max_batch_size: texts per `nlp.pipe` call, gathered across concurrent requests (1 turns
        batching off).
    batch_wait_ms: how long the first text of a batch waits for others to join it.
    batch_words: word budget per forward batch: a batch of long texts is cut into `nlp.pipe`
        calls of at most this many words, which bounds memory and the latency of the rest.
    max_texts / max_chars: per request and per text; beyond them the request gets 413 before
        any model work.
    max_queued: requests a replica holds waiting beyond the batch it runs; beyond them it
        answers 503 with Retry-After at once, so the queue is never unbounded.
    replicas / min_replicas / max_replicas (ray engine): a fixed count, or autoscaling
        bounds when `max_replicas` is set.
    cpus_per_replica: torch threads of the process (local) or of each replica, which Ray also
        reserves (ray), so replicas sharing a machine do not oversubscribe its cores; 0: the
        machine's cores shared equally among the replicas (see `with_cores`).
    gpus_per_replica: a GPU fraction per replica (0: CPU); the local engine uses the first
        GPU when it is above 0.
    """

    max_batch_size: int = 64
    batch_wait_ms: float = 2.0
    batch_words: int = 4096
    max_texts: int = 64
    max_chars: int = 20_000
    max_queued: int = 256
    replicas: int = 1
    min_replicas: int = 1
    max_replicas: int | None = None
    cpus_per_replica: float = 0.0
    gpus_per_replica: float = 0.0
    retry_after_s: int = 1

    def with_cores(self, cores: int) -> "ServiceSettings":
        """These settings with `cpus_per_replica` 0 made an equal share of `cores`."""
        if self.cpus_per_replica > 0:
            return self
        share = cores // (self.max_replicas or self.replicas)
        return replace(self, cpus_per_replica=float(max(1, share)))

    @property
    def max_line_bytes(self) -> int:
        """The longest NDJSON line the bulk stream keeps (see `BYTES_PER_CHAR`)."""
        return self.max_chars * BYTES_PER_CHAR + LINE_OVERHEAD

    @property
    def torch_threads(self) -> int:
        return max(1, int(self.cpus_per_replica))

    @property
    def replica_capacity(self) -> int:
        """Requests a replica holds: a batch running, `max_queued` waiting for the next."""
        return self.max_batch_size + self.max_queued

    @property
    def max_ongoing_requests(self) -> int:
        """What Ray Serve lets through to a replica: more than it holds, so the surplus
        reaches it and gets its 503 at once. Requests Ray Serve itself must queue wait in
        its router, which retries with growing back-off: on 2 cores a queue there cut the
        service to a few requests per second, hence the replica's own, immediate refusal."""
        return 2 * self.replica_capacity + 16
