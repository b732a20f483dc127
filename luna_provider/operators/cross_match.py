"""Cross-match: for every reference, its most similar candidates at or above a threshold."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun, task_error_bodies
from luna_provider.operators.match_support import (
    check_descriptor_type,
    check_lists,
    id_ranks,
    object_type_of,
    positions_in,
    read_ids,
    read_ids_at,
    read_int64,
    subtask_ranges,
    write_int64,
)
from luna_provider.operators.snapshot import DescriptorSnapshot, descriptor_version_of
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from luna_provider.store.models import Subtask

#: kept (reference, candidate) slots one subtask may hold: its references x limit (24 bytes each)
MAX_KEPT_PER_SUBTASK = 1 << 22


class LunaCrossMatchOperator(LunaTaskOperator):
    """Match every reference with every candidate; keep each reference's best ``limit`` candidates.

    The task content gives ``references.filters`` and ``candidates.filters`` (faces or events), an
    optional ``threshold`` (default ``LUNA_DEFAULT_CROSSMATCH_THRESHOLD``; candidates with similarity
    at or above it are kept), ``limit`` (default 3) and ``descriptor``. An object selected on both
    sides is never its own candidate. Candidates are sorted by similarity descending, ties by
    candidate id. Each subtask handles a range of references and streams the candidates in blocks
    of ``LUNA_MATCH_BLOCK_SIZE``, keeping a running top-``limit`` per reference.
    """

    task_type = TaskType.CROSS_MATCH

    def split(self, run: TaskRun) -> list[dict]:
        content = run.task.content
        reference_filters = content["references"]["filters"]
        candidate_filters = content["candidates"]["filters"]
        check_descriptor_type(content, [object_type_of(reference_filters), object_type_of(candidate_filters)])
        check_lists(run, reference_filters)
        check_lists(run, candidate_filters)
        version = descriptor_version_of(run)
        references = DescriptorSnapshot(run, version, name="references")
        candidates = DescriptorSnapshot(run, version, name="candidates")
        total = references.write(reference_filters, limit=None)
        count = candidates.write(candidate_filters, limit=None)
        reference_ids = read_ids(references)
        candidate_ids = read_ids(candidates)
        write_int64(run.store, self.keys_key(run), id_ranks(candidate_ids))
        write_int64(run.store, self.self_key(run), positions_in(reference_ids, candidate_ids))
        self.log.info("task %s: %d references, %d candidates", run.task.task_id, total, count)
        size = min(
            run.settings.cross_match_subtask_size,
            max(run.settings.match_block_size, MAX_KEPT_PER_SUBTASK // self.limit(run)),
        )
        return [
            {**part, "candidates": count} for part in subtask_ranges(total, size, run.settings.max_subtasks)
        ]

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        import time

        import numpy as np

        from luna_provider.compute.matching import CrossMatcher

        started = time.monotonic()
        version = descriptor_version_of(run)
        references = DescriptorSnapshot(run, version, name="references")
        candidates = DescriptorSnapshot(run, version, name="candidates")
        start, stop, count = part["start"], part["stop"], part["candidates"]
        block = max(1, run.settings.match_block_size)
        matcher = CrossMatcher(
            references.read_rows(start, stop),
            limit=self.limit(run),
            threshold=self.threshold(run),
            scale=version.scale,
            exclude=read_int64(run.store, self.self_key(run), start, stop),
            row_block=block,
        )
        for offset, rows in candidates.blocks(0, count, block):
            matcher.update(
                offset, rows, read_int64(run.store, self.keys_key(run), offset, offset + len(rows))
            )
        index, similarity = matcher.result()
        reference_ids = read_ids(references, start, stop)
        kept = index >= 0
        candidate_ids = np.empty(index.shape, dtype="S36")
        candidate_ids[kept] = read_ids_at(candidates, index[kept])
        key = f"{run.work_prefix}/matches_{subtask.part_index}.json"
        with run.store.open(key, "wb") as stream:
            for row, reference_id in enumerate(reference_ids):
                matches = [
                    {"candidate_id": candidate_id.decode(), "similarity": float(value)}
                    for candidate_id, value in zip(
                        candidate_ids[row][kept[row]], similarity[row][kept[row]], strict=True
                    )
                ]
                line = json.dumps(
                    {"reference_id": reference_id.decode(), "candidates": matches}, separators=(",", ":")
                )
                stream.write((("," if row else "") + line).encode())
        self.log.info(
            "task %s: subtask %s matched %d references with %d candidates in %.2f s",
            run.task.task_id,
            subtask.subtask_id,
            stop - start,
            count,
            time.monotonic() - started,
        )
        return key

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        # The matches can be large (references x limit): copy the subtasks' fragments into the
        # result document instead of building it in memory.
        key = f"{run.result_prefix}.json"
        chunk = 1 << 20
        with run.store.open(key, "wb") as result:
            result.write(b'{"result":[')
            first = True
            for subtask in subtasks:
                if subtask.count_objects == 0:
                    continue
                if not first:
                    result.write(b",")
                first = False
                with run.store.open(subtask.result_key, "rb") as fragment:
                    while data := fragment.read(chunk):
                        result.write(data)
            result.write(b'],"errors":')
            result.write(json.dumps(task_error_bodies(run), separators=(",", ":"), default=str).encode())
            result.write(b"}")
        self.log.info("task %s: cross-match result of %d subtasks stored", run.task.task_id, len(subtasks))
        return TaskResult(key=key, content_type="application/json")

    @staticmethod
    def threshold(run: TaskRun) -> float:
        """Return the task's similarity threshold."""
        value = run.task.content.get("threshold")
        return float(run.settings.default_crossmatch_threshold if value is None else value)

    @staticmethod
    def limit(run: TaskRun) -> int:
        """Return how many candidates are kept per reference."""
        return int(run.task.content.get("limit") or 3)

    @staticmethod
    def keys_key(run: TaskRun) -> str:
        """Return the key of the candidates' tie keys (the rank of each candidate id)."""
        return f"{run.work_prefix}/candidates.rank"

    @staticmethod
    def self_key(run: TaskRun) -> str:
        """Return the key of each reference's own position among the candidates (or -1)."""
        return f"{run.work_prefix}/references.self"
