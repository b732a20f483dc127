"""Access to the Luna service database and object store from Airflow tasks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow.sdk import BaseHook

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.storage import ObjectStore


class LunaHook(BaseHook):
    """Give tasks the service database (through a Postgres connection) and the object store.

    The database comes from the Airflow connection ``luna_conn_id``; when no such connection is
    defined, from ``LUNA_DATABASE_URL``. The object store comes from ``LUNA_OBJECT_STORE_URL``.

    :param luna_conn_id: id of a ``postgres`` connection to the service database.
    """

    conn_name_attr = "luna_conn_id"
    default_conn_name = "luna_default"
    conn_type = "postgres"
    hook_name = "Luna Tasks"

    def __init__(self, luna_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.luna_conn_id = luna_conn_id

    def database_url(self) -> str:
        """Return the SQLAlchemy URL of the service database."""
        from airflow.sdk.exceptions import AirflowNotFoundException

        from luna_provider.settings import load

        try:
            connection = self.get_connection(self.luna_conn_id)
        except AirflowNotFoundException:
            return load().database_url
        return connection.get_uri()

    def get_engine(self) -> Engine:
        """Return the engine of the service database."""
        from luna_provider.store.db import get_engine

        return get_engine(self.database_url())

    def get_object_store(self) -> ObjectStore:
        """Return the object store of results and samples."""
        from luna_provider.settings import load
        from luna_provider.storage import get_object_store

        return get_object_store(load().object_store_url)
