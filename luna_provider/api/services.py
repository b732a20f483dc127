"""Process-wide services the handlers share: settings, database, object store, Airflow client."""

from __future__ import annotations

import functools
import uuid
from typing import TYPE_CHECKING

from connexion import request

from luna_provider.errors import BAD_HEADER, BAD_QUERY_PARAM

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.airflow_client import AirflowClient
    from luna_provider.settings import Settings
    from luna_provider.storage import ObjectStore


@functools.cache
def settings() -> Settings:
    """Return the settings, read once per process."""
    from luna_provider.settings import load

    return load()


def engine() -> Engine:
    """Return the engine of the service database."""
    from luna_provider.store.db import get_engine

    return get_engine(settings().database_url)


def object_store() -> ObjectStore:
    """Return the object store."""
    from luna_provider.storage import get_object_store

    return get_object_store(settings().object_store_url)


@functools.cache
def airflow() -> AirflowClient:
    """Return the client of the Airflow REST API."""
    from luna_provider.airflow_client import AirflowClient

    return AirflowClient.from_settings(settings())


def header_account_id() -> uuid.UUID:
    """Return the ``Luna-Account-Id`` header (the spec makes it required where this is called)."""
    value = request.headers.get("Luna-Account-Id", "")
    try:
        return uuid.UUID(value)
    except ValueError:
        raise BAD_HEADER("Luna-Account-Id", "must be a uuid") from None


def request_account_id(account_id: str | None) -> uuid.UUID:
    """Return the account a read or delete request acts for.

    The account comes from the ``account_id`` query parameter or the ``Luna-Account-Id`` header; one
    of them is required so that no request reaches another account's objects, and both must agree.
    """
    header = request.headers.get("Luna-Account-Id")
    if not account_id and not header:
        raise BAD_QUERY_PARAM("account_id (or the Luna-Account-Id header) is required")
    try:
        accounts = {_account(value) for value in (account_id, header) if value}
    except ValueError:
        raise BAD_QUERY_PARAM("account_id and Luna-Account-Id must be uuids") from None
    if len(accounts) > 1:
        raise BAD_QUERY_PARAM("account_id differs from the Luna-Account-Id header")
    return accounts.pop()


def _account(value: str) -> uuid.UUID:
    """Parse an account id written the way the spec writes uuids (lowercase hex with dashes)."""
    parsed = uuid.UUID(value)
    if str(parsed) != value:
        raise ValueError(value)
    return parsed
