"""``luna-tasks standalone``: PostgreSQL, Airflow and the Luna Tasks API on one machine.

Everything lives under ``LUNA_HOME``: ``postgres/`` (data), ``airflow/`` (AIRFLOW_HOME), ``logs/``
(one log per process) and ``secrets/stack.json`` (JWT secret, session key, Fernet key and the Airflow
admin password, generated once; mode 0600, never logged).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from importlib.util import find_spec
from pathlib import Path

from luna_provider.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError
from luna_provider.settings import Settings, embedded_database_url, mask_url
from luna_provider.stack_config import (
    admin_credentials,
    airflow_url,
    embedded_airflow_credentials,
    needs_embedded_postgres,
    secrets_file,
    service_environment,
    stack_secrets,
    with_embedded_password,
    write_airflow_passwords,
)
from luna_provider.supervisor import Child, ChildFailed, terminate_all

log = logging.getLogger(__name__)

__all__ = ["StartupError", "embedded_airflow_credentials", "run", "service_environment"]

AIRFLOW_COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
API_APP_MODULE = "luna_provider.api.app"
MIGRATE_MODULE = "luna_provider.store.migrate"
#: restarts of one crashed component within RESTART_WINDOW before the whole stack gives up
MAX_RESTARTS = 3
#: a component that ran this long since its last restart starts a fresh count
RESTART_WINDOW = 600.0
#: attempts (a few seconds apart) to bring a crashed PostgreSQL back
POSTGRES_RESTART_ATTEMPTS = 10


class StartupError(RuntimeError):
    """Raise when a part of the stack does not come up."""


class _Interrupted(Exception):
    """Raise inside start-up when SIGINT or SIGTERM arrives."""


def _airflow_version() -> str:
    from importlib.metadata import version

    return version("apache-airflow-core")


def _shown(url: str) -> str:
    """Return ``url`` with its password hidden, if it has one."""
    credentials = url.partition("://")[2].rpartition("@")[0]
    return mask_url(url) if ":" in credentials else url


def _module_exists(name: str) -> bool:
    try:
        return find_spec(name) is not None
    except ImportError:
        return False


# -- the stack --------------------------------------------------------------------------------------


class _Stack:
    def __init__(self, settings: Settings, dags_folder: Path, plugins_folder: Path) -> None:
        self.settings = with_embedded_password(settings)
        self.dags_folder = Path(dags_folder).resolve()
        self.plugins_folder = Path(plugins_folder).resolve()
        self.logs = settings.home / "logs"
        self.children: list[Child] = []
        self.postgres: EmbeddedPostgres | None = None
        self.stop_event = threading.Event()
        self.hurry = threading.Event()
        self.api_started = False
        self.env: dict[str, str] = {}

    # start-up -----------------------------------------------------------------------------------

    def start(self, ready_file: Path | None, timeout: float) -> None:
        began = time.monotonic()
        settings = self.settings
        for folder in (settings.home, self.logs, settings.home / "airflow"):
            folder.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(parents=True, exist_ok=True)
        self.plugins_folder.mkdir(parents=True, exist_ok=True)
        service_env = service_environment(
            settings, dags_folder=self.dags_folder, plugins_folder=self.plugins_folder
        )
        self.env = {**os.environ, **service_env, "PYTHONUNBUFFERED": "1"}
        write_airflow_passwords(settings)
        self._check_ports()

        if needs_embedded_postgres(settings):
            self.postgres = EmbeddedPostgres(
                settings.home / "postgres",
                settings.postgres_port,
                self.logs / "postgres.log",
                password=stack_secrets(settings.home)["postgres_password"],
            )
            try:
                created = self.postgres.start()
                for database in ("airflow", "luna"):
                    self.postgres.ensure_database(database)
            except EmbeddedPostgresError as exc:
                raise StartupError(f"PostgreSQL did not start: {exc}") from None
            log.info(
                "PostgreSQL ready%s (%.1f s)", " (new cluster)" if created else "", time.monotonic() - began
            )
        else:
            log.info("Both databases are external; not starting the embedded PostgreSQL")

        self._migrate(timeout)
        log.info("Databases migrated (%.1f s)", time.monotonic() - began)

        for name in AIRFLOW_COMPONENTS:
            argv = [sys.executable, "-m", "airflow", name]
            if name in ("scheduler", "triggerer"):
                # Task logs are files on this machine, which the api-server reads directly; the log
                # servers would only add two processes listening on 0.0.0.0:8793/8794, ports that two
                # stacks on one machine would fight over.
                argv.append("--skip-serve-logs")
            self.children.append(self._spawn(name, argv))
        if _module_exists(API_APP_MODULE):
            self.children.append(self._spawn("luna-api", self._api_command()))
            self.api_started = True
        else:
            log.warning("%s does not exist yet; not starting the Luna Tasks API", API_APP_MODULE)

        self._wait_ready(began, began + timeout)
        facts = self._facts(time.monotonic() - began)
        _print_table(facts)
        if ready_file is not None:
            ready_file = Path(ready_file)
            tmp = ready_file.with_name(ready_file.name + ".tmp")
            tmp.write_text(json.dumps(facts, indent=2))
            tmp.replace(ready_file)

    def _check_ports(self) -> None:
        """Fail at once, rather than after a component's start-up, when a port is taken."""
        s = self.settings
        ports = [
            ("LUNA_AIRFLOW_PORT", "127.0.0.1", s.airflow_port),
            ("LUNA_API_PORT", s.api_host, s.api_port),
        ]
        postgres = EmbeddedPostgres(s.home / "postgres", s.postgres_port, self.logs / "postgres.log")
        if needs_embedded_postgres(s) and not postgres.is_running():  # a leftover of ours is restarted
            ports.append(("LUNA_POSTGRES_PORT", "127.0.0.1", s.postgres_port))
        for name, host, port in ports:
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    sock.bind((host, port))
                except OSError as exc:
                    raise StartupError(f"{host}:{port} ({name}) is not available: {exc.strerror}") from None

    def _wait_ready(self, began: float, deadline: float) -> None:
        """Wait for the api-server, a healthy scheduler, every ``luna_*`` DAG file and the Luna API."""
        import requests

        from luna_provider.airflow_client import AirflowApiError, AirflowClient

        user, password = admin_credentials(self.settings)
        client = AirflowClient(airflow_url(self.settings), user, password, timeout=5, retries=0)
        expected = sorted(path.stem for path in self.dags_folder.glob("luna_*.py"))
        started_at = datetime.now(UTC) - timedelta(seconds=time.monotonic() - began)
        stage = "a healthy Airflow scheduler"
        next_report = time.monotonic() + 30
        while True:
            self.check_children()
            if time.monotonic() > next_report:
                log.info("Still waiting for %s (%.0f s)", stage, time.monotonic() - began)
                next_report += 30
            if self.postgres is not None and not self.postgres.is_running():
                raise StartupError(f"PostgreSQL stopped\n{self.postgres.log_tail()}")
            if time.monotonic() > deadline:
                tails = "\n".join(child.tail(15) for child in self.children)
                hint = ""
                if stage.startswith("DAGs"):
                    hint = (
                        " (each luna_*.py file must define a DAG; Airflow's safe mode skips files that"
                        " lack the words 'airflow' and 'dag')"
                    )
                raise StartupError(f"not ready in time: still waiting for {stage}{hint}\n{tails}")
            if stage.startswith("a healthy"):
                if not client.is_healthy():
                    self.sleep(0.5)
                    continue
                log.info("Airflow is healthy (%.1f s)", time.monotonic() - began)
                stage = f"DAGs {', '.join(expected)}"
            if stage.startswith("DAGs"):
                try:
                    dag_files = client.dag_files()
                    # A file counts once its DAG is there, or any DAG from it (generator files).
                    registered = set(dag_files) | {Path(loc).stem for loc in dag_files.values()}
                    broken = {
                        name: error
                        # Errors from before this start may be about files fixed since.
                        for name, error in client.import_errors(since=started_at).items()
                        if Path(name).stem in expected
                    }
                except AirflowApiError as exc:
                    log.debug("DAG listing failed: %s", exc)
                    self.sleep(0.5)
                    continue
                if broken:
                    raise StartupError("DAG files do not import:\n" + "\n".join(broken.values()))
                missing = [dag_id for dag_id in expected if dag_id not in registered]
                if missing:
                    stage = f"DAGs {', '.join(missing)}"
                    self.sleep(0.5)
                    continue
                log.info("%d luna_* DAGs registered (%.1f s)", len(expected), time.monotonic() - began)
                stage = "the Luna Tasks API"
            if not self.api_started:
                return
            host = "127.0.0.1" if self.settings.api_host in ("0.0.0.0", "::") else self.settings.api_host
            try:
                resp = requests.get(f"http://{host}:{self.settings.api_port}/1/healthcheck", timeout=5)
            except requests.RequestException:
                self.sleep(0.5)
                continue
            if resp.status_code == 404:
                log.warning("The Luna Tasks API has no /1/healthcheck yet; not waiting for it")
                return
            if resp.status_code == 200:
                log.info("Luna Tasks API is healthy (%.1f s)", time.monotonic() - began)
                return
            self.sleep(0.5)

    def _migrate(self, timeout: float) -> None:
        """Migrate Airflow's schema (unless known current) and the service schema, side by side."""
        marker = self.settings.home / "airflow" / ".luna-schema.json"
        state = {"airflow": _airflow_version(), "revision": self._airflow_revision()}
        migrate = None
        if state["revision"] is None or not marker.exists() or json.loads(marker.read_text()) != state:
            migrate = self._spawn("airflow-db-migrate", [sys.executable, "-m", "airflow", "db", "migrate"])
        else:
            # `airflow db migrate` costs ~4 s even with nothing to do.
            log.info(
                "Airflow schema is at revision %s already; skipping airflow db migrate", state["revision"]
            )
        # The service schema migrates in its own process, alongside Airflow's, which keeps Alembic's
        # logging set-up and imports out of this long-lived supervisor.
        if _module_exists(MIGRATE_MODULE):
            code = (
                f"import os; from {MIGRATE_MODULE} import upgrade; upgrade(os.environ['LUNA_DATABASE_URL'])"
            )
            self._wait_exit(self._spawn("luna-db-migrate", [sys.executable, "-c", code]), timeout)
        else:
            log.warning("%s does not exist yet; skipping the service database migrations", MIGRATE_MODULE)
        if migrate is not None:
            self._wait_exit(migrate, timeout)
            state["revision"] = self._airflow_revision()
            if state["revision"] is not None:
                marker.write_text(json.dumps(state))

    def _airflow_revision(self) -> str | None:
        """Return the Alembic revision of the embedded Airflow database, if that is where it lives."""
        password = stack_secrets(self.settings.home)["postgres_password"]
        embedded = embedded_database_url(self.settings.postgres_port, "airflow", password=password)
        if self.postgres is None or self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] != embedded:
            return None
        return self.postgres.scalar("airflow", "SELECT version_num FROM alembic_version")

    def _api_command(self) -> list[str]:
        s = self.settings
        return [
            sys.executable, "-m", "uvicorn", "--factory", f"{API_APP_MODULE}:create_asgi_app",
            "--host", s.api_host, "--port", str(s.api_port), "--timeout-graceful-shutdown", "5",
            # the API logs each request itself, with its request id
            "--no-access-log",
        ]  # fmt: skip

    def _spawn(self, name: str, argv: list[str]) -> Child:
        child = Child(name, argv, self.logs / f"{name}.log", self.env, cwd=self.settings.home)
        child.start()
        return child

    def _wait_exit(self, child: Child, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while child.poll() is None:
            self.sleep(0.2)
            if time.monotonic() > deadline:
                child.terminate_group()
                raise StartupError(f"{child.name} did not finish in {timeout:.0f} s\n{child.tail()}")
        if child.returncode != 0:
            raise StartupError(f"{child.name} exited with {child.returncode}\n{child.tail()}")

    def sleep(self, seconds: float) -> None:
        """Wait, and raise :class:`_Interrupted` when a stop was requested."""
        if self.stop_event.wait(seconds):
            raise _Interrupted

    def check_children(self) -> None:
        """Raise :class:`ChildFailed` if a component died during start-up."""
        for child in self.children:
            if child.poll() is not None:
                raise ChildFailed(child)

    def _facts(self, elapsed: float) -> dict[str, object]:
        s = self.settings
        postgres_url = self.postgres.describe() if self.postgres else _shown(s.database_url)
        user, _ = admin_credentials(s)
        api_host = "127.0.0.1" if s.api_host in ("0.0.0.0", "::") else s.api_host
        return {
            "postgres_url": postgres_url,
            "airflow_db_url": _shown(self.env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]),
            "service_db_url": _shown(s.database_url),
            "airflow_url": airflow_url(s),
            "airflow_username": user,
            "airflow_password_file": str(secrets_file(s.home)) if not s.airflow_username else "",
            "api_url": f"http://{api_host}:{s.api_port}" if self.api_started else "",
            "home": str(s.home),
            "logs": str(self.logs),
            "dags_folder": str(self.dags_folder),
            "pid": os.getpid(),
            "started_in": round(elapsed, 1),
            "components": {child.name: child.pid for child in self.children},
        }

    # running ------------------------------------------------------------------------------------

    def effective_settings(self) -> Settings:
        """Return the settings with the stack's own Airflow URL and admin login."""
        user, password = admin_credentials(self.settings)
        return dataclasses.replace(
            self.settings,
            airflow_api_url=airflow_url(self.settings),
            airflow_username=user,
            airflow_password=password,
        )

    def supervise(self) -> int:
        """Restart crashed components until asked to stop; return the exit code."""
        while not self.stop_event.wait(1.0):
            for child in self.children:
                if child.poll() is None:
                    continue
                log.error("%s exited with %s", child.name, child.returncode)
                if time.monotonic() - child.started_at > RESTART_WINDOW:
                    child.restarts = 0
                if child.restarts >= MAX_RESTARTS:
                    log.error(
                        "%s crashed %d times; stopping the stack\n%s",
                        child.name,
                        child.restarts,
                        child.tail(),
                    )
                    return 1
                child.restarts += 1
                terminate_all([child], grace=5)  # orphans of the old leader, e.g. executor workers
                log.warning("Restarting %s (restart %d of %d)", child.name, child.restarts, MAX_RESTARTS)
                child.start()
            if self.postgres is not None and not self.postgres.is_running() and not self.stop_event.is_set():
                log.error("PostgreSQL stopped; starting it again\n%s", self.postgres.log_tail())
                if not self._restart_postgres():
                    return 1
        return 0

    def _restart_postgres(self) -> bool:
        """Start PostgreSQL again, waiting for the backends of the crashed server to go away."""
        assert self.postgres is not None
        for attempt in range(1, POSTGRES_RESTART_ATTEMPTS + 1):
            try:
                self.postgres.start()
                return True
            except EmbeddedPostgresError as exc:
                log.warning("PostgreSQL restart %d of %d failed: %s", attempt, POSTGRES_RESTART_ATTEMPTS, exc)
            if self.stop_event.wait(min(2.0 * attempt, 10.0)):
                return False
        log.error("PostgreSQL did not come back; stopping the stack")
        return False

    def stop(self) -> None:
        terminate_all(self.children, grace=15, hurry=self.hurry)
        if self.postgres is not None:
            self.postgres.stop()


def _print_table(facts: dict[str, object]) -> None:
    login = f"user {facts['airflow_username']}"
    if facts["airflow_password_file"]:
        login += f", password in {facts['airflow_password_file']}"
    rows = [
        ("PostgreSQL", str(facts["postgres_url"])),
        ("Airflow UI", f"{facts['airflow_url']}  ({login})"),
        ("Luna API", f"{facts['api_url']}/6 (also /1)" if facts["api_url"] else "(not started)"),
        ("LUNA_HOME", str(facts["home"])),
        ("Logs", str(facts["logs"])),
    ]
    print(f"\nLuna Tasks standalone is ready (started in {facts['started_in']} s)", flush=True)
    for name, value in rows:
        print(f"  {name:<11} {value}", flush=True)
    print("Press Ctrl-C to stop.\n", flush=True)


def run(
    settings: Settings,
    *,
    dags_folder: Path,
    plugins_folder: Path,
    ready_file: Path | None = None,
    on_ready: Callable[[Settings], object] | None = None,
    start_timeout: float = 300.0,
) -> int:
    """Start PostgreSQL, Airflow and the Luna Tasks API, and block until SIGINT or SIGTERM.

    :param ready_file: written with JSON facts about the stack (URLs, folders, pids) once it is ready.
    :param on_ready: called once ready with the settings the stack's processes see (its own Airflow
        URL and admin login); it must not block.
    :param start_timeout: seconds for the whole start-up.
    :returns: 0 after a requested stop, 1 if start-up failed or a component kept crashing.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    stack = _Stack(settings, dags_folder, plugins_folder)
    signals_seen = 0

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal signals_seen
        signals_seen += 1
        if signals_seen > 1:  # a second Ctrl-C skips the grace period
            stack.hurry.set()
        log.info("Received %s; stopping", signal.Signals(signum).name)
        stack.stop_event.set()

    previous = {}
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Outside the main thread this raises ValueError: the caller then handles stopping.
        with contextlib.suppress(ValueError):
            previous[signum] = signal.signal(signum, on_signal)
    try:
        try:
            stack.start(ready_file, start_timeout)
        except _Interrupted:
            return 0
        except ChildFailed as exc:
            log.error(
                "%s exited with %s during start-up\n%s",
                exc.child.name,
                exc.child.returncode,
                exc.child.tail(),
            )
            return 1
        except StartupError as exc:
            log.error("Start-up failed: %s", exc)
            return 1
        if on_ready is not None:
            try:
                on_ready(stack.effective_settings())
            except Exception:
                log.exception("on_ready callback failed")
        return stack.supervise()
    finally:
        stack.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
