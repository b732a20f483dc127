"""End-to-end fixtures: one real ``luna-tasks standalone`` stack for the whole test session.

The stack (PostgreSQL, Airflow and the Luna Tasks API) starts once, in a temporary ``LUNA_HOME`` on
free ports, with the repository's ``dags/`` and ``plugins/``; it stops when the session ends. Every
test under ``tests/e2e`` is marked ``e2e``, so ``pytest -m "not e2e"`` skips them.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.util import find_spec
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
#: seconds for the stack to become ready (a first start takes about 20 s on 2 cores)
READY_TIMEOUT = 240.0
#: seconds for the stack to stop after SIGINT before it is killed
STOP_TIMEOUT = 60.0

# Until ``luna_provider.cli`` exists, start the stack through ``standalone.run`` directly.
_RUN_CODE = """
import sys
from pathlib import Path
from luna_provider.settings import load
from luna_provider.standalone import run
ready, repo = Path(sys.argv[1]), Path(sys.argv[2])
sys.exit(run(load(), dags_folder=repo / "dags", plugins_folder=repo / "plugins", ready_file=ready))
"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test in this folder ``e2e``."""
    for item in items:
        if HERE in Path(str(item.fspath)).resolve().parents and item.get_closest_marker("e2e") is None:
            item.add_marker(pytest.mark.e2e)


@dataclass(frozen=True)
class LunaStack:
    """A running stack.

    :ivar api_url: base URL of the Luna Tasks API, without the version (``{api_url}/1/tasks``).
    :ivar airflow_url: base URL of the Airflow api-server.
    :ivar home: the stack's ``LUNA_HOME``.
    :ivar env: environment for CLI commands against this stack (``subprocess.run(..., env=env)``):
        the stack's ``LUNA_*`` and ``AIRFLOW_*`` variables, Airflow login included.
    :ivar facts: the ready file's JSON (URLs, folders, pids).
    """

    api_url: str
    airflow_url: str
    home: Path
    env: dict[str, str]
    facts: dict = field(repr=False)
    process: subprocess.Popen = field(repr=False)

    def log_tails(self, lines: int = 30) -> str:
        """Return the end of every log of the stack, for failure messages."""
        return _log_tails(self.home, lines)


def _free_ports(count: int) -> list[int]:
    """Return distinct ports that are free now (all bound at once so that they differ)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _log_tails(home: Path, lines: int) -> str:
    parts = []
    for path in [home / "standalone.out", *sorted((home / "logs").glob("*.log"))]:
        try:
            tail = path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            continue
        parts.append(f"--- {path.name} ---\n" + "\n".join(tail))
    return "\n".join(parts)


def _command(ready_file: Path) -> list[str]:
    if find_spec("luna_provider.cli") is not None:
        return [sys.executable, "-m", "luna_provider.cli", "standalone", "--ready-file", str(ready_file)]
    return [sys.executable, "-c", _RUN_CODE, str(ready_file), str(REPO)]


def _stop(process: subprocess.Popen, home: Path) -> None:
    """Stop the stack with SIGINT like Ctrl-C; kill whatever is left after the grace period."""
    import psutil

    if process.poll() is None:
        try:
            tree = psutil.Process(process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            tree = []
        process.send_signal(signal.SIGINT)
        try:
            process.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            for proc in [psutil.Process(process.pid), *tree]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
            process.wait(10)
    # PostgreSQL runs detached from the supervisor; make sure it is down even after a kill.
    from luna_provider.embedded_postgres import EmbeddedPostgres

    EmbeddedPostgres(home / "postgres", 0, home / "logs" / "postgres.log").stop()


@pytest.fixture(scope="session")
def luna_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LunaStack]:
    """Start ``luna-tasks standalone`` once per session and yield it as a :class:`LunaStack`."""
    from luna_provider.settings import load
    from luna_provider.stack_config import service_environment
    from luna_provider.supervisor import die_with_parent

    home = tmp_path_factory.mktemp("luna-home")
    ready_file = home / "ready.json"
    postgres_port, airflow_port, api_port = _free_ports(3)
    # Leftovers from the developer's shell or from other tests' fixtures (a SQLite AIRFLOW__ database,
    # another LUNA_HOME) must not leak into the stack.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUNA_", "AIRFLOW"))}
    env.update(
        {
            "LUNA_HOME": str(home),
            "LUNA_POSTGRES_PORT": str(postgres_port),
            "LUNA_AIRFLOW_PORT": str(airflow_port),
            "LUNA_AIRFLOW_API_URL": f"http://127.0.0.1:{airflow_port}",
            "LUNA_API_HOST": "127.0.0.1",
            "LUNA_API_PORT": str(api_port),
            "PYTHONUNBUFFERED": "1",
        }
    )
    started = time.monotonic()
    with open(home / "standalone.out", "wb") as out:
        process = subprocess.Popen(
            _command(ready_file),
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Own session: a Ctrl-C of pytest reaches the stack only through this fixture's teardown;
            # and if pytest dies outright, the stack gets SIGTERM and cleans up.
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    try:
        while not ready_file.exists():
            if process.poll() is not None:
                pytest.fail(
                    f"luna-tasks standalone exited with {process.returncode} before it was ready\n"
                    + _log_tails(home, 40),
                    pytrace=False,
                )
            if time.monotonic() - started > READY_TIMEOUT:
                pytest.fail(
                    f"luna-tasks standalone was not ready after {READY_TIMEOUT:.0f} s\n"
                    + _log_tails(home, 40),
                    pytrace=False,
                )
            time.sleep(0.25)
        facts = json.loads(ready_file.read_text())
        with mock.patch.dict(os.environ, env, clear=True):
            stack_env = service_environment(
                load(), dags_folder=REPO / "dags", plugins_folder=REPO / "plugins"
            )
        yield LunaStack(
            api_url=facts["api_url"],
            airflow_url=facts["airflow_url"],
            home=home,
            env={**env, **stack_env},
            facts=facts,
            process=process,
        )
    finally:
        _stop(process, home)
