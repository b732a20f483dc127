"""Exporter: write the selected faces or events to a CSV file, zipped with their samples."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from luna_provider.export.archive import PartWriter
from luna_provider.export.checks import check_exporter_content
from luna_provider.export.rows import EVENT_EXPORT_COLUMNS, FACE_EXPORT_COLUMNS, ObjectReader
from luna_provider.operators.base import TaskRun
from luna_provider.operators.csv_export import LunaCsvExportOperator
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from luna_provider.store.models import Subtask


def export_columns(content: dict[str, Any]) -> list[str]:
    """Return the CSV columns of an exporter task: the requested ones, or all of the object type."""
    if content.get("columns"):
        return list(content["columns"])
    return list(FACE_EXPORT_COLUMNS if content["objects_type"] == "faces" else EVENT_EXPORT_COLUMNS)


class LunaExporterOperator(LunaCsvExportOperator):
    """Export faces or events: a zip with one CSV row per object and, with ``save_images``, samples.

    The task content gives ``objects_type``, ``filters``, ``columns``, ``csv_delimiter`` and
    ``save_images``. ``split`` cuts the selection, ordered by object id, into id ranges of
    ``LUNA_EXPORTER_SUBTASK_SIZE`` objects; each subtask writes the rows of its range, read in
    batches of ``LUNA_EXPORTER_BATCH_SIZE``; ``collect`` streams the parts into the archive.
    """

    task_type = TaskType.EXPORTER

    def _reader(self, run: TaskRun) -> ObjectReader:
        content = run.task.content
        return ObjectReader(
            run.engine,
            run.task.account_id,
            content["objects_type"],
            export_columns(content),
            with_samples=self.with_images(run),
        )

    @staticmethod
    def _conditions(run: TaskRun) -> list:
        from luna_provider.store.objects import event_conditions, face_conditions

        content = run.task.content
        select_conditions = face_conditions if content["objects_type"] == "faces" else event_conditions
        # objects created after the task are not exported unless the filters ask for them
        return select_conditions(run.task.account_id, content.get("filters") or {}, run.task.create_time)

    def split(self, run: TaskRun) -> list[dict]:
        from sqlalchemy import func, select

        check_exporter_content(run.task.content)
        reader = self._reader(run)
        id_column = reader.id_column
        conditions = self._conditions(run)
        # one snapshot for the count and the range starts, so the ranges cover exactly the count
        with (
            run.engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection,
            connection.begin(),
        ):
            total = connection.scalar(select(func.count()).select_from(reader.model).where(*conditions))
            size = max(run.settings.exporter_subtask_size, math.ceil(total / run.settings.max_subtasks), 1)
            ranked = (
                select(
                    id_column.label("object_id"), func.row_number().over(order_by=id_column).label("position")
                )
                .where(*conditions)
                .subquery()
            )
            starts = list(
                connection.scalars(
                    select(ranked.c.object_id)
                    .where((ranked.c.position - 1) % size == 0)
                    .order_by(ranked.c.object_id)
                )
            )
        self.log.info("task %s: %d objects to export in ranges of %d", run.task.task_id, total, size)
        return [
            {
                "id_gte": str(start),
                "id_lt": str(starts[index + 1]) if index + 1 < len(starts) else None,
                "count_objects": min(size, total - index * size),
            }
            for index, start in enumerate(starts)
        ]

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        started = time.monotonic()
        reader = self._reader(run)
        conditions = [*self._conditions(run), reader.id_column >= part["id_gte"]]
        if part.get("id_lt") is not None:
            conditions.append(reader.id_column < part["id_lt"])
        keys = self.part_keys(run, subtask.part_index)
        with PartWriter(run.store, keys, self.delimiter(run), with_images=self.with_images(run)) as writer:
            for batch in reader.stream(reader.select_range(conditions), run.settings.exporter_batch_size):
                for item in batch:
                    writer.write(item.cells, item.samples, object_id=item.object_id)
        self.log.info(
            "task %s: subtask %s wrote %d rows and listed %d images in %.2f s",
            run.task.task_id,
            subtask.subtask_id,
            writer.rows,
            writer.images,
            time.monotonic() - started,
        )
        return writer.csv_key

    def header(self, run: TaskRun) -> list[str]:
        return export_columns(run.task.content)

    def delimiter(self, run: TaskRun) -> str:
        return run.task.content.get("csv_delimiter") or ","

    def with_images(self, run: TaskRun) -> bool:
        return bool(run.task.content.get("save_images"))
