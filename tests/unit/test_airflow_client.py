"""Tests of :mod:`luna_provider.airflow_client` against a fake Airflow api-server on a local port."""

from __future__ import annotations

import json
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from luna_provider.airflow_client import AirflowApiError, AirflowClient


@dataclass
class FakeAirflow:
    """State of the fake api-server; tests change it to script failures."""

    dags: set[str] = field(default_factory=lambda: {"luna_clustering"})
    runs: dict[tuple[str, str], dict] = field(default_factory=dict)
    #: statuses to answer the next requests with, before handling them normally
    fail_next: list[int] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=lambda: {"admin": "secret"})
    require_auth: bool = True
    tokens: set[str] = field(default_factory=set)
    logins: int = 0
    requests: list[tuple[str, str, str | None]] = field(default_factory=list)
    scheduler_status: str = "healthy"
    reparsed: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, method: str, prefix: str) -> int:
        return sum(1 for m, path, _ in self.requests if m == method and path.startswith(prefix))


class _Handler(BaseHTTPRequestHandler):
    state: FakeAirflow

    def log_message(self, *args: object) -> None:  # keep pytest output clean
        pass

    def _reply(self, status: int, body: object | None = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict:
        length = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(length) or b"{}")

    def _handle(self, method: str) -> None:
        state = self.state
        path = self.path.split("?", 1)[0]
        with state.lock:
            state.requests.append((method, path, self.headers.get("Authorization")))
            if state.fail_next:
                self._reply(state.fail_next.pop(0), {"detail": "scripted failure"})
                return
            if method == "POST" and path == "/auth/token":
                body = self._body()
                if state.users.get(body.get("username")) != body.get("password"):
                    self._reply(401, {"detail": "Invalid credentials"})
                    return
                state.logins += 1
                token = f"token-{state.logins}"
                state.tokens.add(token)
                self._reply(201, {"access_token": token})
                return
            if path == "/api/v2/monitor/health":
                self._reply(
                    200,
                    {
                        "metadatabase": {"status": "healthy"},
                        "scheduler": {"status": state.scheduler_status},
                    },
                )
                return
            auth = self.headers.get("Authorization", "")
            if state.require_auth and auth.removeprefix("Bearer ") not in state.tokens:
                self._reply(401, {"detail": "Not authenticated"})
                return
            self._route(method, path)

    def _route(self, method: str, path: str) -> None:
        state = self.state
        if path == "/api/v2/dags":
            query = dict(part.split("=", 1) for part in self.path.split("?", 1)[1].split("&"))
            ordered = sorted(state.dags)
            offset, limit = int(query["offset"]), int(query["limit"])
            page = [{"dag_id": dag_id} for dag_id in ordered[offset : offset + limit]]
            self._reply(200, {"dags": page, "total_entries": len(ordered)})
            return
        if path == "/api/v2/importErrors":
            errors = [
                {"filename": "luna_old.py", "stack_trace": "old", "timestamp": "2020-01-01T00:00:00Z"},
                {"filename": "luna_new.py", "stack_trace": "new", "timestamp": "2030-01-01T00:00:00+00:00"},
            ]
            self._reply(200, {"import_errors": errors, "total_entries": 2})
            return
        if match := re.fullmatch(r"/api/v2/dags/([^/]+)/details", path):
            self._reply(200, {"dag_id": match[1], "file_token": f"file-of-{match[1]}"})
            return
        if match := re.fullmatch(r"/api/v2/parseDagFile/([^/]+)", path):
            state.reparsed.append(match[1])
            self._reply(201)
            return
        if match := re.fullmatch(r"/api/v2/dags/([^/]+)/dagRuns", path):
            dag_id = match[1]
            if dag_id not in state.dags:
                self._reply(404, {"detail": f"The Dag with dag_id: `{dag_id}` was not found"})
                return
            body = self._body()
            if "bad" in body["conf"]:
                self._reply(400, {"detail": "Invalid input for param bad"})
                return
            key = (dag_id, body["dag_run_id"])
            if key in state.runs:
                self._reply(409, {"detail": "Unique constraint violation"})
                return
            state.runs[key] = {
                "dag_id": dag_id,
                "dag_run_id": key[1],
                "state": "queued",
                "conf": body["conf"],
            }
            self._reply(200, state.runs[key])
            return
        if match := re.fullmatch(r"/api/v2/dags/([^/]+)/dagRuns/([^/]+)", path):
            key = (match[1], match[2])
            run = state.runs.get(key)
            if run is None:
                self._reply(404, {"detail": "DagRun not found"})
            elif method == "GET":
                self._reply(200, run)
            elif method == "PATCH":
                run["state"] = self._body()["state"]
                self._reply(200, run)
            elif method == "DELETE":
                del state.runs[key]
                self._reply(204)
            return
        self._reply(404, {"detail": "Not Found"})

    def do_GET(self) -> None:
        self._handle("GET")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_PATCH(self) -> None:
        self._handle("PATCH")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")


@pytest.fixture
def fake() -> Iterator[tuple[FakeAirflow, str]]:
    """Serve a fresh fake api-server on an ephemeral port; yield its state and base URL."""
    state = FakeAirflow()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _client(url: str, **kwargs: object) -> AirflowClient:
    options: dict = {"username": "admin", "password": "secret", "backoff": 0.01, "dag_wait": 1.0}
    options.update(kwargs)
    return AirflowClient(url, **options)


def test_trigger_is_idempotent(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url)
    first = client.trigger_dag_run("luna_clustering", "task-1", {"task_id": 1})
    again = client.trigger_dag_run("luna_clustering", "task-1", {"task_id": 1})
    assert first["dag_run_id"] == again["dag_run_id"] == "task-1"
    assert again["conf"] == {"task_id": 1}
    assert state.count("POST", "/api/v2/dags/") == 2  # the second answered 409
    assert len(state.runs) == 1


def test_trigger_retries_5xx_then_succeeds(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url)
    client.get_dags()  # logs in, so that the scripted failures hit the trigger itself
    state.fail_next = [503, 502]
    run = client.trigger_dag_run("luna_clustering", "task-2", {})
    assert run["state"] == "queued"
    assert state.count("POST", "/api/v2/dags/luna_clustering/dagRuns") == 3
    assert ("luna_clustering", "task-2") in state.runs


def test_login_is_retried_on_5xx(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    state.fail_next = [503]
    assert _client(url).get_dags() == ["luna_clustering"]
    assert state.count("POST", "/auth/token") == 2
    assert state.logins == 1


def test_trigger_gives_up_after_retries(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url, retries=2)
    client.get_dags()  # logs in
    state.fail_next = [503] * 10
    before = len(state.requests)
    with pytest.raises(AirflowApiError) as caught:
        client.trigger_dag_run("luna_clustering", "task-3", {})
    assert caught.value.status == 503
    assert caught.value.detail == "scripted failure"
    assert len(state.requests) - before == 3  # one attempt and two retries


def test_unreachable_server_raises_without_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client = AirflowClient(f"http://127.0.0.1:{port}", retries=1, backoff=0.01)
    with pytest.raises(AirflowApiError) as caught:
        client.trigger_dag_run("luna_clustering", "task-4", {})
    assert caught.value.status is None
    assert client.is_healthy() is False


def test_validation_error_is_not_retried(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url)
    with pytest.raises(AirflowApiError) as caught:
        client.trigger_dag_run("luna_clustering", "task-5", {"bad": 1})
    assert caught.value.status == 400
    assert "param bad" in caught.value.detail
    assert state.count("POST", "/api/v2/dags/") == 1


def test_unknown_dag_is_retried_until_it_appears(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url, dag_wait=5.0)
    timer = threading.Timer(0.3, state.dags.add, args=("luna_new",))
    timer.start()
    try:
        run = client.trigger_dag_run("luna_new", "task-6", {})
    finally:
        timer.cancel()
    assert run["dag_run_id"] == "task-6"
    assert state.count("POST", "/api/v2/dags/luna_new") >= 2


def test_unknown_dag_raises_404_after_waiting(fake: tuple[FakeAirflow, str]) -> None:
    _, url = fake
    client = _client(url, dag_wait=0.3)
    with pytest.raises(AirflowApiError) as caught:
        client.trigger_dag_run("luna_missing", "task-7", {})
    assert caught.value.status == 404
    assert "luna_missing" in caught.value.detail


def test_token_is_renewed_once_on_401(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url)
    client.trigger_dag_run("luna_clustering", "task-8", {})
    assert state.logins == 1
    state.tokens.clear()  # the token expired, or the api-server restarted with a new secret
    assert client.get_dag_run("luna_clustering", "task-8")["dag_run_id"] == "task-8"
    assert state.logins == 2
    last_two = [auth for _, path, auth in state.requests if path.endswith("task-8")][-2:]
    assert last_two == ["Bearer token-1", "Bearer token-2"]


def test_wrong_password_raises_401(fake: tuple[FakeAirflow, str]) -> None:
    _, url = fake
    client = _client(url, password="wrong")
    with pytest.raises(AirflowApiError) as caught:
        client.get_dags()
    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_no_authorization_header_without_username(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    state.require_auth = False
    client = AirflowClient(url)
    client.trigger_dag_run("luna_clustering", "task-9", {})
    assert state.logins == 0
    assert all(auth is None for _, _, auth in state.requests)


def test_get_fail_and_delete_runs(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url)
    assert client.get_dag_run("luna_clustering", "nothing") is None
    client.fail_dag_run("luna_clustering", "nothing")  # nothing to stop: no error
    client.delete_dag_run("luna_clustering", "nothing")
    client.trigger_dag_run("luna_clustering", "task-10", {})
    client.fail_dag_run("luna_clustering", "task-10")
    assert state.runs[("luna_clustering", "task-10")]["state"] == "failed"
    client.delete_dag_run("luna_clustering", "task-10")
    assert client.get_dag_run("luna_clustering", "task-10") is None


def test_get_dags_reads_every_page(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    state.dags = {f"luna_{i:03d}" for i in range(230)}
    assert _client(url).get_dags() == sorted(state.dags)


def test_import_errors_since(fake: tuple[FakeAirflow, str]) -> None:
    _, url = fake
    client = _client(url)
    assert client.import_errors() == {"luna_old.py": "old", "luna_new.py": "new"}
    assert client.import_errors(since=datetime(2025, 1, 1, tzinfo=UTC)) == {"luna_new.py": "new"}


def test_health_and_reparse(fake: tuple[FakeAirflow, str]) -> None:
    state, url = fake
    client = _client(url)
    assert client.is_healthy() is True
    state.scheduler_status = "unhealthy"
    assert client.is_healthy() is False
    client.reparse_dag_file("luna_clustering")
    assert state.reparsed == ["file-of-luna_clustering"]


def test_from_settings_uses_the_embedded_stack_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from luna_provider.settings import load
    from luna_provider.stack_config import stack_secrets

    for name in ("LUNA_AIRFLOW_USERNAME", "LUNA_AIRFLOW_PASSWORD", "LUNA_AIRFLOW_API_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LUNA_HOME", str(tmp_path))
    monkeypatch.setenv("LUNA_AIRFLOW_PORT", "8080")
    monkeypatch.setenv("LUNA_TRIGGER_RETRIES", "3")
    assert AirflowClient.from_settings(load()).username == ""  # no stack has run in this home
    password = stack_secrets(load().home)["airflow_password"]
    client = AirflowClient.from_settings(load())
    assert (client.username, client._password, client.retries) == ("admin", password, 2)
    monkeypatch.setenv("LUNA_AIRFLOW_API_URL", "http://airflow.example:8080")
    assert AirflowClient.from_settings(load()).username == ""  # another Airflow: no borrowed login
