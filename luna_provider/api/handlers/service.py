"""Service resources: the spec, docs, configuration, plugins, metrics and health."""

from __future__ import annotations

import html
import time
from typing import Any

from connexion import request
from flask import Response

from luna_provider.api import services
from luna_provider.api.app import SPEC_FILE
from luna_provider.errors import NOT_ACCEPTABLE, SERVICE_UNAVAILABLE

_METHODS = ("get", "post", "put", "patch", "delete")


def _accepts(*media_types: str) -> str:
    """Return the first of ``media_types`` the request accepts; 406 when none."""
    accept = request.headers.get("Accept", "*/*")
    for media_type in media_types:
        if media_type in accept:
            return media_type
    if "*/*" in accept:
        return media_types[0]
    raise NOT_ACCEPTABLE(", ".join(media_types))


def get_spec() -> Response:
    """Return the OpenAPI document byte for byte (YAML) or as a readable page (HTML)."""
    data = SPEC_FILE.read_bytes()
    if _accepts("application/x-yaml", "text/html") == "application/x-yaml":
        return Response(data, content_type="application/x-yaml")
    return Response(_render_spec(data), content_type="text/html; charset=utf-8")


def _render_spec(data: bytes) -> str:
    import yaml

    spec = yaml.safe_load(data)
    rows = []
    for path, operations in spec.get("paths", {}).items():
        for method, operation in operations.items():
            if method in _METHODS:
                rows.append(
                    f"<tr><td><code>{method.upper()}</code></td><td><code>{html.escape(path)}</code></td>"
                    f"<td>{html.escape(operation.get('summary', ''))}</td></tr>"
                )
    info = spec.get("info", {})
    title = html.escape(f"{info.get('title', 'Luna Tasks')} {info.get('version', '')}")
    base = request.url.path.rsplit("/docs/spec", 1)[0]
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title></head><body>"
        f"<h1>{title}</h1><p>{html.escape(info.get('description', ''))}</p>"
        f"<p>Interactive console: <a href='{base}/docs/ui/'>{base}/docs/ui/</a>. The document itself: "
        f"<code>GET {base}/docs/spec</code> with <code>Accept: application/x-yaml</code>.</p>"
        f"<table border='1' cellpadding='4'><tr><th>Method</th><th>Path</th><th>Operation</th></tr>"
        f"{''.join(rows)}</table></body></html>"
    )


def get_dev_manual() -> Response:
    """Point to the documentation of the API."""
    base = request.url.path.rsplit("/docs/dev", 1)[0]
    return Response(status=302, headers={"Location": f"{base}/docs/spec"})


def get_config() -> Any:
    """Return the service settings, secrets masked."""
    shown = services.settings().public_dict()
    if _accepts("application/json", "text/plain") == "text/plain":
        text = "".join(f"{key.upper()}={value}\n" for key, value in shown.items())
        return Response(text, content_type="text/plain")
    return shown, 200, {"Content-Type": "application/json"}


def get_plugins() -> dict:
    """List the service's plugins (the Airflow plugin this provider registers)."""
    return {"plugins": [{"name": "luna", "status": "enabled"}]}


def get_metrics() -> Response:
    """Return request statistics in the Prometheus text format."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def healthcheck(include_luna_services: int = 0) -> dict:
    """Check the database and object store (and Airflow with ``include_luna_services=1``)."""
    from sqlalchemy import text

    started = time.monotonic()
    try:
        with services.engine().connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:
        raise SERVICE_UNAVAILABLE(f"database: {type(error).__name__}") from None
    try:
        services.object_store().exists("results")
    except Exception as error:
        raise SERVICE_UNAVAILABLE(f"object store: {type(error).__name__}") from None
    if include_luna_services and not services.airflow().is_healthy():
        raise SERVICE_UNAVAILABLE("airflow")
    return {"execution_time": round(time.monotonic() - started, 4)}
