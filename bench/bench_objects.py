"""Time and memory of linking N faces to a new list, then garbage-collecting them, phase by phase.

Runs split, every subtask and collect in this process against a throw-away embedded PostgreSQL,
the way the DAGs run them in separate processes. Every face has two descriptors and one sample
(row and file), so the garbage collection deletes N faces, 2N descriptors, N links and N samples.

    .venv/bin/python bench/bench_objects.py --count 100000
"""

from __future__ import annotations

import argparse
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--linker-subtask-size", type=int, default=1000)
    parser.add_argument("--gc-subtask-size", type=int, default=10_000)
    parser.add_argument("--gc-batch-size", type=int, default=500)
    args = parser.parse_args()

    import numpy as np
    from _database import bench_database, peak_rss_mb
    from sqlalchemy import insert, text

    work, url = bench_database(
        LUNA_LINKER_SUBTASK_SIZE=str(args.linker_subtask_size),
        LUNA_GC_SUBTASK_SIZE=str(args.gc_subtask_size),
        LUNA_GC_BATCH_SIZE=str(args.gc_batch_size),
    )

    from luna_provider import lifecycle
    from luna_provider.operators.gc import LunaGcOperator
    from luna_provider.operators.linker import LunaLinkerOperator
    from luna_provider.settings import load
    from luna_provider.storage import ObjectStore
    from luna_provider.store.db import get_engine
    from luna_provider.store.models import Face, FaceDescriptor, Sample
    from luna_provider.submission import store_task

    engine = get_engine(url)
    store = ObjectStore((work / "objects").as_uri())
    account = uuid.uuid4()
    rng = np.random.default_rng(0)
    started = time.monotonic()
    for start in range(0, args.count, 5000):
        size = min(5000, args.count - start)
        faces = [{"face_id": uuid.uuid4(), "account_id": account} for _ in range(size)]
        vectors = rng.normal(size=(2 * size, 128)).astype("<f4")
        descriptors = [
            {
                "face_id": face["face_id"],
                "descriptor_version": version,
                "descriptor": vectors[2 * i + k].tobytes(),
            }
            for i, face in enumerate(faces)
            for k, version in enumerate((201, 202))
        ]
        samples = []
        for face in faces:
            key = f"samples/{account}/{face['face_id']}.jpg"
            with store.open(key, "wb") as stream:
                stream.write(b"\xff\xd8")
            samples.append({"account_id": account, "face_id": face["face_id"], "storage_key": key})
        with engine.begin() as connection:
            connection.execute(insert(Face), faces)
            connection.execute(insert(FaceDescriptor), descriptors)
            connection.execute(insert(Sample), samples)
    print(f"setup of {args.count} faces with descriptors and samples: {time.monotonic() - started:.1f} s")
    # what autovacuum does a while after a bulk load; without statistics the planner may pick the
    # account index and sort the account's rows for every batch
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))
    kwargs = {"engine": engine, "store": store, "settings": load()}

    def run(operator: type, content: dict) -> dict:
        task_id = store_task(engine, operator.task_type, account, {"content": content})
        base = peak_rss_mb()
        started = time.monotonic()
        parts = operator(task_id="split", phase="split").run_phase(task_id, **kwargs)
        split = time.monotonic() - started
        for part in parts:
            operator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
        subtasks = time.monotonic() - started - split
        operator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
        total = time.monotonic() - started
        print(
            f"{operator.task_type.slug}: split {split:.1f} s ({len(parts)} subtasks), "
            f"subtasks {subtasks:.1f} s, "
            f"collect {total - split - subtasks:.1f} s; {args.count / total:.0f} objects/s; "
            f"peak RSS growth {peak_rss_mb() - base:.0f} MB"
        )
        task = lifecycle.get_task(engine, task_id)
        assert task.task_status == 5, task
        return store.get_json(task.result_key)["result"]

    linked = run(LunaLinkerOperator, {"list": {"create_list": 1}, "filters": {"object_type": "faces"}})
    print(f"  linked {linked['linked_faces']} faces to list {linked['list_id']}")
    removed = run(LunaGcOperator, {"target": "faces", "remove_samples": True})
    print(f"  removed {removed}")


if __name__ == "__main__":
    main()
