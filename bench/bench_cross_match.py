"""Time and memory of cross-matching N x N random descriptors, next to a plain float32 ``a @ b.T``.

Runs the cross-match kernel the operator's subtasks run (``luna_provider.compute.matching``), in
this process's children, with no database and no Airflow. Each measurement runs in a fresh child
process so its peak resident memory (``getrusage``) is its own; the child reports its resident
memory after building the inputs, so the growth the work itself causes is shown too.

    .venv/bin/python bench/bench_cross_match.py --count 20000 --limit 3 --threshold 0.5

Descriptors are 128-d, float32, like dlib's: by default grouped around ``--people`` identities (so
a threshold of 0.5 finds real matches); ``--people 0`` gives unrelated random directions.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any


def rss_mb() -> float:
    """Return this process's current resident memory in MB."""
    with open("/proc/self/statm") as stream:
        pages = int(stream.read().split()[1])
    return pages * resource.getpagesize() / 2**20


def peak_mb() -> float:
    """Return this process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def descriptors(count: int, people: int, seed: int) -> Any:
    import numpy as np

    rng = np.random.default_rng(seed)
    if people:
        # both sides draw from the same identities
        centres = np.random.default_rng(0).normal(size=(people, 128))
        centres *= 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)
        vectors = centres[rng.integers(0, people, size=count)] + rng.normal(scale=0.03, size=(count, 128))
    else:
        vectors = rng.normal(size=(count, 128))
        vectors *= 0.7 / np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32)


def measure(kind: str, args: argparse.Namespace, queue: Any) -> None:
    """Run one measurement in this (child) process and put its figures on ``queue``."""
    import numpy as np

    from luna_provider.compute.matching import cross_match

    references = descriptors(args.count, args.people, 1)
    candidates = descriptors(args.count, args.people, 2)
    # warm the BLAS threads and page in the inputs before measuring
    _ = references[:256] @ candidates[:256].T
    base = rss_mb()
    started = time.perf_counter()
    if kind == "plain":
        product = references @ candidates.T
        detail = f"{product.shape[0]}x{product.shape[1]} float32 matrix"
        del product
    else:
        index, _ = cross_match(
            references,
            candidates,
            limit=args.limit,
            threshold=args.threshold,
            scale=1.2,
            block=args.block,
        )
        kept = int(np.count_nonzero(index >= 0))
        detail = f"{kept} matches kept ({kept / len(index):.2f} per reference)"
    elapsed = time.perf_counter() - started
    queue.put({"kind": kind, "seconds": elapsed, "base": base, "peak": peak_mb(), "detail": detail})


def run_child(kind: str, args: argparse.Namespace) -> dict:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=measure, args=(kind, args, queue))
    child.start()
    figures = queue.get()
    child.join()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--count", type=int, default=20_000, help="references and candidates (each)")
    parser.add_argument("--people", type=int, default=2_000, help="identities (0: unrelated descriptors)")
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.5)
    parser.add_argument("--block", type=int, default=2048, help="LUNA_MATCH_BLOCK_SIZE")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each, alternated")
    args = parser.parse_args()

    import numpy as np
    from threadpoolctl import threadpool_info

    blas = [f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}" for i in threadpool_info()]
    print(
        f"{args.count} x {args.count} descriptors of 128 floats, people={args.people}, limit={args.limit}, "
        f"threshold={args.threshold}, block={args.block}; numpy {np.__version__}, BLAS: {', '.join(blas)}"
    )
    # alternate the two so that load from elsewhere on the machine hits both alike
    for kind in ("plain", "cross_match") * args.repeat:
        figures = run_child(kind, args)
        name = "numpy a @ b.T (float32)" if kind == "plain" else "cross_match (blocked top-k)"
        print(
            f"{name:30s} {figures['seconds']:7.2f} s   peak RSS {figures['peak']:7.0f} MB "
            f"(+{figures['peak'] - figures['base']:.0f} MB over the inputs)   {figures['detail']}"
        )


if __name__ == "__main__":
    main()
