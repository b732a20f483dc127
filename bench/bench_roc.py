"""Time and memory of a ROC task over a labelled markup of N faces, through the operator's phases.

Runs split, every subtask and collect in this process against a throw-away embedded PostgreSQL (no
scheduler), and reports per phase the time and the peak resident memory, next to what the list of
all pair scores would take.

    .venv/bin/python bench/bench_roc.py --count 20000 --labels 2000
"""

from __future__ import annotations

import argparse
import time
import uuid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--labels", type=int, default=2_000)
    parser.add_argument("--block", type=int, default=2048)
    parser.add_argument("--subtask-size", type=int, default=10_000)
    args = parser.parse_args()

    import numpy as np
    from _database import bench_database, peak_rss_mb

    work, url = bench_database(
        LUNA_MATCH_BLOCK_SIZE=str(args.block),
        LUNA_ROC_SUBTASK_SIZE=str(args.subtask_size),
    )

    from luna_provider import lifecycle
    from luna_provider.compute.descriptors import DLIB_RESNET_V1
    from luna_provider.importer import import_faces
    from luna_provider.operators.roc import LunaRocOperator
    from luna_provider.settings import load
    from luna_provider.storage import ObjectStore
    from luna_provider.store.db import get_engine
    from luna_provider.submission import store_task
    from luna_provider.task_types import TaskType

    engine = get_engine(url)
    account = uuid.uuid4()
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(args.labels, 128))
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)
    labels = rng.integers(0, args.labels, size=args.count)
    noise = rng.normal(size=(args.count, 128)) * rng.uniform(0.3, 1.7, size=(args.count, 1)) * 0.04
    vectors = (centres[labels] + noise).astype(np.float32)
    ids = [str(uuid.uuid4()) for _ in range(args.count)]

    started = time.monotonic()
    records = ({"face_id": i, "descriptor": v.tolist()} for i, v in zip(ids, vectors, strict=True))
    import_faces(engine, account, enumerate(records), DLIB_RESNET_V1, batch_size=5000)
    print(f"import of {args.count} faces: {time.monotonic() - started:.1f} s")
    markup = {"items": [{"object_id": i, "label": f"p{label}"} for i, label in zip(ids, labels, strict=True)]}
    task_id = store_task(engine, TaskType.ROC, account, {"content": {"markup": markup}})
    kwargs = {"engine": engine, "store": ObjectStore((work / "objects").as_uri()), "settings": load()}
    base = peak_rss_mb()

    started = time.monotonic()
    parts = LunaRocOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    print(
        f"split: {time.monotonic() - started:.1f} s, {len(parts)} subtasks, peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.monotonic()
    for part in parts:
        LunaRocOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    print(
        f"subtasks: {time.monotonic() - started:.1f} s in all (one process), peak RSS {peak_rss_mb():.0f} MB"
    )
    started = time.monotonic()
    LunaRocOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    print(f"collect: {time.monotonic() - started:.1f} s, peak RSS {peak_rss_mb():.0f} MB")

    result = kwargs["store"].get_json(lifecycle.get_task(engine, task_id).result_key)["result"]
    pairs = result["positive_pairs"] + result["negative_pairs"]
    print(
        f"{result['total_objects']} objects, {pairs} pairs, AUC {result['auc']:.6f}, "
        f"EER {result['eer']:.6f}, "
        f"top-1 {result['top_n'][0]['hit_probability']:.4f}; peak RSS growth {peak_rss_mb() - base:.0f} MB; "
        f"the pair scores alone would take {pairs * 8 / 2**20:.0f} MB as float64"
    )


if __name__ == "__main__":
    main()
