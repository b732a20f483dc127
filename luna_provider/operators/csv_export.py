"""What the exporter and reporter share: subtasks write CSV parts, ``collect`` zips them."""

from __future__ import annotations

import abc
import time
from typing import TYPE_CHECKING

from luna_provider.errors import EXPORT_SAMPLE_NOT_FOUND
from luna_provider.export.archive import csv_line, part_keys, write_archive
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun

if TYPE_CHECKING:
    from luna_provider.store.models import Subtask


class LunaCsvExportOperator(LunaTaskOperator):
    """A task whose subtasks write CSV parts and whose result is a zip of the CSV and images.

    Subclasses implement :meth:`split` and :meth:`run_part` (writing the parts with
    :class:`~luna_provider.export.archive.PartWriter` to :meth:`part_keys`), and say what the CSV
    looks like with :meth:`header`, :meth:`delimiter` and :meth:`with_images`.
    """

    @abc.abstractmethod
    def header(self, run: TaskRun) -> list[str]:
        """Return the CSV column names."""

    @abc.abstractmethod
    def delimiter(self, run: TaskRun) -> str:
        """Return the CSV delimiter."""

    @abc.abstractmethod
    def with_images(self, run: TaskRun) -> bool:
        """Tell whether the archive holds the objects' samples."""

    @staticmethod
    def part_keys(run: TaskRun, part_index: int) -> tuple[str, str]:
        """Return the work-file keys of a subtask's CSV part and image list."""
        return part_keys(run.work_prefix, part_index)

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        started = time.monotonic()
        task_id = run.task.task_id
        with_images = self.with_images(run)
        parts = []
        for subtask in subtasks:
            csv_key, images_key = self.part_keys(run, subtask.part_index)
            parts.append((csv_key, images_key if with_images else None))

        def missing(sample_id: str, object_id: str, storage_key: str) -> None:
            self.log.warning("task %s: sample %s (%s) is missing", task_id, sample_id, storage_key)
            run.add_error(EXPORT_SAMPLE_NOT_FOUND(sample_id, object_id), object_id=object_id)

        key = f"{run.result_prefix}.zip"
        stats = write_archive(
            run.store,
            key,
            csv_name=f"task_{task_id}.csv",
            header=csv_line(self.header(run), self.delimiter(run)),
            parts=parts,
            on_missing_image=missing,
        )
        self.log.info(
            "task %s: zipped %d CSV bytes from %d parts and %d images (%d bytes, %d missing) in %.2f s",
            task_id,
            stats.csv_bytes,
            len(parts),
            stats.images,
            stats.image_bytes,
            stats.missing_images,
            time.monotonic() - started,
        )
        return TaskResult(key=key, content_type="application/zip")
