"""ASGI middleware: the ``Luna-Request-Id`` of every request, request metrics and access logs."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from luna_provider.errors import BAD_HEADER

log = logging.getLogger("luna_provider.api.access")

REQUEST_ID_HEADER = b"luna-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[0-9]{10},[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
#: the request id of the request being served, for log lines
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("luna_request_id", default="-")

_ID_SEGMENT = re.compile(r"/[0-9]+(?=/|$)")


def new_request_id() -> str:
    """Return a request id in Luna's default format, ``timestamp,uuid``."""
    return f"{int(time.time())},{uuid.uuid4()}"


class RequestIdFilter(logging.Filter):
    """Add the current request id to every log record as ``request_id``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


def _request_counter() -> Any:
    from prometheus_client import REGISTRY, Counter

    existing = REGISTRY._names_to_collectors.get("request_count")
    return existing or Counter("request_count", "Requests served", ["path", "status_code"])


class LunaRequestMiddleware:
    """Check or create the request id, echo it in the response, count and log the request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.requests = _request_counter()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        headers = dict(scope.get("headers") or [])
        given = headers.get(REQUEST_ID_HEADER, b"").decode("latin-1")
        request_id = given or new_request_id()
        token = request_id_var.set(request_id)
        status = {"code": 500}

        async def send_with_id(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"luna-request-id", request_id.encode())]
            await send(message)

        try:
            if given and not REQUEST_ID_PATTERN.match(given):
                request_id = new_request_id()
                request_id_var.set(request_id)
                await self._reject_request_id(send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            prefix, _, rest = scope.get("path", "").partition("/")[2].partition("/")
            path = f"/{prefix}" + _ID_SEGMENT.sub("/{id}", f"/{rest}" if rest else "")
            self.requests.labels(path=f"{scope.get('method')}:{path}", status_code=str(status["code"])).inc()
            log.info(
                "%s %s %s %.1f ms",
                scope.get("method"),
                scope.get("path"),
                status["code"],
                (time.monotonic() - started) * 1000,
            )
            request_id_var.reset(token)

    @staticmethod
    async def _reject_request_id(send: Any) -> None:
        error = BAD_HEADER("Luna-Request-Id", "expected format 'timestamp,uuid'")
        body = json.dumps(error.body()).encode()
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
