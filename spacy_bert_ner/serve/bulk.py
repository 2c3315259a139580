"""NDJSON bulk: `POST /v1/entities` with `Content-Type: application/x-ndjson`.

One `{"id": ..., "text": ...}` per line in, one record per line out, each written as soon as
the batch holding it is done (so in order of completion, the id saying which is which). The
body is read as the answer is written, with at most `2 * max_batch_size` documents of the
request in the batcher at a time: a client can send thousands of documents in one request and
the server holds a window of them, not the request. A line that cannot be annotated (not
JSON, no text, a text over `max_chars`, a pipeline failure) becomes the error record
`annotate` writes for it, `{"id": ..., "line": N, "error": "why"}`; the other lines are still
answered.

A plain ASGI handler, not a FastAPI route: a route would read the whole body before it runs,
and Starlette's `StreamingResponse` listens for the client's disconnect on the same channel
the body arrives on. A client should read the answer while it sends (curl, aiohttp and httpx's
async client with a streamed body do): records start coming back before the body is all sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

from fastapi import HTTPException
from starlette.types import Receive, Scope, Send

from ..annotate.records import NO_ID, Record, error_line, parse_line
from .service import EntityService, error_response

#: JSON text may spell a character as a 6-byte escape; beyond this a line cannot hold a text
#: within `max_chars`, so it is refused without being kept.
BYTES_PER_CHAR = 6
LINE_OVERHEAD = 1024


class ClientGone(Exception):
    """The client disconnected before its body was read."""


async def body_lines(receive: Receive, max_bytes: int) -> AsyncIterator[tuple[int, bytes | None]]:
    """The lines of the request body with their 1-based numbers, as they arrive; a line over
    `max_bytes` is dropped as it streams in and given as None."""
    buffer = bytearray()
    line_no = 0
    overlong = False
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        buffer += message.get("body", b"")
        more = message.get("more_body", False)
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
    (result,) = await service.batcher.annotate([str(record.text)])
    if isinstance(result.doc, Exception):
        reason = f"{type(result.doc).__name__}: {result.doc}"
        return error_line(replace(record, text=None, error=reason)).encode()
    return service.annotator.record_line(record, result.doc).encode()


async def output_lines(
    service: EntityService, lines: AsyncIterator[tuple[int, bytes | None]]
) -> AsyncIterator[bytes]:
    """The records of the lines, each as soon as it is done, with a bounded window in flight."""
    settings = service.settings
    window = 2 * settings.max_batch_size
    pending: set[asyncio.Task[bytes]] = set()
    try:
        async for line_no, raw in lines:
            if raw is None:
                too_long = settings.max_chars * BYTES_PER_CHAR + LINE_OVERHEAD
                record = Record(line_no, NO_ID, None, f"line longer than {too_long} bytes")
            elif not raw.strip():
                continue
            else:
                record = parse_line(line_no, raw, "text", "id")
            if record.text is not None and len(record.text) > settings.max_chars:
                error = f"text has {len(record.text)} characters; the limit is {settings.max_chars}"
                record = replace(record, text=None, error=error)
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


async def bulk(service: EntityService, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer one NDJSON request as a stream of NDJSON records (503 when the service is full)."""
    try:
        service.admit()
    except HTTPException as refused:
        await error_response(refused)(scope, receive, send)
        return
    try:
        max_bytes = service.settings.max_chars * BYTES_PER_CHAR + LINE_OVERHEAD
        headers = [(b"content-type", b"application/x-ndjson")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        try:
            async for chunk in output_lines(service, body_lines(receive, max_bytes)):
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except ClientGone:
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        service.release()
