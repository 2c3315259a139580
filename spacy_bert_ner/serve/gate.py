"""What every request passes before the routes: the API key, the switches of `POST
/v1/entities` (an NDJSON body to the bulk stream, a JSON one to the path that skips FastAPI's
layers), and the request metrics. A plain ASGI middleware rather than Starlette's
`BaseHTTPMiddleware`, which wraps each request in extra tasks and streams: with
single-sentence requests on a small machine that wrapping is a visible share of each request.
"""

from __future__ import annotations

import hmac
import time

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .bulk import bulk
from .entities import plain_json
from .service import EntityService

#: Paths anyone may read even when an API key is set: probes, the demo page, the API docs.
OPEN_PATHS = ("/", "/healthz", "/readyz", "/docs", "/openapi.json")
NDJSON = b"application/x-ndjson"
JSON = b"application/json"


def header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


class Gate:
    """ASGI middleware: 401 without the key on `/v1/*` (compared in constant time), an NDJSON
    `POST /v1/entities` handed to `bulk` and a JSON one to `plain_json`, and each answer's
    status and latency counted when the service keeps metrics."""

    def __init__(self, app: ASGIApp, service: EntityService, api_key: str | None) -> None:
        self.app = app
        self.service = service
        self.expected = f"Bearer {api_key}".encode() if api_key else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.service.metrics
        if metrics is None:
            await self._dispatch(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # a request that ends without an answer (an exception) counts as one

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._dispatch(scope, receive, counting_send)
        finally:
            metrics.observe(status, time.perf_counter() - started)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"]
        if self.expected is not None and path not in OPEN_PATHS:
            if not hmac.compare_digest(header(scope, b"authorization"), self.expected):
                refusal = JSONResponse(
                    {"detail": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        if path == "/v1/entities" and scope["method"] == "POST":
            content_type = header(scope, b"content-type").split(b";")[0].strip().lower()
            if content_type == NDJSON:
                await bulk(self.service, scope, receive, send)
                return
            if content_type == JSON:
                await plain_json(self.service, self.app, scope, receive, send)
                return
        await self.app(scope, receive, send)
