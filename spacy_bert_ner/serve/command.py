"""`python -m spacy_bert_ner serve MODEL`: start the service, run until Ctrl-C or SIGTERM.

Two engines run the same application (`app.build_app`) over the same annotator core:
`local` (the default: one process, uvicorn, no Ray; see `local`) and `ray` (Ray Serve
replicas on this machine or a cluster; see `ray_engine`). Each is imported only when chosen,
so the local engine needs neither Ray nor its start-up.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wasabi import msg

from ..errors import BertNERError, parse_choice
from ..extras import require
from ..pipeline.inference_paths import path_in_use
from ..pipeline.loading import load_pipeline
from .settings import ServeEngine, ServiceSettings

if TYPE_CHECKING:
    from .label_studio_update import LabelStudioSettings


def check_settings(settings: ServiceSettings, host: str, port: int) -> None:
    """One-line errors for settings that cannot work, before anything starts."""
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
    engine: ServeEngine | str = ServeEngine.local,
    host: str = "127.0.0.1",
    port: int = 8000,
    address: str | None = None,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    metrics_port: int | None = None,
    label_studio: LabelStudioSettings | None = None,
) -> None:
    """Serve pipeline `model` over HTTP until the process gets SIGINT or SIGTERM.

    `label_studio` adds Label Studio's ML backend, on the local engine only: its updates
    replace the one pipeline a process holds, and Ray's replicas would each hold their own.

    `cpus_per_replica` 0 gives the process (local) or each replica (ray) an equal share of
    this machine's cores. `address` and `metrics_port` are Ray's (the local engine has its
    own `/metrics`).
    """
    engine = parse_choice(ServeEngine, engine, "engine")
    check_settings(settings, host, port)
    if engine == ServeEngine.local and (address or metrics_port or settings.replicas > 1):
        raise BertNERError(
            "--address, --metrics-port and --replicas are for --engine ray; the local engine "
            "is one process with its own /metrics"
        )
    if label_studio is not None and engine != ServeEngine.local:
        raise BertNERError(
            "--label-studio needs --engine local: an update replaces the one pipeline the "
            "process serves, and each Ray replica holds its own"
        )
    if label_studio is not None and label_studio.update_every < 1:
        raise BertNERError("--label-studio-every must be >= 1")
    settings = settings.with_cores(os.cpu_count() or 1)
    model = str(Path(model).resolve()) if Path(model).exists() else model
    for module in ("fastapi", "uvicorn", "prometheus_client"):
        require(module, "serve")
    if engine == ServeEngine.local:
        from .local import serve_locally

        serve_locally(
            model,
            settings,
            host=host,
            port=port,
            api_key=api_key,
            cors_origins=cors_origins,
            label_studio=label_studio,
        )
    else:
        require("ray.serve", "serve --engine ray")
        from .ray_engine import serve_on_ray

        nlp = load_pipeline(model)  # a model that cannot load fails here, not in a replica
        msg.text(f"inference path: {path_in_use(nlp)}")
        del nlp
        serve_on_ray(
            model,
            settings,
            host=host,
            port=port,
            address=address,
            api_key=api_key,
            cors_origins=cors_origins,
            metrics_port=metrics_port,
        )
    msg.good("stopped")
