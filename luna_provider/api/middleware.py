"""ASGI middleware: the ``Luna-Request-Id`` of every request, request metrics and access logs."""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from typing import Any

from luna_provider.errors import BAD_CONTENT_TYPE, BAD_HEADER, BODY_TOO_LARGE, PAGE_NOT_FOUND, LunaError

log = logging.getLogger("luna_provider.api.access")

REQUEST_ID_HEADER = b"luna-request-id"
REQUEST_ID_PATTERN = re.compile(r"^[0-9]{10},[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")
#: the request id of the request being served, for log lines
request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar("luna_request_id", default="-")

_ID_SEGMENT = re.compile(r"/[0-9]+(?=/|$)")
#: an id this long cannot exist (ids are 32-bit); refusing it early spares the int parsers
_HUGE_ID = re.compile(r"/[0-9]{20,}(?=/|$)")
_BODY_METHODS = {"POST", "PUT", "PATCH"}


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

    def __init__(self, app: Any, max_body_size: int = 16 << 20) -> None:
        self.app = app
        self.max_body_size = max_body_size
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
                await self._reject(
                    send_with_id, BAD_HEADER("Luna-Request-Id", "expected format 'timestamp,uuid'")
                )
            elif (error := self._check(scope, headers)) is not None:
                await self._reject(send_with_id, error)
            elif scope.get("method") in _BODY_METHODS:
                body = await self._read_body(receive)
                if body is None:
                    await self._reject(send_with_id, BODY_TOO_LARGE(self.max_body_size))
                else:
                    await self.app(scope, self._replay(body, receive), send_with_id)
            else:
                await self.app(scope, receive, send_with_id)
        finally:
            self._account(scope, status["code"], started)
            request_id_var.reset(token)

    def _account(self, scope: dict, status: int, started: float) -> None:
        """Count the request under its route and log it."""
        path = scope.get("path", "")
        prefix, _, rest = path.partition("/")[2].partition("/")
        label = f"/{prefix}" + _ID_SEGMENT.sub("/{id}", f"/{rest}" if rest else "")
        if status == 404 and prefix not in ("1", "6"):
            label = "<unknown>"  # one series for every unknown path, not one per path
        self.requests.labels(path=f"{scope.get('method')}:{label}", status_code=str(status)).inc()
        # the raw (still percent-encoded) path: a decoded one could forge log lines
        raw_path = (scope.get("raw_path") or path.encode()).decode("latin-1")
        log.info(
            "%s %s %s %.1f ms", scope.get("method"), raw_path, status, (time.monotonic() - started) * 1000
        )

    def _check(self, scope: dict, headers: dict[bytes, bytes]) -> LunaError | None:
        """Refuse what the validators downstream would choke on: absurd ids, non-JSON bodies."""
        if _HUGE_ID.search(scope.get("path", "")):
            return PAGE_NOT_FOUND()
        if scope.get("method") not in _BODY_METHODS:
            return None
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_body_size:
            return BODY_TOO_LARGE(self.max_body_size)
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if not content_type:
            return BAD_CONTENT_TYPE("application/json") if length not in (b"", b"0") else None
        media_type, _, parameters = content_type.partition(";")
        charset = "utf-8"
        for parameter in parameters.split(";"):
            name, _, value = parameter.strip().partition("=")
            if name.lower() == "charset":
                charset = value.strip('"').lower()
        if media_type.strip().lower() != "application/json" or charset not in ("utf-8", "utf8"):
            return BAD_CONTENT_TYPE("application/json")
        # media types are case-insensitive; the validators downstream match them exactly
        scope["headers"] = [
            (name, b"application/json" if name == b"content-type" else value)
            for name, value in scope.get("headers") or []
        ]
        return None

    async def _read_body(self, receive: Any) -> bytes | None:
        """Read the whole body (None past the size limit, even when it is sent in chunks)."""
        parts: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > self.max_body_size:
                return None
            if not message.get("more_body"):
                break
        return b"".join(parts)

    @staticmethod
    def _replay(body: bytes, receive: Any) -> Any:
        """Give the app the body already read, then whatever else the client sends (a disconnect)."""
        sent = False

        async def replay() -> dict:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    @staticmethod
    async def _reject(send: Any, error: LunaError) -> None:
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
