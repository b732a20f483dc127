"""Time and memory of clustering N descriptors through the operator's phases (no scheduler).

Runs split, every subtask and collect in this process against a throw-away embedded PostgreSQL, the
way the DAG runs them in separate processes, and reports per phase the time and the peak resident
memory growth, next to what an n-by-n float32 similarity matrix would take.

    .venv/bin/python bench/bench_clustering.py --count 100000 --block 2048 --subtask-size 20000
"""

from __future__ import annotations

import argparse
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--people", type=int, default=2_000)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--subtask-size", type=int, default=20_000)
    args = parser.parse_args()

    import numpy as np
    from _database import bench_database, peak_rss_mb

    work, url = bench_database(
        LUNA_MATCH_BLOCK_SIZE=str(args.block),
        LUNA_CLUSTERING_SUBTASK_SIZE=str(args.subtask_size),
    )

    from luna_provider.compute.descriptors import DLIB_RESNET_V1
    from luna_provider.importer import import_faces
    from luna_provider.operators.clustering import LunaClusteringOperator
    from luna_provider.settings import load
    from luna_provider.storage import ObjectStore
    from luna_provider.store.db import get_engine
    from luna_provider.submission import store_task
    from luna_provider.task_types import TaskType

    engine = get_engine(url)
    account = uuid.uuid4()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.people, 128))
    centres *= 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)

    def records():
        for start in range(0, args.count, 10_000):
            size = min(10_000, args.count - start)
            vectors = centres[rng.integers(0, args.people, size=size)] + rng.normal(
                scale=0.03, size=(size, 128)
            )
            for index, vector in enumerate(vectors.astype(np.float32)):
                yield start + index, {"descriptor": vector.tolist()}

    started = time.monotonic()
    import_faces(engine, account, records(), DLIB_RESNET_V1, batch_size=5000)
    print(f"import of {args.count} faces: {time.monotonic() - started:.1f} s")

    task_id = store_task(
        engine, TaskType.CLUSTERING, account, {"content": {"filters": {"object_type": "faces"}}}
    )
    kwargs = {"engine": engine, "store": ObjectStore((work / "objects").as_uri()), "settings": load()}
    base = peak_rss_mb()

    started = time.monotonic()
    parts = LunaClusteringOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    print(
        f"split: {time.monotonic() - started:.1f} s, {len(parts)} subtasks, peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.monotonic()
    for part in parts:
        LunaClusteringOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    print(
        f"subtasks: {time.monotonic() - started:.1f} s in all (one process), peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.monotonic()
    LunaClusteringOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    print(f"collect: {time.monotonic() - started:.1f} s, peak RSS {peak_rss_mb():.0f} MB")

    from luna_provider import lifecycle

    result = kwargs["store"].get_json(lifecycle.get_task(engine, task_id).result_key)["result"]
    print(
        f"{result['total_objects']} objects, {result['total_clusters']} clusters "
        f"(planted {args.people} people); peak RSS growth {peak_rss_mb() - base:.0f} MB; "
        f"an n-by-n float32 matrix would take {args.count**2 * 4 / 2**20:.0f} MB"
    )


if __name__ == "__main__":
    main()
