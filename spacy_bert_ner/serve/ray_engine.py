"""The `ray` engine: the same application as a Ray Serve deployment, for replicas, autoscaling
and clusters.

Each replica is a thin wrapper: its constructor sets the replica's torch threads and starts an
`EntityService` (the annotator core and the batcher, exactly as the local engine runs them),
and `__serve_build_asgi_app__` hands Ray Serve the app `build_app` makes over it. Ray Serve
adds what one process cannot: several replicas, autoscaling, a cluster (`address`), GPU
fractions, backpressure in its router, and replacing a replica that dies.

Without `address`, a local Ray is started for the service (and stopped with it); with one
(`auto`, or `ray://...`), the application is deployed on that cluster and the model must be
readable at the same path on its nodes. Stopping deletes the application: Ray Serve lets each
replica finish the requests it holds (up to `GRACEFUL_S`) before it goes.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from typing import Any

import ray
import torch
from fastapi import FastAPI
from ray import serve
from ray.serve.config import AutoscalingConfig, BackpressureConfig
from wasabi import msg

from .app import build_app
from .service import EntityService
from .settings import ServiceSettings

APP_NAME = "bert_ner"
GRACEFUL_S = 30
#: No per-request access log lines from the proxy and replicas: on a small machine writing
#: them costs a share of each single-sentence request. Warnings and errors stay.
SERVICE_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}


def replica_options(settings: ServiceSettings) -> dict[str, Any]:
    """A fixed number of replicas, or autoscaling between bounds when `max_replicas` is set."""
    if settings.max_replicas is None:
        return {"num_replicas": settings.replicas}
    return {
        "autoscaling_config": AutoscalingConfig(
            min_replicas=settings.min_replicas,
            max_replicas=settings.max_replicas,
            target_ongoing_requests=settings.max_batch_size,
        )
    }


def build_application(
    model: str,
    settings: ServiceSettings,
    *,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
) -> serve.Application:
    """The Ray Serve application for pipeline `model`, one `build_app` per replica."""

    @serve.deployment(
        name="bert_ner",
        max_ongoing_requests=settings.max_ongoing_requests,
        max_queued_requests=settings.replica_capacity,
        backpressure_config=BackpressureConfig(
            status_code=503, retry_after_s=settings.retry_after_s
        ),
        ray_actor_options={
            "num_cpus": settings.cpus_per_replica,
            "num_gpus": settings.gpus_per_replica,
        },
        graceful_shutdown_timeout_s=GRACEFUL_S,
        logging_config=SERVICE_LOGGING,
        **replica_options(settings),
    )
    @serve.ingress()
    class EntityReplica:
        """One replica: the service, loaded and warmed up once, behind the shared app."""

        def __init__(self) -> None:
            torch.set_num_threads(settings.torch_threads)  # this replica's own process
            self.service = EntityService.start(model, settings, metrics=False)

        def __serve_build_asgi_app__(self) -> FastAPI:
            return build_app(self.service, model, api_key=api_key, cors_origins=cors_origins)

    return EntityReplica.bind()  # type: ignore[attr-defined]


def serve_on_ray(
    model: str,
    settings: ServiceSettings,
    *,
    host: str,
    port: int,
    address: str | None,
    api_key: str | None,
    cors_origins: Sequence[str],
    metrics_port: int | None,
) -> None:
    """Deploy the application on Ray (local or `address`) and keep it until SIGINT/SIGTERM."""
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(
            address=address,
            include_dashboard=False,
            _metrics_export_port=metrics_port,
            configure_logging=False,
            log_to_driver=False,
            # Ray starts its workers at nice 15, which suits batch jobs; a service's replicas
            # and HTTP proxy answer people and must not yield the cores to everything else.
            # (A cluster joined with `address` keeps the settings it was started with.)
            _system_config={"worker_niceness": 0} if address is None else None,
        )
    # After ray.init, which installs a SIGTERM handler of its own that ends the process at
    # once; a signal during the start-up below stops the service as soon as it is up.
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        serve.start(http_options={"host": host, "port": port}, logging_config=SERVICE_LOGGING)
        app = build_application(model, settings, api_key=api_key, cors_origins=cors_origins)
        serve.run(app, name=APP_NAME, route_prefix="/", blocking=False)
        msg.good(f"serving {model} at http://{host}:{port}/ (API docs: /docs); Ctrl-C stops")
        if metrics_port is not None and started_ray:
            msg.text(f"Prometheus metrics: http://127.0.0.1:{metrics_port}/metrics")
        stop.wait()
        msg.text("stopping: finishing the requests in flight")
        serve.delete(APP_NAME)
        if started_ray:  # on a cluster we joined, other applications may be served
            serve.shutdown()
    finally:
        if started_ray:
            ray.shutdown()
