"""A throw-away PostgreSQL with a migrated service database, shared by the benchmarks."""

from __future__ import annotations

import resource
import socket
import tempfile
from pathlib import Path


def peak_rss_mb() -> float:
    """Return this process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_database(**settings: object) -> tuple[Path, str]:
    """Start PostgreSQL in a temporary folder and point the ``LUNA_*`` settings at it.

    :param settings: further settings, e.g. ``LUNA_MATCH_BLOCK_SIZE=2048``.
    :returns: the folder (the object store lies in ``objects/``) and the URL of a migrated database.
    """
    import atexit
    import os

    from luna_provider.embedded_postgres import EmbeddedPostgres
    from luna_provider.store.migrate import upgrade

    work = Path(tempfile.mkdtemp(prefix="luna-bench-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = EmbeddedPostgres(work / "pg", port, work / "pg.log")
    server.start()
    atexit.register(server.stop)
    server.ensure_database("bench")
    url = server.url("bench")
    upgrade(url)
    os.environ.update(
        LUNA_DATABASE_URL=url,
        LUNA_OBJECT_STORE_URL=(work / "objects").as_uri(),
        **{name: str(value) for name, value in settings.items()},
    )
    return work, url
