"""Supervise child processes: each in its own process group, logging to its own file."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)


def die_with_parent() -> None:
    """Ask Linux to SIGTERM this child if the supervisor dies without cleaning up (``kill -9``)."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _load_libc() -> object | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


# Loaded before any fork: the pre-exec hook must not import anything.
_LIBC = _load_libc()


class Child:
    """One supervised process in its own process group, writing to its own log file."""

    def __init__(self, name: str, argv: list[str], log_path: Path, env: dict[str, str], cwd: Path) -> None:
        self.name, self.argv, self.log_path, self.env, self.cwd = name, argv, log_path, env, cwd
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        #: monotonic time of the last start
        self.started_at = 0.0

    def start(self) -> None:
        """Start (or restart) the process."""
        self.started_at = time.monotonic()
        with open(self.log_path, "ab") as out:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {self.name} =====\n".encode())
            out.flush()
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                # Own group: Ctrl-C reaches only the supervisor, which stops components in order.
                start_new_session=True,
                preexec_fn=die_with_parent,
            )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.returncode if self.proc is not None else None

    def poll(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def signal_group(self, signum: int) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signum)

    def terminate_group(self) -> None:
        terminate_all([self], grace=5)

    def tail(self, lines: int = 40) -> str:
        """Return the end of the log since the last start, for error messages."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        header = text.rfind(f" starting {self.name} =====")
        if header >= 0:
            text = text[text.find("\n", header) + 1 :]
        return f"--- last lines of {self.log_path} ---\n" + "\n".join(text.splitlines()[-lines:])


class ChildFailed(Exception):
    """Raise when a component exits during start-up."""

    def __init__(self, child: Child) -> None:
        super().__init__(child.name)
        self.child = child


def _live_groups() -> set[int]:
    """Return the process groups that still hold a process which is not a zombie."""
    import psutil

    groups = set()
    for proc in psutil.process_iter(["status"]):
        try:
            if proc.info["status"] != psutil.STATUS_ZOMBIE:
                groups.add(os.getpgid(proc.pid))
        except (ProcessLookupError, psutil.Error):
            continue
    return groups


def terminate_all(children: list[Child], grace: float, hurry: threading.Event | None = None) -> None:
    """SIGTERM the children's process groups, wait up to ``grace`` seconds, SIGKILL what is left.

    :param hurry: when set (a second Ctrl-C), stop waiting and kill at once.
    """
    started = [child for child in children if child.proc is not None]
    for child in started:
        child.signal_group(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while True:
        for child in started:
            child.poll()  # reap leaders, or they count as live
        alive = [child for child in started if child.pid in _live_groups()]
        if not alive or time.monotonic() > deadline or (hurry is not None and hurry.is_set()):
            break
        time.sleep(0.2)
    for child in alive:
        log.warning("%s did not stop in %.0f s; killing it", child.name, grace)
        child.signal_group(signal.SIGKILL)
    for child in started:
        try:
            child.proc.wait(5)  # type: ignore[union-attr]
        except subprocess.TimeoutExpired:
            log.error("%s (pid %s) did not exit", child.name, child.pid)
