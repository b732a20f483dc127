"""Clustering: group faces or events whose descriptors are more similar than a threshold."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun, task_error_bodies
from luna_provider.operators.snapshot import DescriptorSnapshot, descriptor_version_of
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    import numpy as np

    from luna_provider.store.models import Subtask


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
