"""The HTTP API, one FastAPI application whichever engine runs it.

`build_app` puts the routes over an `EntityService` (`service`: the annotator core, its
batcher, the requests held): `POST /v1/entities` (`entities`, one route for JSON and NDJSON
bodies) and the service's own (`service_router`), behind the API key and the request metrics
(`gate`). The `local` engine runs that app in uvicorn; the `ray` engine builds the same app
inside each Ray Serve replica.

The answer for a text is the record `annotate` writes for it, byte for byte (the same
`Annotator.record_line`), so batch jobs and the service agree. Nothing a client sends gets a
500: a body that does not fit the schema is a 422 naming the field, written so that it is
valid JSON whatever the body held (`validation_error`), and a text with lone surrogates is
annotated as `annotate` does it (see `annotate.records`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib import resources
from typing import Any, cast

from fastapi import APIRouter, FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.requests import Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from ..about import __version__
from ..annotate.records import dumps
from .entities import add_entities_route
from .gate import Gate
from .huggingface import TokenClassificationRequest, add_token_classification_routes
from .label_studio import LabelStudioBackend
from .label_studio_update import LabelStudioSettings, ModelUpdater
from .schemas import EntitiesRequest, openapi_schemas
from .service import EntityService


def build_app(
    service: EntityService,
    model: str,
    *,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
    label_studio: LabelStudioSettings | None = None,
) -> FastAPI:
    """The application over `service`, which serves pipeline `model`; with `label_studio`,
    also Label Studio's ML backend (`label_studio`), whose updates replace the pipeline.

    The model is fixed here: no request can name a path or load code. With `api_key`, every
    path but the probes, the demo page and the API docs needs `Authorization: Bearer
    <api_key>` (401 otherwise). CORS stays off unless `cors_origins` names the origins
    allowed.
    """
    api = FastAPI(
        title="spacy-bert-ner",
        version=__version__,
        description=f"Named entities from the spaCy pipeline {model!r} (bert_ner).",
    )
    api.exception_handler(RequestValidationError)(validation_error)
    # Starlette runs the last middleware added first: CORS answers preflights before the key
    # is asked for (a browser sends none with them).
    api.add_middleware(Gate, service=service, api_key=api_key)
    if cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["x-queue-time", "x-inference-time"],
        )
    add_entities_route(api, service)
    add_token_classification_routes(api, service)
    if label_studio is not None:
        LabelStudioBackend(service, ModelUpdater(service, label_studio)).add_routes(api)
    api.include_router(service_router(service))
    add_request_schemas(api, EntitiesRequest, TokenClassificationRequest)
    return api


def service_router(service: EntityService) -> APIRouter:
    """Everything but the entities: probes, metadata, metrics (when kept), the demo page."""
    router = APIRouter()

    @router.get("/healthz")
    async def healthz() -> dict[str, str]:
        """The process is up."""
        return {"status": "ok"}

    @router.get("/readyz")
    async def readyz() -> JSONResponse:
        """The pipeline is loaded and has annotated a warm-up text."""
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @router.get("/v1/metadata")
    async def metadata() -> dict[str, Any]:
        """Which pipeline answers, with which labels and model settings, and the service's."""
        return service.metadata()

    if service.metrics is not None:
        metrics = service.metrics

        @router.get("/metrics", include_in_schema=False)
        async def prometheus() -> Response:
            """Prometheus' text format: requests by status, latency and batch-size
            histograms, queue depth, texts in flight."""
            return Response(metrics.text(), media_type=metrics.content_type)

    @router.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def demo() -> HTMLResponse:
        """A page to try the service: paste text, see the entities."""
        return HTMLResponse(resources.files(__package__).joinpath("demo.html").read_text())

    return router


def add_request_schemas(api: FastAPI, *models: type[BaseModel]) -> None:
    """Put the schemas of request bodies `models` among the OpenAPI page's components, where
    the routes' bodies refer to them (`entities.REQUEST_BODY`, ...)."""
    generate = api.openapi

    def openapi() -> dict[str, Any]:
        fresh = api.openapi_schema is None
        schema = generate()  # made once, then kept by FastAPI
        if fresh:
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                openapi_schemas(*models)
            )
        return schema

    api.openapi = openapi  # type: ignore[method-assign]


async def validation_error(request: Request, exc: Exception) -> Response:
    """FastAPI's 422 (`detail`: a list of errors, each with the `loc` of the field), made valid
    JSON whatever the body held. FastAPI echoes the bad value as `input`, and JSON cannot
    always hold it: `1e400` parses to infinity (as do `NaN` and `Infinity`, which Python's
    JSON reader accepts), a body sent as another content type is raw bytes, and a key or
    string may hold a lone surrogate; FastAPI's own handler then fails with a 500."""
    errors = cast(RequestValidationError, exc).errors()
    detail = jsonable_encoder(_json_safe(errors))
    return Response(dumps({"detail": detail}), status_code=422, media_type="application/json")


def _json_safe(value: Any) -> Any:
    """`value` with the values JSON cannot hold made strings: infinities and NaN as "inf" and
    "nan", bytes decoded (invalid UTF-8 replaced). `records.dumps` escapes lone surrogates."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value
