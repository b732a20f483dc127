"""The migrations build exactly the schema the models describe."""

from __future__ import annotations


def test_models_and_migrations_agree(engine) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from luna_provider.store.models import Base

    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)

    assert differences == []
