"""The HTTP service: a FastAPI ingress on a Ray Serve deployment that batches across requests.

Each text of each request is one call to `EntityService.annotate_batch`, which Ray Serve's
`@serve.batch` gathers with the texts of concurrent requests (up to `max_batch_size`, waiting
at most `batch_wait_ms` for them) into one `nlp.pipe` call: on CPU a transformer runs several
times faster on a batch than text by text. The pipeline runs on one worker thread, off the
event loop, so health checks, 413s and 503s are answered while a batch runs. Each replica
sets its torch threads to its reserved CPUs, so replicas sharing a machine split its cores.

The answer for a text is the record `annotate` writes for it, byte for byte (the same
`records.output_line`), so batch jobs and the service agree.

Nothing a client sends gets a 500: a body that does not fit the schema is a 422 naming the
field, written so that it is valid JSON whatever the body held (`validation_error`), and a
text with lone surrogates is annotated as `annotate` does it (see `records`).
"""

import asyncio
import hmac
import json
import math
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from typing import Any, Literal, cast

import spacy
import torch
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response
from ray import serve
from ray.serve.config import AutoscalingConfig, BackpressureConfig
from spacy.tokens import Doc

from ..about import __version__
from ..annotate.annotator import entity_getter
from ..annotate.records import Record, dumps, entity_records, make_record, output_line
from ..pipeline.loading import bert_ner_pipes, load_pipeline
from .schemas import EntitiesRequest, EntitiesResponse
from .settings import ServiceSettings

WARM_UP_TEXT = "Angela Merkel met Emmanuel Macron in Berlin."
#: No per-request access log lines from the proxy and replicas: on a small machine writing
#: them costs a share of each single-sentence request. Warnings and errors stay.
SERVICE_LOGGING = {"enable_access_log": False, "log_level": "WARNING"}
#: Paths anyone may read even when an API key is set: probes, the demo page, the API docs.
OPEN_PATHS = ("/", "/healthz", "/readyz", "/docs", "/openapi.json")


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


def word_budget_groups(texts: Sequence[str], budget: int) -> list[list[int]]:
    """Indices of `texts` cut, in order, into groups of at most `budget` words (a longer text
    makes a group alone), so one `nlp.pipe` call never holds more than the budget."""
    groups: list[list[int]] = []
    words = 0
    for index, text in enumerate(texts):
        n_words = len(text.split())
        if not groups or words + n_words > budget:
            groups.append([])
            words = 0
        groups[-1].append(index)
        words += n_words
    return groups


def build_application(
    model: str,
    settings: ServiceSettings,
    *,
    api_key: str | None = None,
    cors_origins: Sequence[str] = (),
) -> serve.Application:
    """The Ray Serve application for pipeline `model` (a directory or a package name).

    The model is fixed here: no request can name a path or load code. With `api_key`,
    `/v1/*` needs `Authorization: Bearer <api_key>` (401 otherwise). CORS stays off unless
    `cors_origins` names the origins allowed.
    """
    api = FastAPI(
        title="spacy-bert-ner",
        version=__version__,
        description=f"Named entities from the spaCy pipeline {model!r} (bert_ner).",
    )
    api.exception_handler(RequestValidationError)(validation_error)
    if cors_origins:
        api.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )

    @api.middleware("http")
    async def require_api_key(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        if api_key and request.url.path not in OPEN_PATHS:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {api_key}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return JSONResponse(
                    {"detail": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

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
        graceful_shutdown_timeout_s=30,
        logging_config=SERVICE_LOGGING,
        **replica_options(settings),
    )
    @serve.ingress(api)
    class EntityService:
        """One replica: the pipeline, loaded and warmed up once."""

        def __init__(self) -> None:
            torch.set_num_threads(settings.torch_threads)  # this replica's own process
            self.nlp = load_pipeline(model, gpu_id=0 if settings.gpus_per_replica > 0 else -1)
            self.spans = entity_getter(self.nlp)
            self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bert_ner")
            batching = cast(Any, self.annotate_batch)  # serve.batch's setters, untyped
            batching.set_max_batch_size(settings.max_batch_size)
            batching.set_batch_wait_timeout_s(settings.batch_wait_ms / 1000)
            self.held = 0  # requests in this replica, running or waiting
            self.nlp(WARM_UP_TEXT)
            self.ready = True

        @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005)
        async def annotate_batch(self, texts: list[str]) -> list[Doc | Exception]:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self.worker, self._annotate, texts)

        def _annotate(self, texts: list[str]) -> list[Doc | Exception]:
            """Docs for `texts`; a group that fails is retried text by text, so one bad text
            costs its own request, not the others batched with it."""
            results: list[Doc | Exception] = [ValueError("not annotated")] * len(texts)
            for group in word_budget_groups(texts, settings.batch_words):
                try:
                    docs = self.nlp.pipe([texts[i] for i in group], batch_size=len(group))
                    for index, doc in zip(group, docs, strict=True):
                        results[index] = doc
                except Exception:
                    for index in group:
                        try:
                            results[index] = self.nlp(texts[index])
                        except Exception as err:
                            results[index] = err
            return results

        @api.post(
            "/v1/entities",
            response_model=EntitiesResponse,
            responses={
                400: {"description": "body is not UTF-8 JSON"},
                413: {"description": "too many texts, or a text too long"},
                422: {"description": "body does not fit the schema"},
                503: {"description": "queue full: retry after Retry-After seconds"},
            },
        )
        async def entities(
            self, body: EntitiesRequest, format: Literal["records", "displacy"] = "records"
        ) -> Response:
            """The entities of each document (or text), in request order.

            `format=displacy` gives displaCy's manual format instead (`text`, `ents` with
            `start`/`end`/`label` and the score, `title` = the id), which `displacy.render(...,
            manual=True)` and the demo page draw.
            """
            values = body.as_values()
            check_limits(values, settings)
            if self.held >= settings.replica_capacity:
                raise HTTPException(
                    503,
                    detail=f"busy: {self.held} requests held; retry later",
                    headers={"Retry-After": str(settings.retry_after_s)},
                )
            self.held += 1
            try:
                return await self._entities(values, format)
            finally:
                self.held -= 1

        async def _entities(
            self, values: list[dict[str, Any]], format: Literal["records", "displacy"]
        ) -> Response:
            records = [
                make_record(line, value, "text", "id") for line, value in enumerate(values, 1)
            ]
            # The schema has made every text a string and every id a string or integer.
            texts = [cast(str, record.text) for record in records]
            results = await asyncio.gather(*(self.annotate_batch(text) for text in texts))
            failed = [
                f"{record.id}: {type(result).__name__}: {result}"
                for record, result in zip(records, results, strict=True)
                if isinstance(result, Exception)
            ]
            if failed:
                raise HTTPException(500, detail=f"the pipeline failed on {'; '.join(failed)}")
            docs = cast(list[Doc], results)
            if format == "displacy":
                shown = [self._displacy(r, d) for r, d in zip(records, docs, strict=True)]
                return Response(dumps({"results": shown}), media_type="application/json")
            lines = [
                output_line(record, self.spans(doc)).rstrip("\n")
                for record, doc in zip(records, docs, strict=True)
            ]
            return Response('{"results":[' + ",".join(lines) + "]}", media_type="application/json")

        def _displacy(self, record: Record, doc: Doc) -> dict[str, Any]:
            ents = [
                {
                    "start": e["start_char"],
                    "end": e["end_char"],
                    "label": e["label"],
                    "score": e["score"],
                }
                for e in entity_records(self.spans(doc))
            ]
            return {"text": doc.text, "ents": ents, "title": json.loads(record.id)}

        @api.get("/healthz")
        async def healthz(self) -> dict[str, str]:
            """The replica process is up."""
            return {"status": "ok"}

        @api.get("/readyz")
        async def readyz(self) -> JSONResponse:
            """The pipeline is loaded and has annotated a warm-up text."""
            ready = getattr(self, "ready", False)
            return JSONResponse({"ready": ready}, status_code=200 if ready else 503)

        @api.get("/v1/metadata")
        async def metadata(self) -> dict[str, Any]:
            """Which pipeline answers, with which labels and settings."""
            components = {
                name: {
                    "labels": list(pipe.labels),
                    "model": {
                        key: pipe.model.attrs[key]
                        for key in (
                            "max_length",
                            "stride",
                            "window_batch_size",
                            "int8",
                            "precision",
                            "runtime_precision",
                        )
                    },
                }
                for name, pipe in bert_ner_pipes(self.nlp)
            }
            return {
                "pipeline": {
                    "name": self.nlp.meta.get("name"),
                    "version": self.nlp.meta.get("version"),
                },
                "components": components,
                "versions": {"spacy": spacy.__version__, "spacy_bert_ner": __version__},
                "settings": vars(settings),
            }

        @api.get("/", response_class=HTMLResponse, include_in_schema=False)
        async def demo(self) -> HTMLResponse:
            """A page to try the service: paste text, see the entities."""
            return HTMLResponse(resources.files(__package__).joinpath("demo.html").read_text())

    return EntityService.bind()  # type: ignore[attr-defined]


async def validation_error(request: Request, exc: RequestValidationError) -> Response:
    """FastAPI's 422 (`detail`: a list of errors, each with the `loc` of the field), made valid
    JSON whatever the body held. FastAPI echoes the bad value as `input`, and JSON cannot
    always hold it: `1e400` parses to infinity (as do `NaN` and `Infinity`, which Python's
    JSON reader accepts), a body sent as another content type is raw bytes, and a key or
    string may hold a lone surrogate; FastAPI's own handler then fails with a 500."""
    detail = jsonable_encoder(_json_safe(exc.errors()))
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


def check_limits(values: Sequence[dict[str, Any]], settings: ServiceSettings) -> None:
    """413 for a request over the limits, before any model work."""
    if len(values) > settings.max_texts:
        raise HTTPException(
            413, detail=f"{len(values)} texts in one request; the limit is {settings.max_texts}"
        )
    for index, value in enumerate(values):
        if len(value["text"]) > settings.max_chars:
            raise HTTPException(
                413,
                detail=f"text {index} has {len(value['text'])} characters; the limit is "
                f"{settings.max_chars}",
            )
