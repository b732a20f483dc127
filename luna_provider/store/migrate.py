"""Apply the Alembic migrations of the service database."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from luna_provider.store.db import normalise_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str) -> Config:
    """Return an Alembic configuration pointing at ``database_url``."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", normalise_url(database_url).replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate the service database at ``database_url`` to ``revision``."""
    command.upgrade(alembic_config(database_url), revision)
