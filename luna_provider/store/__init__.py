"""Service database: models, sessions, migrations and queries."""
