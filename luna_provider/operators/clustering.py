"""Clustering: group faces or events whose descriptors are more similar than a threshold."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from luna_provider.errors import BAD_INPUT, DESCRIPTOR_VERSION_UNKNOWN
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np

    from luna_provider.compute.descriptors import DescriptorVersion
    from luna_provider.store.models import Subtask


def descriptor_version_of(run: TaskRun) -> DescriptorVersion:
    """Return the descriptor version the task's content asks for (or the default one)."""
    from luna_provider.compute.descriptors import UnknownDescriptorVersion, get_descriptor_version

    requested = (run.task.content.get("descriptor") or {}).get("descriptor_version")
    version = int(requested or run.settings.default_descriptor_version)
    try:
        return get_descriptor_version(version)
    except UnknownDescriptorVersion:
        raise DESCRIPTOR_VERSION_UNKNOWN(version) from None


class DescriptorSnapshot:
    """The descriptors a task works on, frozen into the object store as one float32 matrix file.

    Subtasks read row ranges of it, so none of them needs the whole set in memory and all of them
    see the same objects in the same order.
    """

    def __init__(self, run: TaskRun, version: DescriptorVersion) -> None:
        self.run = run
        self.version = version
        self.matrix_key = f"{run.work_prefix}/descriptors.f32"
        self.ids_key = f"{run.work_prefix}/ids.txt"
        self.tracks_key = f"{run.work_prefix}/tracks.txt"

    def write(self, filters: dict, *, limit: int | None) -> int:
        """Select the objects and write their ids, track ids and descriptors; return their count."""
        from luna_provider.store.objects import descriptor_select, stream_rows

        run = self.run
        descriptor_type = (run.task.content.get("descriptor") or {}).get("type", "face")
        query = descriptor_select(
            run.task.account_id,
            filters,
            descriptor_version=self.version.version,
            descriptor_type=descriptor_type,
            default_upper=run.task.create_time,
            limit=limit,
        )
        expected = self.version.length * 4
        count = 0
        with (
            run.store.open(self.matrix_key, "wb") as matrix,
            run.store.open(self.ids_key, "wb") as ids,
            run.store.open(self.tracks_key, "wb") as tracks,
        ):
            for rows in stream_rows(run.engine, query, run.settings.match_block_size):
                for object_id, track_id, blob in rows:
                    if len(blob) != expected:
                        run.add_error(
                            BAD_INPUT(
                                f"descriptor of {object_id} has {len(blob)} bytes, "
                                f"version {self.version.version} needs {expected}"
                            ),
                            object_id=str(object_id),
                        )
                        continue
                    matrix.write(blob)
                    ids.write(f"{object_id}\n".encode())
                    tracks.write(f"{track_id or ''}\n".encode())
                    count += 1
        return count

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Read descriptors ``start .. stop`` as an ``(n, length)`` matrix."""
        import numpy as np

        width = self.version.length * 4
        with self.run.store.open(self.matrix_key, "rb") as matrix:
            matrix.seek(start * width)
            data = matrix.read((stop - start) * width)
        return np.frombuffer(data, dtype="<f4").reshape(-1, self.version.length)

    def blocks(self, start: int, stop: int, size: int) -> Iterator[tuple[int, np.ndarray]]:
        """Yield ``(offset, block)`` pairs covering rows ``start .. stop``."""
        for offset in range(start, stop, size):
            yield offset, self.read_rows(offset, min(offset + size, stop))

    def read_lines(self, key: str) -> list[str]:
        with self.run.store.open(key, "rb") as stream:
            return [line.decode().rstrip("\n") for line in stream]


class LunaClusteringOperator(LunaTaskOperator):
    """Cluster faces or events: connected components of the pairs more similar than ``threshold``.

    The task content gives ``filters`` (faces or events), an optional ``threshold`` (default
    ``LUNA_DEFAULT_CLUSTERING_THRESHOLD``), ``limit``, ``descriptor`` and, for events,
    ``use_track_info``. Each subtask compares a range of rows with every later row in blocks of
    ``LUNA_MATCH_BLOCK_SIZE``.
    """

    task_type = TaskType.CLUSTERING

    def split(self, run: TaskRun) -> list[dict]:
        content = run.task.content
        snapshot = DescriptorSnapshot(run, descriptor_version_of(run))
        total = snapshot.write(content.get("filters") or {}, limit=content.get("limit"))
        self.log.info("task %s: %d objects to cluster", run.task.task_id, total)
        size = max(run.settings.clustering_subtask_size, math.ceil(total / run.settings.max_subtasks), 1)
        return [
            {
                "start": start,
                "stop": min(start + size, total),
                "total": total,
                "count_objects": min(start + size, total) - start,
            }
            for start in range(0, total, size)
        ]

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        import numpy as np

        from luna_provider.compute.clustering import spanning_forest, threshold_forest

        version = descriptor_version_of(run)
        snapshot = DescriptorSnapshot(run, version)
        threshold = self.threshold(run)
        block = run.settings.match_block_size
        sources: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        for row_offset, rows in snapshot.blocks(part["start"], part["stop"], block):
            src, dst = threshold_forest(
                rows,
                row_offset,
                snapshot.blocks(row_offset, part["total"], block),
                threshold,
                version.linked,
            )
            sources.append(src)
            targets.append(dst)
        src, dst = spanning_forest(np.concatenate(sources), np.concatenate(targets))
        key = f"{run.work_prefix}/forest_{subtask.part_index}.npy"
        with run.store.open(key, "wb") as stream:
            np.save(stream, np.stack([src, dst]))
        self.log.info(
            "task %s: subtask %s kept %d forest edges", run.task.task_id, subtask.subtask_id, len(src)
        )
        return key

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        import numpy as np

        from luna_provider.compute.clustering import clusters_from_labels, component_labels, group_edges

        snapshot = DescriptorSnapshot(run, descriptor_version_of(run))
        ids = snapshot.read_lines(snapshot.ids_key) if subtasks else []
        edges = [np.empty((2, 0), dtype=np.int64)]
        for subtask in subtasks:
            with run.store.open(subtask.result_key, "rb") as stream:
                edges.append(np.load(stream))
        if run.task.content.get("use_track_info") and ids:
            edges.append(np.stack(group_edges(snapshot.read_lines(snapshot.tracks_key))))
        src, dst = np.concatenate(edges, axis=1)
        clusters = [
            [ids[index] for index in group]
            for group in clusters_from_labels(component_labels(len(ids), src, dst))
        ]
        self.log.info("task %s: %d objects in %d clusters", run.task.task_id, len(ids), len(clusters))
        return TaskResult(
            document={
                "result": {"clusters": clusters, "total_objects": len(ids), "total_clusters": len(clusters)},
                "errors": task_error_bodies(run),
            }
        )

    @staticmethod
    def threshold(run: TaskRun) -> float:
        """Return the task's similarity threshold."""
        value = run.task.content.get("threshold")
        return float(run.settings.default_clustering_threshold if value is None else value)


def task_error_bodies(run: TaskRun) -> list[dict[str, Any]]:
    """Return the errors recorded so far for the task, as Luna error bodies."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from luna_provider.store.models import TaskError

    with Session(run.engine) as session:
        errors = session.scalars(
            select(TaskError)
            .where(TaskError.task_id == run.task.task_id)
            .order_by(TaskError.error_id)
            .limit(1000)
        )
        return [
            {"error_code": e.error_code, "desc": e.description, "detail": e.detail, "link": e.link}
            for e in errors
        ]
