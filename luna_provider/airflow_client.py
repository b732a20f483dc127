"""A small client of the Airflow 3 REST API v2: trigger, inspect, cancel and delete DAG runs."""

from __future__ import annotations

import logging
import random
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import requests

if TYPE_CHECKING:
    from luna_provider.settings import Settings

log = logging.getLogger(__name__)

#: Statuses worth another attempt: the api-server is starting, restarting or overloaded.
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_PAGE = 100


class AirflowApiError(RuntimeError):
    """Raise when the Airflow API refuses a request or stays unreachable.

    :param status: HTTP status, or ``None`` when no response came (connection refused, timeout).
    :param detail: the API's explanation (``detail`` of the JSON body) or the connection error.
    """

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"Airflow API error {status if status is not None else '(no response)'}: {detail}")
        self.status = status
        self.detail = detail


class AirflowClient:
    """Call the Airflow api-server at ``base_url``.

    With ``username`` set, a JWT is fetched from ``POST /auth/token`` and renewed once on a 401;
    without it no ``Authorization`` header is sent (``simple_auth_manager_all_admins``).

    :param timeout: seconds for each HTTP request.
    :param retries: extra attempts after a connection error or a 5xx, with exponential backoff.
    :param backoff: first backoff delay in seconds; doubles on each attempt, at most 5 s.
    :param dag_wait: seconds to keep retrying a trigger whose DAG is not registered yet (404).
    """

    def __init__(
        self,
        base_url: str,
        username: str = "",
        password: str = "",
        timeout: float = 10,
        retries: int = 5,
        *,
        backoff: float = 0.25,
        dag_wait: float = 15.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._password = password
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = backoff
        self.dag_wait = dag_wait
        self._session = requests.Session()
        self._token: str | None = None
        self._token_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"AirflowClient({self.base_url!r}, username={self.username!r})"

    @classmethod
    def from_settings(cls, settings: Settings) -> AirflowClient:
        """Build a client from the service settings.

        Without a configured user, a client aimed at the embedded api-server of ``LUNA_HOME`` uses the
        credentials ``luna-tasks standalone`` generated there, so commands run from another shell work.
        """
        username, password = settings.airflow_username, settings.airflow_password
        if not username:
            from luna_provider.stack_config import embedded_airflow_credentials

            found = embedded_airflow_credentials(settings)
            if found is not None:
                username, password = found
        # LUNA_TRIGGER_RETRIES counts attempts; ``retries`` counts the ones after the first.
        return cls(settings.airflow_api_url, username, password, retries=max(settings.trigger_retries - 1, 0))

    # -- DAG runs -----------------------------------------------------------------------------------

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict) -> dict:
        """Create run ``run_id`` of ``dag_id``, or return it if it exists already.

        A DAG that is not registered yet (404) is retried for ``dag_wait`` seconds, since the
        dag-processor may still be parsing its file.

        :raises AirflowApiError: on a refusal such as a ``Param`` validation error (400), or when the
            API stays unreachable or the DAG stays unknown.
        """
        path = f"/api/v2/dags/{_q(dag_id)}/dagRuns"
        body = {"dag_run_id": run_id, "logical_date": None, "conf": conf}
        deadline = time.monotonic() + self.dag_wait
        while True:
            resp = self._request("POST", path, json=body)
            if resp.status_code in (200, 201):
                return resp.json()
            if resp.status_code == 409:
                # A retry after a lost response, or a caller replaying the same task: same run.
                existing = self.get_dag_run(dag_id, run_id)
                if existing is not None:
                    log.info("DAG run %s/%s exists already", dag_id, run_id)
                    return existing
            if resp.status_code == 404 and time.monotonic() < deadline:
                log.info("DAG %s is not registered yet; retrying the trigger", dag_id)
                time.sleep(0.5)
                continue
            raise AirflowApiError(resp.status_code, _detail(resp))

    def get_dag_run(self, dag_id: str, run_id: str) -> dict | None:
        """Return the run as the API shows it, or ``None`` if there is no such run."""
        resp = self._request("GET", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
        if resp.status_code == 404:
            return None
        _raise_for(resp)
        return resp.json()

    def fail_dag_run(self, dag_id: str, run_id: str) -> None:
        """Mark the run failed, which stops its running task instances; a missing run is fine."""
        resp = self._request(
            "PATCH", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}", json={"state": "failed"}
        )
        if resp.status_code != 404:
            _raise_for(resp)

    def delete_dag_run(self, dag_id: str, run_id: str) -> None:
        """Delete the run and its task instances; a missing run is fine."""
        resp = self._request("DELETE", f"/api/v2/dags/{_q(dag_id)}/dagRuns/{_q(run_id)}")
        if resp.status_code != 404:
            _raise_for(resp)

    # -- DAGs and health ----------------------------------------------------------------------------

    def get_dags(self) -> list[str]:
        """Return the ids of all DAGs that are registered and not stale."""
        return list(self.dag_files())

    def dag_files(self) -> dict[str, str]:
        """Return every registered, non-stale DAG id mapped to the file that defines it."""
        dags: dict[str, str] = {}
        while True:
            resp = self._request(
                "GET",
                "/api/v2/dags",
                params={"limit": _PAGE, "offset": len(dags), "order_by": "dag_id"},
            )
            _raise_for(resp)
            page = resp.json()
            for item in page.get("dags", []):
                dags[item["dag_id"]] = item.get("fileloc") or ""
            if not page.get("dags") or len(dags) >= int(page.get("total_entries", 0)):
                return dags

    def import_errors(self, since: datetime | None = None) -> dict[str, str]:
        """Return the DAG files that failed to parse (at or after ``since``), mapped to the error."""
        resp = self._request("GET", "/api/v2/importErrors", params={"limit": _PAGE})
        _raise_for(resp)
        return {
            item["filename"]: item["stack_trace"]
            for item in resp.json().get("import_errors", [])
            if since is None or datetime.fromisoformat(item["timestamp"]) >= since
        }

    def is_healthy(self) -> bool:
        """Return whether the api-server answers and reports a healthy metadatabase and scheduler."""
        try:
            resp = self._session.get(self._url("/api/v2/monitor/health"), timeout=self.timeout)
            if resp.status_code != 200:
                return False
            health = resp.json()
        except (requests.RequestException, ValueError):
            return False
        return all(
            (health.get(part) or {}).get("status") == "healthy" for part in ("metadatabase", "scheduler")
        )

    def reparse_dag_file(self, dag_id: str) -> None:
        """Ask the dag-processor to parse the file that defines ``dag_id`` again, now."""
        resp = self._request("GET", f"/api/v2/dags/{_q(dag_id)}/details")
        _raise_for(resp)
        token = resp.json()["file_token"]
        parsed = self._request("PUT", f"/api/v2/parseDagFile/{_q(token)}")
        if parsed.status_code != 409:  # 409: a parse of that file is already requested
            _raise_for(parsed)

    def paused_states(self, prefix: str) -> dict[str, bool]:
        """Return ``is_paused`` of every registered DAG whose id starts with ``prefix``."""
        states: dict[str, bool] = {}
        while True:
            resp = self._request(
                "GET",
                "/api/v2/dags",
                params={
                    "limit": _PAGE,
                    "offset": len(states),
                    "dag_id_pattern": f"{prefix}%",
                    "paused": None,
                },
            )
            _raise_for(resp)
            page = resp.json().get("dags", [])
            states.update({item["dag_id"]: bool(item["is_paused"]) for item in page})
            if len(page) < _PAGE:
                return states

    def set_dag_paused(self, dag_id: str, paused: bool, wait: float = 0.0) -> None:
        """Pause or unpause ``dag_id``, waiting up to ``wait`` seconds for a new DAG to appear."""
        deadline = time.monotonic() + wait
        while True:
            resp = self._request("PATCH", f"/api/v2/dags/{_q(dag_id)}", json={"is_paused": paused})
            if resp.status_code != 404 or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        if resp.status_code == 404 and paused:
            return  # a DAG that does not exist (any more) runs nothing either
        _raise_for(resp)

    # -- plumbing -----------------------------------------------------------------------------------

    def _url(self, path: str) -> str:
        return self.base_url + path

    def _request(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        """Send with authentication; renew the token once on a 401."""
        renewed = False
        while True:
            sent = dict(headers or {})
            if self.username:
                sent["Authorization"] = f"Bearer {self._get_token()}"
            resp = self._send(method, path, headers=sent, **kwargs)
            if resp.status_code == 401 and self.username and not renewed:
                log.info("Airflow API answered 401; renewing the token")
                self._token = None
                renewed = True
                continue
            return resp

    def _send(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        """Send one request, retrying connection errors and retryable statuses with backoff."""
        attempt = 0
        while True:
            try:
                resp = self._session.request(method, self._url(path), timeout=self.timeout, **kwargs)
            except requests.RequestException as exc:
                if attempt >= self.retries:
                    raise AirflowApiError(None, f"{method} {path}: {exc}") from exc
                log.warning("%s %s failed (%s); retrying", method, path, type(exc).__name__)
            else:
                if resp.status_code not in _RETRY_STATUSES:
                    return resp
                if attempt >= self.retries:
                    raise AirflowApiError(resp.status_code, _detail(resp))
                log.warning("%s %s answered %s; retrying", method, path, resp.status_code)
            delay = min(5.0, self.backoff * 2**attempt)
            # Jitter keeps concurrent callers from hammering a restarting server in step.
            time.sleep(delay * random.uniform(0.8, 1.2))
            attempt += 1

    def _get_token(self) -> str:
        with self._token_lock:
            if self._token is None:
                resp = self._send(
                    "POST", "/auth/token", json={"username": self.username, "password": self._password}
                )
                if resp.status_code not in (200, 201):
                    raise AirflowApiError(
                        resp.status_code, f"login as {self.username!r} failed: {_detail(resp)}"
                    )
                self._token = resp.json()["access_token"]
            return self._token


def _q(part: str) -> str:
    return quote(part, safe="")


def _detail(resp: requests.Response) -> str:
    """Return the API's explanation of an error response."""
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:500] or resp.reason or ""
    detail = body.get("detail", body) if isinstance(body, dict) else body
    return detail if isinstance(detail, str) else str(detail)[:2000]


def _raise_for(resp: requests.Response) -> None:
    if resp.status_code >= 400:
        raise AirflowApiError(resp.status_code, _detail(resp))
