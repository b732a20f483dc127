"""Figures of the embedded stack: start time, restart time, create-to-done latency, peak memory.

Starts ``luna-tasks standalone`` in a temporary LUNA_HOME on free ports, imports a small set of
faces, runs clustering tasks one after another through the API and samples the resident memory of
the whole process tree (PostgreSQL, Airflow components, workers, API) all along.

    .venv/bin/python bench/bench_stack.py --tasks 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import psutil
import requests

REPO = Path(__file__).resolve().parents[1]


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


class MemorySampler(threading.Thread):
    """Sum the RSS of a process tree (and of PostgreSQL, which runs detached) every half second."""

    def __init__(self, root: int, home: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.home, self.peak, self.stop = root, home, 0, threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.5):
            total = 0
            try:
                tree = [psutil.Process(self.root), *psutil.Process(self.root).children(recursive=True)]
            except psutil.NoSuchProcess:
                continue
            for proc in psutil.process_iter(["cmdline"]):
                if str(self.home) in " ".join(proc.info["cmdline"] or []):
                    tree.append(proc)
            for proc in {p.pid: p for p in tree}.values():
                with contextlib.suppress(psutil.NoSuchProcess):
                    total += proc.memory_info().rss
            self.peak = max(self.peak, total)


def start(env: dict[str, str], home: Path) -> tuple[subprocess.Popen, float]:
    ready = home / "ready.json"
    ready.unlink(missing_ok=True)
    began = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "luna_provider.cli", "standalone", "--ready-file", str(ready)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while not ready.exists():
        if process.poll() is not None or time.monotonic() - began > 300:
            raise SystemExit("the stack did not start; see its logs under " + str(home / "logs"))
        time.sleep(0.2)
    return process, time.monotonic() - began


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    process.wait(90)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", type=int, default=10)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="luna-bench-stack-"))
    postgres, airflow, api_port = free_ports(3)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LUNA_", "AIRFLOW"))}
    env.update(
        LUNA_HOME=str(home),
        LUNA_POSTGRES_PORT=str(postgres),
        LUNA_AIRFLOW_PORT=str(airflow),
        LUNA_API_PORT=str(api_port),
    )
    api = f"http://127.0.0.1:{api_port}/6"

    process, first_start = start(env, home)
    sampler = MemorySampler(process.pid, home)
    sampler.start()
    time.sleep(10)
    idle_peak = sampler.peak

    from luna_provider.demo import synthetic_faces

    account = str(uuid.uuid4())
    faces = home / "faces.jsonl"
    faces.write_text("".join(json.dumps(record) + "\n" for record in synthetic_faces()))
    subprocess.run(
        [sys.executable, "-m", "luna_provider.cli", "import", str(faces), "--account-id", account],
        env=env,
        check=True,
        capture_output=True,
    )
    headers = {"Luna-Account-Id": account}
    latencies = []
    for _ in range(args.tasks):
        began = time.monotonic()
        task_id = requests.post(
            f"{api}/tasks/clustering",
            headers=headers,
            timeout=30,
            json={"content": {"filters": {"object_type": "faces"}}},
        ).json()["task_id"]
        while requests.get(f"{api}/tasks/{task_id}", headers=headers, timeout=10).json()["task_status"] != 5:
            time.sleep(0.05)
        latencies.append(time.monotonic() - began)
    sampler.stop.set()
    stop(process)

    process, restart = start(env, home)
    stop(process)

    print(f"first start (initdb, migrations, all components ready): {first_start:.1f} s")
    print(f"restart with the same LUNA_HOME: {restart:.1f} s")
    print(
        f"clustering of 60 faces, create to done, {args.tasks} tasks one after another: "
        f"median {statistics.median(latencies):.2f} s, min {min(latencies):.2f} s, max {max(latencies):.2f} s"
    )
    print(
        f"peak RSS of the whole stack: idle {idle_peak / 2**30:.2f} GiB, "
        f"while running tasks {sampler.peak / 2**30:.2f} GiB (RSS counts shared pages in every process)"
    )


if __name__ == "__main__":
    main()
