"""ROC: how well similarity separates the pairs of a labelled markup (ROC curve, AUC, EER, top-N)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from luna_provider.errors import (
    MARKUP_OBJECT_NOT_FOUND,
    MARKUP_OBJECTS_NOT_FOUND,
)
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun, task_error_bodies
from luna_provider.operators.match_support import (
    check_descriptor_type,
    check_pairs,
    id_ranks,
    markup_labels,
    read_ids,
    read_int64,
    subtask_ranges,
    write_int64,
)
from luna_provider.operators.snapshot import DescriptorSnapshot, descriptor_version_of
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from luna_provider.store.models import Subtask

#: key FPRs reported when the task names none (the schema's default)
DEFAULT_KEY_FPRS = (0.00001, 0.0001, 0.001, 0.01, 0.1)
#: missing markup objects recorded one error each; the rest are counted in one more error
MAX_MISSING_ERRORS = 1000


class LunaRocOperator(LunaTaskOperator):
    """Match every markup object with every other one and report how similarity separates labels.

    The task content gives the ``markup`` (object ids with ground-truth labels; faces or events),
    ``threshold_hit_top`` (default 0), ``limit`` (default 5), ``key_FPRs`` and ``descriptor``. Each
    subtask matches a range of markup objects with all of them in ``LUNA_MATCH_BLOCK_SIZE`` blocks,
    folding the pairs into score histograms and keeping each object's top ``limit`` others.
    """

    task_type = TaskType.ROC

    def split(self, run: TaskRun) -> list[dict]:
        import numpy as np

        content = run.task.content
        object_type = content["markup"].get("object_type", "faces")
        check_descriptor_type(content, [object_type])
        labels_by_id = markup_labels(content)
        version = descriptor_version_of(run)
        snapshot = DescriptorSnapshot(run, version, name="markup")
        id_filter = "face_ids" if object_type == "faces" else "event_ids"
        total = snapshot.write({"object_type": object_type, id_filter: list(labels_by_id)}, limit=None)
        ids = read_ids(snapshot)
        found = [object_id.decode() for object_id in ids]
        self.record_missing(run, labels_by_id, set(found), version.version)
        names, codes = np.unique(
            np.asarray([labels_by_id[object_id] for object_id in found]), return_inverse=True
        )
        positive, negative = check_pairs(np.bincount(codes).tolist())
        write_int64(run.store, self.labels_key(run), codes)
        write_int64(run.store, self.keys_key(run), id_ranks(ids))
        self.log.info(
            "task %s: %d markup objects, %d labels, %d positive and %d negative pairs",
            run.task.task_id,
            total,
            len(names),
            positive,
            negative,
        )
        return [
            {**part, "total": total, "labels": len(names)}
            for part in subtask_ranges(total, run.settings.roc_subtask_size, run.settings.max_subtasks)
        ]

    def record_missing(
        self, run: TaskRun, labels_by_id: dict[str, str], found: set[str], version: int
    ) -> None:
        """Record an error per markup object that has no descriptor (the task goes on without it)."""
        missing = [object_id for object_id in labels_by_id if object_id not in found]
        descriptor_type = (run.task.content.get("descriptor") or {}).get("type", "face")
        for object_id in missing[:MAX_MISSING_ERRORS]:
            run.add_error(MARKUP_OBJECT_NOT_FOUND(object_id, descriptor_type, version), object_id=object_id)
        if len(missing) > MAX_MISSING_ERRORS:
            run.add_error(MARKUP_OBJECTS_NOT_FOUND(len(missing) - MAX_MISSING_ERRORS))
        if missing:
            self.log.warning("task %s: %d markup objects not found", run.task.task_id, len(missing))

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        import time

        import numpy as np

        from luna_provider.compute.matching import (
            TopK,
            augment_columns,
            augment_rows,
            block_top,
            similarity_matrix,
        )
        from luna_provider.compute.roc import PairCounts, first_hit_counts

        started = time.monotonic()
        version = descriptor_version_of(run)
        snapshot = DescriptorSnapshot(run, version, name="markup")
        start, stop, total = part["start"], part["stop"], part["total"]
        limit = self.limit(run)
        block = max(1, run.settings.match_block_size)
        labels = read_int64(run.store, self.labels_key(run))
        keys = read_int64(run.store, self.keys_key(run))
        rows = augment_rows(snapshot.read_rows(start, stop))
        counts = PairCounts.empty(limit)
        top = TopK(stop - start, limit)
        for offset, block_rows in snapshot.blocks(0, total, block):
            columns = augment_columns(block_rows)
            column_index = np.arange(offset, offset + len(columns))
            column_labels = labels[offset : offset + len(columns)]
            column_keys = keys[offset : offset + len(columns)]
            for first in range(0, stop - start, block):
                last = min(first + block, stop - start)
                row_index = np.arange(start + first, start + last)
                similarity = similarity_matrix(rows[first:last], columns, version.scale)
                same = labels[row_index][:, None] == column_labels[None, :]
                # each unordered pair once, from its smaller index
                if offset > row_index[-1]:
                    counts.add_pairs(similarity, same)
                elif column_index[-1] > row_index[0]:
                    later = column_index[None, :] > row_index[:, None]
                    counts.add_pairs(similarity[later], same[later])
                # an object is never its own candidate
                own = np.flatnonzero((row_index >= offset) & (row_index < offset + len(columns)))
                similarity[own, row_index[own] - offset] = -np.inf
                r, c = block_top(similarity, column_keys, limit, floor=top.floor()[first:last])
                top.merge(first + r, offset + c, similarity[r, c], column_keys[c])
        valid = top.index >= 0
        counts.first_hits += first_hit_counts(
            labels[np.where(valid, top.index, 0)],
            top.similarity,
            valid,
            labels[start:stop],
            self.hit_threshold(run),
        )
        counts.with_mates = int(np.count_nonzero(np.bincount(labels)[labels[start:stop]] >= 2))
        key = f"{run.work_prefix}/roc_{subtask.part_index}.npz"
        buffer = io.BytesIO()
        np.savez(buffer, **counts.to_arrays())
        with run.store.open(key, "wb") as stream:
            stream.write(buffer.getvalue())
        self.log.info(
            "task %s: subtask %s matched %d objects with %d in %.2f s",
            run.task.task_id,
            subtask.subtask_id,
            stop - start,
            total,
            time.monotonic() - started,
        )
        return key

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        import base64

        import numpy as np

        from luna_provider.compute.roc import GRID_STEPS, PairCounts, plot_png, summarise

        content = run.task.content
        counts = PairCounts.empty(self.limit(run))
        for subtask in subtasks:
            with run.store.open(subtask.result_key, "rb") as stream:
                counts.merge(PairCounts.from_arrays(np.load(io.BytesIO(stream.read()))))
        summary = summarise(counts, list(content.get("key_FPRs", DEFAULT_KEY_FPRS)))
        plan = subtasks[0].content if subtasks else {}
        png = plot_png(summary, f"ROC of task {run.task.task_id}")
        self.log.info(
            "task %s: AUC %.6f, EER %.6f over %d positive and %d negative pairs",
            run.task.task_id,
            summary.auc,
            summary.eer,
            summary.positive_pairs,
            summary.negative_pairs,
        )
        return TaskResult(
            document={
                "result": {
                    "total_objects": plan.get("total", 0),
                    "labels": plan.get("labels", 0),
                    "positive_pairs": summary.positive_pairs,
                    "negative_pairs": summary.negative_pairs,
                    "similarity_step": 1 / GRID_STEPS,
                    "auc": summary.auc,
                    "eer": summary.eer,
                    "eer_threshold": summary.eer_threshold,
                    "key_FPRs": summary.key_fprs,
                    "threshold_hit_top": self.hit_threshold(run),
                    "references_with_mates": summary.references_with_mates,
                    "top_n": summary.top_n,
                    "roc_curve": summary.curve_points(max(2, run.settings.roc_curve_points)),
                    "plot_png_base64": base64.b64encode(png).decode(),
                },
                "errors": task_error_bodies(run),
            }
        )

    @staticmethod
    def limit(run: TaskRun) -> int:
        """Return the size of a reference's top list (the largest N of top-N)."""
        return int(run.task.content.get("limit") or 5)

    @staticmethod
    def hit_threshold(run: TaskRun) -> float:
        """Return the similarity a top-N hit must reach."""
        return float(run.task.content.get("threshold_hit_top") or 0.0)

    @staticmethod
    def labels_key(run: TaskRun) -> str:
        """Return the key of the markup objects' label codes."""
        return f"{run.work_prefix}/markup.labels"

    @staticmethod
    def keys_key(run: TaskRun) -> str:
        """Return the key of the markup objects' tie keys (the rank of each object id)."""
        return f"{run.work_prefix}/markup.rank"
