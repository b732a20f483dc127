"""Alembic environment of the service database."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine, pool

from luna_provider.store.models import Base

config = context.config


def run_migrations() -> None:
    """Run the migrations online against the configured URL."""
    engine = create_engine(config.get_main_option("sqlalchemy.url"), poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=Base.metadata, compare_type=True)
        with context.begin_transaction():
            # several processes may start at once (api, standalone); one migrates, the others wait
            connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7305000001)")
            context.run_migrations()


run_migrations()
