"""The `local` engine: one process, uvicorn running the application, no Ray.

The pipeline is loaded before uvicorn starts, so a model that cannot load fails as one line
and `/readyz` answers 200 from the first request on. SIGTERM or Ctrl-C: uvicorn stops
accepting connections, lets the requests in flight finish (up to `GRACEFUL_S`), then the
batcher's worker thread ends and the process exits 0.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence

import torch
import uvicorn
from wasabi import msg

from ..pipeline.inference_paths import path_in_use
from .app import build_app
from .label_studio_update import LabelStudioSettings
from .service import EntityService
from .settings import ServiceSettings

GRACEFUL_S = 30


def serve_locally(
    model: str,
    settings: ServiceSettings,
    *,
    host: str,
    port: int,
    api_key: str | None,
    cors_origins: Sequence[str],
    label_studio: LabelStudioSettings | None = None,
) -> None:
    """Serve `model` in this process until SIGINT or SIGTERM; with `label_studio`, also as
    Label Studio's ML backend (this engine only: one process holds the one model it updates)."""
    torch.set_num_threads(settings.torch_threads)  # the serve command's own process
    service = EntityService.start(model, settings, metrics=True)
    app = build_app(
        service, model, api_key=api_key, cors_origins=cors_origins, label_studio=label_studio
    )
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        # No per-request access log: on a small machine writing it costs a share of each
        # single-sentence request. Warnings and errors stay.
        access_log=False,
        log_level="warning",
        lifespan="off",
        timeout_graceful_shutdown=GRACEFUL_S,
    )
    server = uvicorn.Server(config)
    # uvicorn takes SIGINT and SIGTERM while it runs and raises them again once it has shut
    # down gracefully, to the handlers it found: these, so the process ends with our 0 and
    # not with the signal's default (killed by SIGTERM, or a KeyboardInterrupt traceback).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: None)
    msg.good(f"serving {model} at http://{host}:{port}/ (API docs: /docs); Ctrl-C stops")
    msg.text(f"inference path: {path_in_use(service.annotator.nlp)}")
    msg.text(f"Prometheus metrics: http://{host}:{port}/metrics")
    if label_studio is not None:
        msg.text(f"Label Studio ML backend: http://{host}:{port}/label-studio")
    try:
        server.run()
    finally:
        msg.text("stopped taking requests; the ones in flight are done")
        service.close()
    if not server.started:
        raise SystemExit(1)  # uvicorn has said why (the port is taken, ...)
