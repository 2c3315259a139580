"""`POST /v1/entities` with a JSON body: the answer, and the path most requests take to it.

`answer` is the route's work whichever way a request comes: limits (413), a place in the
service (503), the batcher, then the records (or displaCy's format) with the timing headers.

`plain_json` reaches `answer` without FastAPI. A single-sentence request spends about as much
CPU in FastAPI's routing, pydantic validation and dependency solving as in the rest of its
HTTP handling, and on a small machine every such millisecond is taken from the model's
cores. A body that is plainly valid (`plain_values`: exactly `texts`, a list of strings, or
exactly `documents`, objects with a string `text` and a string, integer or null `id`) and a
query that names at most the format go straight to `answer`. Anything else is handed, body
and all, to the FastAPI route, so that every 400 and 422 keeps FastAPI's wording and the
OpenAPI page still describes the one route.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, Literal, cast

from fastapi import HTTPException
from fastapi.responses import Response
from spacy.tokens import Doc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..annotate.records import dumps, make_record
from .batcher import Annotated
from .service import EntityService, error_response
from .settings import ServiceSettings

Format = Literal["records", "displacy"]

#: The query strings `plain_json` answers itself; any other goes to FastAPI, which parses it.
PLAIN_QUERIES: dict[bytes, Format] = {
    b"": "records",
    b"format=records": "records",
    b"format=displacy": "displacy",
}


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


async def answer(
    service: EntityService, values: Sequence[dict[str, Any]], format: Format
) -> Response:
    """The answer to documents `values` (`{"text": str, "id": str | int | None}` each, as
    validated): one result per document, in order. Raises HTTPException for 413, 503 and a
    pipeline failure (500)."""
    check_limits(values, service.settings)
    with service.holding():
        records = [make_record(line, value, "text", "id") for line, value in enumerate(values, 1)]
        # Every text is a string and every id a string or integer (validated by the caller).
        results = await service.batcher.annotate([cast(str, r.text) for r in records])
    failed = [
        f"{record.id}: {type(result.doc).__name__}: {result.doc}"
        for record, result in zip(records, results, strict=True)
        if isinstance(result.doc, Exception)
    ]
    if failed:
        raise HTTPException(500, detail=f"the pipeline failed on {'; '.join(failed)}")
    docs = [cast(Doc, result.doc) for result in results]
    headers = timing_headers(results)
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


def plain_values(body: bytes) -> list[dict[str, Any]] | None:
    """The documents of a body that the request schema takes as it is, or None for any other
    body (FastAPI then answers it)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON or not UTF-8; nested past the stack
        return None
    if not isinstance(parsed, dict) or len(parsed) != 1:
        return None
    texts = parsed.get("texts")
    if isinstance(texts, list) and all(type(text) is str for text in texts):
        return [{"text": text} for text in texts]
    documents = parsed.get("documents")
    if isinstance(documents, list) and all(map(_plain_document, documents)):
        return [{"id": document.get("id"), "text": document["text"]} for document in documents]
    return None


def _plain_document(document: Any) -> bool:
    if type(document) is not dict or not document.keys() <= {"id", "text"}:
        return False
    return type(document.get("text")) is str and type(document.get("id")) in (str, int, type(None))


async def plain_json(
    service: EntityService, fastapi: ASGIApp, scope: Scope, receive: Receive, send: Send
) -> None:
    """Answer a JSON `POST /v1/entities` (see the module's docstring), or hand it to
    `fastapi` with its body when it is not plainly valid."""
    chunks = []
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    body = b"".join(chunks)
    format = PLAIN_QUERIES.get(scope["query_string"])
    values = plain_values(body) if format is not None else None
    if format is None or values is None:
        await fastapi(scope, _replay(body, receive), send)
        return
    try:
        response = await answer(service, values, format)
    except HTTPException as refused:
        response = error_response(refused)
    await response(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` with the body already read given again first."""
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if replayed:
            return await receive()
        replayed = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
