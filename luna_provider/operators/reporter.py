"""Reporter: a CSV report of a finished clustering task, zipped with the objects' samples."""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Iterator
from typing import IO, TYPE_CHECKING, Any

from luna_provider.errors import REPORT_NO_RESULT, REPORT_SOURCE_UNREADABLE
from luna_provider.export.archive import PartWriter
from luna_provider.export.checks import (
    check_reporter_content,
    clustering_source,
    report_columns,
    report_object_type,
)
from luna_provider.export.rows import ObjectReader, id_column_name
from luna_provider.operators.base import TaskRun
from luna_provider.operators.csv_export import LunaCsvExportOperator
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from luna_provider.store.models import Subtask, Task


class LunaReporterOperator(LunaCsvExportOperator):
    """Report on a clustering task: one CSV row per clustered object, ``cluster`` and id first.

    The task content gives the clustering ``task_id`` and ``parameters`` (``columns``,
    ``csv_delimiter``, ``save_images``). ``split`` reads the clustering result once and writes its
    ``(cluster, object id)`` pairs to work files of ``LUNA_EXPORTER_SUBTASK_SIZE`` pairs, one per
    subtask; each subtask looks its objects up in batches of ``LUNA_EXPORTER_BATCH_SIZE`` (an
    object that no longer exists gets only the first two columns); ``collect`` zips the parts.
    Samples go to ``images/<cluster>/<object id>/`` in the archive.
    """

    task_type = TaskType.REPORTER

    def _facts_key(self, run: TaskRun) -> str:
        return f"{run.work_prefix}/report.json"

    def _object_type(self, run: TaskRun) -> str:
        # written by split: the clustering task may be gone by the time subtasks and collect run
        return run.store.get_json(self._facts_key(run))["object_type"]

    def _columns(self, run: TaskRun) -> list[str]:
        return report_columns(self._parameters(run), self._object_type(run))

    @staticmethod
    def _parameters(run: TaskRun) -> dict[str, Any]:
        return run.task.content.get("parameters") or {}

    def split(self, run: TaskRun) -> list[dict]:
        content = run.task.content
        check_reporter_content(content)
        source = clustering_source(run.engine, run.task.account_id, int(content["task_id"]))
        object_type = report_object_type(source)
        report_columns(self._parameters(run), object_type)
        run.store.put_json(self._facts_key(run), {"object_type": object_type, "source": source.task_id})
        clusters = read_clusters(run, source)
        total = sum(len(cluster) for cluster in clusters)
        size = max(run.settings.exporter_subtask_size, math.ceil(total / run.settings.max_subtasks), 1)
        parts: list[dict] = []
        stream: IO[bytes] | None = None
        try:
            for number, cluster in enumerate(clusters):
                for object_id in cluster:
                    if stream is None or parts[-1]["count_objects"] == size:
                        if stream is not None:
                            stream.close()
                        key = f"{run.work_prefix}/pairs_{len(parts)}.tsv"
                        stream = run.store.open(key, "wb")
                        parts.append({"pairs_key": key, "count_objects": 0})
                    stream.write(f"{number}\t{object_id}\n".encode())
                    parts[-1]["count_objects"] += 1
        finally:
            if stream is not None:
                stream.close()
        self.log.info(
            "task %s: report on %s of clustering task %s: %d objects in %d clusters",
            run.task.task_id,
            object_type,
            source.task_id,
            total,
            len(clusters),
        )
        return parts

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        started = time.monotonic()
        object_type = self._object_type(run)
        columns = self._columns(run)
        reader = ObjectReader(
            run.engine, run.task.account_id, object_type, columns, with_samples=self.with_images(run)
        )
        empty = [""] * len(columns)
        missing = 0
        keys = self.part_keys(run, subtask.part_index)
        with (
            PartWriter(run.store, keys, self.delimiter(run), with_images=self.with_images(run)) as writer,
            run.store.open(part["pairs_key"], "rb") as pairs,
        ):
            for batch in _pair_batches(pairs, run.settings.exporter_batch_size):
                found = reader.by_ids([object_id for _, _, object_id in batch if object_id is not None])
                for cluster, text, object_id in batch:
                    item = found.get(str(object_id)) if object_id is not None else None
                    if item is None:
                        missing += 1
                        writer.write([cluster, text, *empty])
                    else:
                        writer.write(
                            [cluster, text, *item.cells],
                            item.samples,
                            folder=f"{cluster}/",
                            object_id=item.object_id,
                        )
        self.log.info(
            "task %s: subtask %s wrote %d rows (%d objects no longer exist) and listed %d images in %.2f s",
            run.task.task_id,
            subtask.subtask_id,
            writer.rows,
            missing,
            writer.images,
            time.monotonic() - started,
        )
        return writer.csv_key

    def header(self, run: TaskRun) -> list[str]:
        object_type = self._object_type(run)
        return ["cluster", id_column_name(object_type), *self._columns(run)]

    def delimiter(self, run: TaskRun) -> str:
        return self._parameters(run).get("csv_delimiter") or ","

    def with_images(self, run: TaskRun) -> bool:
        return bool(self._parameters(run).get("save_images"))


def read_clusters(run: TaskRun, source: Task) -> list[list[str]]:
    """Read the clusters of a clustering task's result: lists of object ids.

    The result is one JSON document, so it is loaded whole, once, here; every later step reads
    only its own share of the pairs written from it.
    """
    if (source.result_content_type or "application/json") != "application/json":
        raise REPORT_SOURCE_UNREADABLE(source.task_id, f"the result is {source.result_content_type}")
    try:
        document = run.store.get_json(source.result_key)
    except FileNotFoundError:
        raise REPORT_NO_RESULT() from None
    except ValueError as error:
        raise REPORT_SOURCE_UNREADABLE(source.task_id, f"not JSON: {error}") from None
    clusters = (document.get("result") or {}).get("clusters") if isinstance(document, dict) else None
    if not isinstance(clusters, list) or not all(
        isinstance(cluster, list) and all(isinstance(item, str) and "\n" not in item for item in cluster)
        for cluster in clusters
    ):
        raise REPORT_SOURCE_UNREADABLE(source.task_id, "result.clusters is not a list of lists of ids")
    return clusters


def _pair_batches(pairs: IO[bytes], batch_size: int) -> Iterator[list[tuple[str, str, uuid.UUID | None]]]:
    """Yield ``(cluster, id text, id or None when not a uuid)`` triples of a pairs file in batches."""
    batch: list[tuple[str, str, uuid.UUID | None]] = []
    for line in pairs:
        cluster, _, text = line.decode().rstrip("\n").partition("\t")
        try:
            object_id: uuid.UUID | None = uuid.UUID(text)
        except ValueError:
            object_id = None  # not an id this service makes: reported as a missing object
        batch.append((cluster, text, object_id))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
