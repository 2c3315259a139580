"""NDJSON bulk: `POST /v1/entities` with `Content-Type: application/x-ndjson`.

One `{"id": ..., "text": ...}` per line in, one record per line out, each written as soon as
the batch holding it is done (so in order of completion, the id saying which is which). The
body is read as the answer is written, with at most `2 * max_batch_size` documents of the
request in the batcher at a time: a client can send thousands of documents in one request and
the server holds a window of them, not the request. A line that cannot be annotated (not
JSON, no text, a text over `max_chars`, a pipeline failure) becomes the error record
`annotate` writes for it, `{"id": ..., "line": N, "error": "why"}`; the other lines are still
answered.

The route (`entities`) answers such a request with an `NDJSONStream`, which reads the body
through Starlette's `Request.stream` while it writes. It is Starlette's `StreamingResponse`
less the task that listens for the client's disconnect: that task reads the channel the body
is still arriving on, and `Request.stream` raises `ClientDisconnect` itself. A client should
read the answer while it sends (curl, aiohttp and httpx's async client with a streamed body
do): records start coming back before the body is all sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi.requests import Request
from fastapi.responses import StreamingResponse
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from ..annotate.records import NO_ID, Record, error_line, parse_line
from .service import EntityService

NDJSON = "application/x-ndjson"


async def body_lines(
    chunks: AsyncIterator[bytes], max_bytes: int
) -> AsyncIterator[tuple[int, bytes | None]]:
    """The lines of the request body with their 1-based numbers, as its `chunks` arrive; a
    line over `max_bytes` is dropped as it streams in and given as None."""
    buffer = bytearray()
    line_no = 0
    overlong = False
    async for chunk in chunks:
        buffer += chunk
        *lines, rest = bytes(buffer).split(b"\n")
        buffer = bytearray(rest)
        for raw in lines:
            line_no += 1
            yield line_no, None if overlong else raw
            overlong = False
        if len(buffer) > max_bytes:
            overlong, buffer = True, bytearray()
    if buffer or overlong:
        yield line_no + 1, None if overlong else bytes(buffer)


async def _annotated_line(service: EntityService, record: Record) -> bytes:
    (result,) = await service.batcher.batched_docs([str(record.text)])
    if isinstance(result.doc, Exception):
        return error_line(record.failed(result.doc)).encode()
    return service.annotator.record_line(record, result.doc).encode()


def _line_record(line_no: int, raw: bytes | None, service: EntityService) -> Record | None:
    """The record of one body line (None for a blank one), refused when over the limits."""
    settings = service.settings
    if raw is None:
        return Record(line_no, NO_ID, None, f"line longer than {settings.max_line_bytes} bytes")
    if not raw.strip():
        return None
    record = parse_line(line_no, raw, "text", "id")
    if record.text is not None and len(record.text) > settings.max_chars:
        error = f"text has {len(record.text)} characters; the limit is {settings.max_chars}"
        return Record(record.line, record.id, None, error)
    return record


async def output_lines(
    service: EntityService, lines: AsyncIterator[tuple[int, bytes | None]]
) -> AsyncIterator[bytes]:
    """The records of the lines, each as soon as it is done, with a bounded window in flight."""
    window = 2 * service.settings.max_batch_size
    pending: set[asyncio.Task[bytes]] = set()
    try:
        async for line_no, raw in lines:
            record = _line_record(line_no, raw, service)
            if record is None:
                continue
            if record.text is None:
                yield error_line(record).encode()
                continue
            pending.add(asyncio.ensure_future(_annotated_line(service, record)))
            if len(pending) >= window:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                yield b"".join(task.result() for task in done)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            yield b"".join(task.result() for task in done)
    finally:
        for task in pending:
            task.cancel()


class NDJSONStream(StreamingResponse):
    """The answer to one NDJSON request, streamed while its body is read (see the module's
    docstring). Making one takes a place in `service` (503 when it is full); sending it gives
    the place back, however the stream ends."""

    def __init__(self, service: EntityService, request: Request) -> None:
        lines = body_lines(request.stream(), service.settings.max_line_bytes)
        super().__init__(output_lines(service, lines), media_type=NDJSON)
        self.service = service
        service.admit()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        except ClientDisconnect:
            return
        finally:
            self.service.release()
