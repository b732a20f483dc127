from __future__ import annotations

import uuid
from typing import Any

import pytest


class RecordingAirflow:
    """Stands in for the Airflow REST API in handler tests; records what the handlers ask."""

    def __init__(self) -> None:
        self.triggered: list[tuple[str, str, dict]] = []
        #: the ``luna_request_id`` of each trigger's conf (left out of ``triggered``)
        self.request_ids: list[str | None] = []
        self.failed_runs: list[tuple[str, str]] = []
        self.fail_with: Exception | None = None

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict) -> dict:
        if self.fail_with is not None:
            raise self.fail_with
        self.request_ids.append(conf.get("luna_request_id"))
        self.triggered.append((dag_id, run_id, {k: v for k, v in conf.items() if k != "luna_request_id"}))
        return {"dag_run_id": run_id, "state": "queued"}

    def fail_dag_run(self, dag_id: str, run_id: str) -> None:
        self.failed_runs.append((dag_id, run_id))

    def get_dag_run(self, dag_id: str, run_id: str) -> dict | None:
        return None

    def is_healthy(self) -> bool:
        return True

    def reparse_dag_file(self, dag_id: str) -> None:
        return None

    def set_dag_paused(self, dag_id: str, paused: bool, wait: float = 0) -> None:
        return None


@pytest.fixture
def airflow(monkeypatch: pytest.MonkeyPatch) -> RecordingAirflow:
    from luna_provider.api import services

    fake = RecordingAirflow()
    monkeypatch.setattr(services, "airflow", lambda: fake)
    return fake


@pytest.fixture(scope="session")
def connexion_app() -> Any:
    from luna_provider.api.app import create_app

    return create_app()


@pytest.fixture
def client(connexion_app: Any, luna_env: Any, engine: Any, airflow: RecordingAirflow) -> Any:
    return connexion_app.test_client()


@pytest.fixture
def headers(account_id: uuid.UUID) -> dict[str, str]:
    return {"Luna-Account-Id": str(account_id)}
