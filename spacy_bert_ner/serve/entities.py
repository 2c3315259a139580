"""`POST /v1/entities`: the one route, and the answer every JSON request gets.

The route chooses by content type: an NDJSON body becomes the bulk stream (`bulk`); any
other body is validated (`schemas.entities_request`: one pass of pydantic's JSON reader for a
JSON body) and its documents go to `answer`. `answer` is the work of a JSON request: limits
(413), a place in the service (503), the batcher, then the records (or displaCy's format)
with the timing headers.

The route reads its body itself rather than through a FastAPI body parameter, so a JSON body
is parsed and validated in one pass instead of `json.loads` then pydantic, and an NDJSON body
is read as it streams in; the OpenAPI page gets the body's schemas from `REQUEST_BODY`. Its
handler (`EntitiesRoute`) reads the format itself, so FastAPI solves no parameters for it.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Literal, cast

from fastapi import FastAPI, HTTPException
from fastapi.exceptions import RequestValidationError
from fastapi.requests import Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import TypeAdapter, ValidationError
from spacy.tokens import Doc

from ..annotate.records import Record, dumps, failure_reason, make_record
from .batcher import Annotated
from .bulk import NDJSON, NDJSONStream
from .schemas import EntitiesResponse, entities_request, located
from .service import EntityService
from .settings import ServiceSettings

Format = Literal["records", "displacy"]
FORMAT: TypeAdapter[Format] = TypeAdapter(Format)

RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "one result per document, in request order"},
    400: {"description": "body is not UTF-8 JSON"},
    401: {"description": "an API key is set and the request does not bear it"},
    413: {"description": "too many texts, or a text too long"},
    422: {"description": "body does not fit the schema"},
    503: {"description": "queue full: retry after Retry-After seconds"},
}
REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/EntitiesRequest"}},
        NDJSON: {
            "schema": {
                "type": "string",
                "description": 'bulk: one {"id": ..., "text": ...} per line; the answer is an '
                "NDJSON stream, one record per line as its batch is done, an error record "
                "naming a line that cannot be annotated",
            }
        },
    },
}


def media_type(request: Request) -> str:
    """The request's content type without its parameters, lower-cased."""
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    """`application/json` or an `application/*+json` type, as FastAPI takes them."""
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


class EntitiesRoute(APIRoute):
    """The route with a handler of its own: the endpoint gets the request and the format,
    read here, and FastAPI solves no parameters (the route reads its body itself, and the
    format is its one query parameter). FastAPI still documents the route from the endpoint's
    signature and `openapi_extra`. That solving was a third of the CPU the app spent on a
    one-sentence request outside the model."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        endpoint = self.endpoint

        async def handler(request: Request) -> Response:
            format = request.query_params.get("format", "records")  # the last, as FastAPI's
            try:
                return await endpoint(request, FORMAT.validate_python(format))
            except ValidationError as invalid:
                raise RequestValidationError(located(invalid, "query", "format")) from None

        return handler


def add_entities_route(api: FastAPI, service: EntityService) -> None:
    """`POST /v1/entities` over `service`, on the app's own router (an included router would
    add its own dispatch to every request)."""

    async def entities(request: Request, format: Format = "records") -> Response:
        """The entities of each document (or text), in request order.

        `format=displacy` gives displaCy's manual format instead (`text`, `ents` with
        `start`/`end`/`label` and the score, `title` = the id), which `displacy.render(...,
        manual=True)` and the demo page draw. Headers `x-queue-time` and `x-inference-time`
        say how long the texts waited for a batch and how long their batch took (seconds).
        With `Content-Type: application/x-ndjson`, the bulk stream (one record per line).
        """
        media = media_type(request)
        if media == NDJSON:
            return NDJSONStream(service, request)
        body = entities_request(await request.body(), is_json(media))
        return await answer(service, body.as_values(), format)

    api.router.add_api_route(
        "/v1/entities",
        entities,
        methods=["POST"],
        response_model=EntitiesResponse,
        responses=RESPONSES,
        openapi_extra={"requestBody": REQUEST_BODY},
        route_class_override=EntitiesRoute,
    )


def timing_headers(results: Sequence[Annotated]) -> dict[str, str]:
    """`x-queue-time` and `x-inference-time` in seconds: the longest of the request's texts
    (a request waits for its last text)."""
    queued = max((r.queued_s for r in results), default=0.0)
    inference = max((r.inference_s for r in results), default=0.0)
    return {"x-queue-time": f"{queued:.4f}", "x-inference-time": f"{inference:.4f}"}


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


async def annotated(
    service: EntityService, values: Sequence[dict[str, Any]]
) -> tuple[list[Record], list[Doc], dict[str, str]]:
    """The records of documents `values` (`{"text": str, "id": str | int | None}` each, as
    validated), their docs and the timing headers: the model work of every JSON route.
    Raises HTTPException for 413, 503 and a pipeline failure (500)."""
    check_limits(values, service.settings)
    with service.holding():
        records = [make_record(line, value, "text", "id") for line, value in enumerate(values, 1)]
        # Every text is a string and every id a string or integer (validated by the caller).
        results = await service.batcher.batched_docs([cast(str, r.text) for r in records])
    failed = [
        f"{record.id}: {failure_reason(result.doc)}"
        for record, result in zip(records, results, strict=True)
        if isinstance(result.doc, Exception)
    ]
    if failed:
        raise HTTPException(500, detail=f"the pipeline failed on {'; '.join(failed)}")
    return records, [cast(Doc, result.doc) for result in results], timing_headers(results)


async def answer(
    service: EntityService, values: Sequence[dict[str, Any]], format: Format
) -> Response:
    """The answer to documents `values` (see `annotated`): one result per document, in
    order."""
    records, docs, headers = await annotated(service, values)
    annotator = service.annotator
    if format == "displacy":
        shown = [annotator.displacy(r, d) for r, d in zip(records, docs, strict=True)]
        return Response(dumps({"results": shown}), media_type="application/json", headers=headers)
    lines = [
        annotator.record_line(record, doc).rstrip("\n")
        for record, doc in zip(records, docs, strict=True)
    ]
    return Response(
        '{"results":[' + ",".join(lines) + "]}", media_type="application/json", headers=headers
    )
