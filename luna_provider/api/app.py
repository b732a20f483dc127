"""Build the Connexion app that serves the Luna Tasks API under ``/1`` and ``/6``."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import connexion
from connexion.exceptions import BadRequestProblem, ExtraParameterProblem, ProblemException
from connexion.lifecycle import ConnexionRequest, ConnexionResponse
from connexion.middleware import MiddlewarePosition
from connexion.resolver import RelativeResolver
from connexion.validators import JSONRequestBodyValidator

from luna_provider.api.middleware import LunaRequestMiddleware, RequestIdFilter
from luna_provider.errors import (
    BAD_CONTENT_TYPE,
    BAD_INPUT,
    BAD_QUERY_PARAM,
    JSON_VALIDATION,
    METHOD_NOT_ALLOWED,
    PAGE_NOT_FOUND,
    UNKNOWN_ERROR,
    LunaError,
)

log = logging.getLogger(__name__)

SPEC_FILE = Path(__file__).resolve().parents[2] / "api_spec" / "luna-tasks.yaml"
API_PREFIXES = ("/1", "/6")


#: keys that pick the variant of a oneOf body (``filters.object_type``, ``target``, ...)
_DISCRIMINATORS = {"object_type", "objects_type", "target", "source_type", "task_type", "type"}


def _json_path(path: Any) -> str:
    return ".".join(str(part) for part in path)


def _relevant_error(error: Any) -> Any:
    """Return the error to report; inside a oneOf, the one of the variant the body chose."""
    from jsonschema.exceptions import best_match

    if error.validator not in ("oneOf", "anyOf") or not error.context:
        return error
    branches: dict[Any, list] = {}
    for sub in error.context:
        branches.setdefault(sub.schema_path[0], []).append(sub)
    chosen = [
        errors
        for errors in branches.values()
        if not any(
            e.validator in ("enum", "const") and e.path and e.path[-1] in _DISCRIMINATORS for e in errors
        )
    ]
    if len(chosen) == 1:
        return best_match([_relevant_error(sub) for sub in chosen[0]])
    return error


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise ValueError("integer too large")
    return int(text)


def _unstorable_string(document: Any) -> str | None:
    """Return a string of ``document`` that PostgreSQL cannot store (NUL, lone surrogates), if any."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return item
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return None


class LunaBodyValidator(JSONRequestBodyValidator):
    """Validate JSON bodies and report the most relevant failure in Luna's words."""

    async def _parse(self, stream: Any, scope: Any) -> Any:
        import json

        data = b"".join([message async for message in stream])
        if not data:
            return None
        try:
            body = json.loads(data.decode("utf-8"), parse_constant=_reject_constant, parse_int=_bounded_int)
        except UnicodeDecodeError:
            raise BAD_INPUT("Request body is not UTF-8") from None
        except RecursionError:
            raise BAD_INPUT("Request body is nested too deeply") from None
        except ValueError as error:
            raise BAD_INPUT(f"Request body is not valid JSON: {error}") from None
        if _unstorable_string(body) is not None:
            raise BAD_INPUT("Strings must not contain NUL characters or unpaired surrogates")
        return body

    def _validate(self, body: Any) -> dict | None:
        from jsonschema.exceptions import best_match

        if body is None:
            raise BAD_INPUT("Request body must not be empty")
        error = best_match(_relevant_error(error) for error in self._validator.iter_errors(body))
        if error is not None:
            raise JSON_VALIDATION(_json_path(error.absolute_path), error.message)
        return body


def _luna_response(error: LunaError) -> ConnexionResponse:
    import json

    return ConnexionResponse(
        status_code=error.status, content_type="application/json", body=json.dumps(error.body())
    )


def _handle_luna_error(request: ConnexionRequest, error: Exception) -> ConnexionResponse:
    assert isinstance(error, LunaError)
    if error.status >= 500:
        log.error("%s %s failed: %s", request.method, request.url.path, error.detail)
    else:
        log.warning("%s %s rejected: %s", request.method, request.url.path, error.detail)
    return _luna_response(error)


def _handle_problem(request: ConnexionRequest, problem: Exception) -> ConnexionResponse:
    assert isinstance(problem, ProblemException)
    # parameter errors carry a whole jsonschema dump after the first line; the first line says it
    detail = str(problem.detail or problem.title or "").strip().split("\n", 1)[0]
    if isinstance(problem, ExtraParameterProblem):
        error = BAD_QUERY_PARAM(detail)
    elif isinstance(problem, BadRequestProblem):
        error = BAD_INPUT(detail)
    elif problem.status == 415:
        error = BAD_CONTENT_TYPE("application/json")
    elif problem.status == 404:
        error = PAGE_NOT_FOUND()
    elif problem.status == 405:
        error = METHOD_NOT_ALLOWED()
    else:
        error = LunaError(UNKNOWN_ERROR, detail) if problem.status >= 500 else BAD_INPUT(detail)
    return _handle_luna_error(request, error)


def _handle_http_status(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    status = getattr(exc, "status_code", 500)
    error = {404: PAGE_NOT_FOUND, 405: METHOD_NOT_ALLOWED}.get(status)
    return _handle_luna_error(request, error() if error else LunaError(UNKNOWN_ERROR, str(exc)))


def _handle_unexpected(request: ConnexionRequest, exc: Exception) -> ConnexionResponse:
    log.exception("%s %s crashed", request.method, request.url.path, exc_info=exc)
    return _luna_response(LunaError(UNKNOWN_ERROR, "Internal server error"))


def create_app() -> connexion.FlaskApp:
    """Return the Connexion app of the Luna Tasks API."""
    app = connexion.FlaskApp(__name__, specification_dir=str(SPEC_FILE.parent))
    for prefix in API_PREFIXES:
        app.add_api(
            SPEC_FILE.name,
            base_path=prefix,
            name=f"luna_tasks_{prefix.strip('/')}",
            resolver=RelativeResolver("luna_provider.api.handlers"),
            strict_validation=True,
            validate_responses=False,
            validator_map={"body": {"application/json": LunaBodyValidator}},
            swagger_ui_options=connexion.options.SwaggerUIOptions(swagger_ui_path="/docs/ui"),
        )
    app.add_error_handler(LunaError, _handle_luna_error)
    app.add_error_handler(ProblemException, _handle_problem)
    for status in (404, 405):
        app.add_error_handler(status, _handle_http_status)
    app.add_error_handler(Exception, _handle_unexpected)
    from luna_provider.api.services import settings

    app.add_middleware(
        LunaRequestMiddleware,
        position=MiddlewarePosition.BEFORE_EXCEPTION,
        max_body_size=settings().max_body_size,
    )
    return app


def configure_logging(level: int = logging.INFO) -> None:
    """Log to stderr with the request id on every line."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)


def create_asgi_app() -> Any:
    """Return the ASGI app for ``uvicorn --factory``, with logging, reconciling and callbacks started."""
    from luna_provider.api import services
    from luna_provider.notifications import start_dispatcher
    from luna_provider.reconciler import start_reconciler

    configure_logging()
    app = create_app()
    start_reconciler(services.settings())
    start_dispatcher(services.settings().database_url)
    return app
