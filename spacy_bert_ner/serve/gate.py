"""What every request passes before the routes: the API key and the request metrics; it
dispatches nothing (the routes do). A plain ASGI middleware rather than Starlette's
`BaseHTTPMiddleware`, which wraps each request in extra tasks and streams, or FastAPI
dependencies, which each route would solve again: with single-sentence requests on a small
machine either is a visible share of each request.
"""

from __future__ import annotations

import base64
import hmac
import time
from typing import cast

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .service import EntityService

#: Paths anyone may read (GET) even when an API key is set: probes, the demo page, the API
#: docs. Only reads: `POST /` is Hugging Face's task, which needs the key.
OPEN_PATHS = ("/", "/healthz", "/readyz", "/docs", "/openapi.json")
OPEN_METHODS = ("GET", "HEAD")


def header(scope: Scope, name: bytes) -> bytes:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return b""


class Gate:
    """ASGI middleware: 401 without the key (a bearer token, or Basic authentication's
    password) on every path but `OPEN_PATHS` (compared in constant time), and each answer's
    status and latency counted when the service keeps metrics."""

    def __init__(self, app: ASGIApp, service: EntityService, api_key: str | None) -> None:
        self.app = app
        self.service = service
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.key = (api_key or "").encode()

    def authorized(self, scope: Scope) -> bool:
        """The key as a bearer token, or as the password of Basic authentication (any user
        name), which is what Label Studio sends to an ML backend."""
        given = header(scope, b"authorization")
        if given[:6].lower() == b"basic ":
            try:
                password = base64.b64decode(given[6:], validate=True).partition(b":")[2]
            except ValueError:
                return False
            return hmac.compare_digest(password, self.key)
        return hmac.compare_digest(given, cast(bytes, self.expected))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        metrics = self.service.metrics
        if metrics is None:
            await self._check_key(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # a request that ends without an answer (an exception) counts as one

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._check_key(scope, receive, counting_send)
        finally:
            metrics.observe(status, time.perf_counter() - started)

    async def _check_key(self, scope: Scope, receive: Receive, send: Send) -> None:
        is_open = scope["path"] in OPEN_PATHS and scope["method"] in OPEN_METHODS
        if self.expected is not None and not is_open:
            if not self.authorized(scope):
                refusal = JSONResponse(
                    {"detail": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                    status_code=401,
                    headers={"WWW-Authenticate": "Bearer"},
                )
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
