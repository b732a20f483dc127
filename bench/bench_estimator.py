"""Speed and memory of the estimator on the shared sample photos, each subtask in its own process.

Runs ``split`` in this process against a throw-away embedded PostgreSQL, then every subtask in a
fresh Python process, the way an Airflow worker runs a mapped task instance, one after the other on
one core, and reports images per second, milliseconds per face and the peak resident memory (RSS)
of the worker processes. ``--copies N`` reads the photo folder N times over (symbolic links), to
show that a worker's memory does not grow with the size of the source.

    .venv/bin/python bench/bench_estimator.py                      # ../shared/data/faces
    .venv/bin/python bench/bench_estimator.py --copies 5 --subtask-size 50
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_SUBTASK = """
import json, resource, sys, time
started = time.monotonic()
from luna_provider.operators.estimator import LunaEstimatorOperator
from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.db import get_engine
settings = load()
part = json.loads(sys.argv[2])
loaded = time.monotonic()
from luna_provider.faces import get_face_engine
get_face_engine(settings.default_descriptor_version, settings.face_detect_max_side)
ready = time.monotonic()
LunaEstimatorOperator(task_id="subtask", phase="subtask", part=part).run_phase(
    int(sys.argv[1]),
    engine=get_engine(settings.database_url),
    store=ObjectStore(settings.object_store_url),
    settings=settings,
)
done = time.monotonic()
print(json.dumps({"import": loaded - started, "models": ready - loaded, "work": done - ready,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def source_folder(folder: Path, copies: int, work: Path) -> Path:
    """Return ``folder``, or a folder that holds it ``copies`` times over through symbolic links."""
    if copies <= 1:
        return folder
    root = work / "source"
    for copy in range(copies):
        for path in folder.rglob("*"):
            if path.is_file():
                target = root / f"copy{copy}" / path.relative_to(folder)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(path)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--folder", type=Path, default=None, help="photos (default: LUNA_SAMPLE_FACES or ../shared)"
    )
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--subtask-size", type=int, default=50)
    args = parser.parse_args()
    folder = args.folder or Path(
        os.environ.get("LUNA_SAMPLE_FACES") or REPO.parent / "shared" / "data" / "faces"
    )
    if not folder.is_dir():
        sys.exit(f"no photos in {folder}: pass --folder or set LUNA_SAMPLE_FACES")

    from luna_provider.embedded_postgres import EmbeddedPostgres

    work = Path(tempfile.mkdtemp(prefix="luna-bench-"))
    server = EmbeddedPostgres(work / "pg", free_port(), work / "postgres.log")
    server.start()
    try:
        server.ensure_database("bench")
        url = server.url("bench")
        os.environ.update(
            LUNA_HOME=str(work / "home"),
            LUNA_DATABASE_URL=url,
            LUNA_OBJECT_STORE_URL=(work / "objects").as_uri(),
            LUNA_ESTIMATOR_SUBTASK_SIZE=str(args.subtask_size),
        )
        run(url, source_folder(folder.resolve(), args.copies, work), work)
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def run(url: str, folder: Path, work: Path) -> None:
    from luna_provider import lifecycle
    from luna_provider.operators.estimator import LunaEstimatorOperator
    from luna_provider.settings import load
    from luna_provider.storage import ObjectStore
    from luna_provider.store.db import get_engine
    from luna_provider.store.migrate import upgrade
    from luna_provider.submission import store_task
    from luna_provider.task_types import TaskType

    upgrade(url)
    engine = get_engine(url)
    store = ObjectStore((work / "objects").as_uri())
    content = {
        "source": {"source_type": "network_disk", "path": str(folder), "recursive": True},
        "handler": {"policies": {"storage_policy": {"event_policy": {"store_event": 1}}}},
    }
    task_id = store_task(engine, TaskType.ESTIMATOR, uuid.uuid4(), {"content": content})
    kwargs = {"engine": engine, "store": store, "settings": load()}

    started = time.monotonic()
    parts = LunaEstimatorOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    split = time.monotonic() - started
    images = sum(part["count_objects"] for part in parts)
    print(f"split: {images} images listed in {split:.2f} s, {len(parts)} subtasks", flush=True)

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    workers = []
    for part in parts:
        done = subprocess.run(
            [sys.executable, "-c", _SUBTASK, str(task_id), json.dumps(part)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        workers.append(json.loads(done.stdout.strip().splitlines()[-1]))
        last = workers[-1]
        print(
            f"  subtask {part['subtask_id']}: {part['count_objects']} images, work {last['work']:.1f} s "
            f"(+ imports {last['import']:.1f} s, models {last['models']:.1f} s), "
            f"peak RSS {last['peak_rss_mb']:.0f} MB",
            flush=True,
        )
    LunaEstimatorOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)

    result = store.get_json(lifecycle.get_task(engine, task_id).result_key)["result"]
    work_seconds = sum(worker["work"] for worker in workers)
    overhead = sum(worker["import"] + worker["models"] for worker in workers)
    faces = result["total_faces"]
    print(
        f"\n{result['total_images']} images, {faces} faces, {result['failed_images']} without a face\n"
        f"one worker: {result['total_images'] / work_seconds:.2f} images/s, "
        f"{1000 * work_seconds / max(faces, 1):.0f} ms per face (detection, sample, descriptor, age/gender "
        f"and saving, all included)\n"
        f"per subtask process: {overhead / len(workers):.1f} s of imports and model loading\n"
        f"peak RSS of a worker: {max(worker['peak_rss_mb'] for worker in workers):.0f} MB"
    )


if __name__ == "__main__":
    main()
