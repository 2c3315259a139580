"""`python -m spacy_bert_ner serve MODEL`: start the service, run until Ctrl-C or SIGTERM.

Without `address`, a local Ray is started for the service (and stopped with it); with one
(`auto`, or `ray://...`), the application is deployed on that cluster and the model must be
readable at the same path on its nodes. Stopping deletes the application: Ray Serve lets each
replica finish the requests it holds (up to `graceful_shutdown_timeout_s`) before it goes.
"""

import os
import signal
import threading
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import ray
from ray import serve
from wasabi import msg

from ..errors import BertNERError
from ..pipeline.loading import load_pipeline
from .app import SERVICE_LOGGING, build_application
from .settings import ServiceSettings

APP_NAME = "bert_ner"


def check_settings(settings: ServiceSettings, host: str, port: int) -> None:
    """One-line errors for settings that cannot work, before Ray starts."""
    for name in ("max_batch_size", "batch_words", "max_texts", "max_chars", "replicas"):
        if getattr(settings, name) < 1:
            raise BertNERError(f"--{name.replace('_', '-')} must be >= 1")
    if settings.max_queued < 0 or settings.batch_wait_ms < 0:
        raise BertNERError("--max-queued and --batch-wait-ms must be >= 0")
    if settings.max_replicas is not None and settings.max_replicas < settings.min_replicas:
        raise BertNERError("--max-replicas must be >= --min-replicas")
    if not 0 < port < 65536:
        raise BertNERError(f"--port must be between 1 and 65535, not {port}")
    if not host:
        raise BertNERError("--host must not be empty")


def serve_pipeline(
    model: str,
    settings: ServiceSettings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    metrics_port: int | None = None,
) -> None:
    """Serve pipeline `model` over HTTP until the process gets SIGINT or SIGTERM.

    `cpus_per_replica` 0 gives each replica an equal share of this machine's cores. The
    pipeline is loaded here once first, so a model that cannot load fails as one line rather
    than as a replica's traceback inside Ray.
    """
    check_settings(settings, host, port)
    if settings.cpus_per_replica <= 0:
        share = (os.cpu_count() or 1) // (settings.max_replicas or settings.replicas)
        settings = replace(settings, cpus_per_replica=float(max(1, share)))
    model = str(Path(model).resolve()) if Path(model).exists() else model
    load_pipeline(model)  # a model that cannot load fails here, as one line
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
    msg.good("stopped")
