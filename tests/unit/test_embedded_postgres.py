from __future__ import annotations

import socket

import psycopg2
import pytest

from luna_provider.embedded_postgres import EmbeddedPostgres


def test_a_new_cluster_asks_for_the_password(tmp_path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = EmbeddedPostgres(tmp_path / "data", port, tmp_path / "pg.log", password="s3cret/+")
    assert server.start() is True
    try:
        assert server.ensure_database("luna") is True
        assert server.ensure_database("luna") is False
        assert server.scalar("luna", "SELECT 41 + 1") == 42
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(host="127.0.0.1", port=port, user="postgres", dbname="luna").close()
        with pytest.raises(psycopg2.OperationalError, match="password"):
            psycopg2.connect(
                host="127.0.0.1", port=port, user="postgres", dbname="luna", password="no"
            ).close()
        assert "s3cret" not in server.describe()
        from sqlalchemy import create_engine, text

        engine = create_engine(server.url("luna"))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT current_database()")).scalar() == "luna"
        engine.dispose()
    finally:
        server.stop()
    assert not server.is_running()
