"""Id-range subtasks walked in resumable batches: what the linker and garbage collection share.

``split`` plans subtasks as ranges of object ids (keyset boundaries computed in the database, never
id lists). A subtask walks its range in batches; each batch is one transaction that also stores
the subtask's progress (last id, batch count, counters) in the subtask row. A subtask killed
midway therefore leaves every batch either committed with its counters or not at all, and a rerun
resumes after the last committed batch, so every object is counted exactly once.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from luna_provider.task_types import TaskStatus

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine
    from sqlalchemy.orm import InstrumentedAttribute

    from luna_provider.operators.base import TaskRun
    from luna_provider.store.models import Subtask

#: PostgreSQL error codes worth retrying a batch for: deadlock detected, serialization failure
RETRYABLE_PGCODES = ("40P01", "40001")
BATCH_ATTEMPTS = 3


def plan_id_ranges(
    engine: Engine, id_column: InstrumentedAttribute, conditions: list, size: int, max_parts: int
) -> list[dict[str, Any]]:
    """Split the rows selected by ``conditions`` into id ranges of about ``size`` rows.

    The database numbers the selection in id order and returns only every ``size``-th id, so the
    plan costs one scan and holds one id per subtask. Ranges grow when there would be more than
    ``max_parts`` of them. Each range is ``{"id_gte", "id_lt" (None: open), "count_objects"}``.
    """
    from sqlalchemy import func, select

    size = max(int(size), 1)
    numbered = (
        select(
            id_column.label("object_id"),
            func.row_number().over(order_by=id_column).label("position"),
            func.count().over().label("total"),
        )
        .where(*conditions)
        .subquery()
    )
    query = (
        select(numbered.c.object_id, numbered.c.position, numbered.c.total)
        .where((numbered.c.position - 1) % size == 0)
        .order_by(numbered.c.position)
    )
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    if not rows:
        return []
    total = int(rows[0].total)
    starts = rows[:: max(1, math.ceil(len(rows) / max(int(max_parts), 1)))]
    parts = []
    for index, row in enumerate(starts):
        following = starts[index + 1] if index + 1 < len(starts) else None
        last_position = following.position - 1 if following is not None else total
        parts.append(
            {
                "id_gte": str(row.object_id),
                "id_lt": str(following.object_id) if following is not None else None,
                "count_objects": int(last_position - row.position + 1),
            }
        )
    return parts


def range_conditions(id_column: InstrumentedAttribute, part: dict) -> list:
    """Return the conditions restricting ``id_column`` to the subtask's range."""
    conditions = [id_column >= uuid.UUID(part["id_gte"])]
    if part.get("id_lt"):
        conditions.append(id_column < uuid.UUID(part["id_lt"]))
    return conditions


@dataclass
class Batch:
    """One batch of a subtask: its open transaction and the (locked) ids it works on."""

    connection: Connection
    ids: list[uuid.UUID]
    number: int
    #: work to do once the batch is committed (e.g. delete files the deleted rows pointed to)
    after_commit: list[Callable[[], None]] = field(default_factory=list)


class SubtaskStopped(Exception):
    """The subtask (or its task) became final while a batch ran: the batch was rolled back."""


def progress_of(subtask: Subtask) -> dict[str, Any]:
    """Return the progress a subtask stored so far (``batches``, ``last_id`` and counters)."""
    return dict((subtask.content or {}).get("progress") or {})


def run_batches(
    run: TaskRun,
    subtask: Subtask,
    part: dict,
    *,
    id_column: InstrumentedAttribute,
    conditions: list,
    batch_size: int,
    process: Callable[[Batch], dict[str, int]],
    lock: str = "update",
    pause: float = 0.0,
    log: Any = None,
) -> dict[str, Any]:
    """Walk the subtask's id range in batches of ``batch_size``; return the final progress.

    ``process`` works on one batch inside its transaction and returns counters to add up. The ids
    handed to it are locked (``lock``: ``update`` or ``key_share``). Progress continues from what
    an earlier, interrupted run of the same subtask committed. Between batches the subtask waits
    ``pause`` seconds. A cancelled task stops the walk: :class:`SubtaskStopped` is raised and the
    running batch rolls back.
    """
    from sqlalchemy import select

    progress = progress_of(subtask)
    progress.setdefault("batches", 0)
    bounds = range_conditions(id_column, part)
    model = id_column.class_
    while True:
        query = select(id_column).where(*conditions, *bounds)
        if progress.get("last_id"):
            query = query.where(id_column > uuid.UUID(progress["last_id"]))
        query = query.order_by(id_column).limit(batch_size)
        if lock == "key_share":
            query = query.with_for_update(of=model, read=True, key_share=True)
        else:
            query = query.with_for_update(of=model)
        started = time.monotonic()
        try:
            outcome = _batch_with_retries(run, subtask, query, progress, process)
        except SubtaskStopped as stopped:
            from airflow.exceptions import AirflowSkipException

            raise AirflowSkipException(str(stopped)) from None
        if outcome is None:
            return progress
        progress, batch = outcome
        for action in batch.after_commit:
            action()
        if log is not None:
            log.info(
                "task %s: subtask %s batch %d: %d objects in %.2f s",
                run.task.task_id,
                subtask.subtask_id,
                batch.number,
                len(batch.ids),
                time.monotonic() - started,
            )
        if len(batch.ids) < batch_size:
            return progress
        if pause > 0:
            time.sleep(pause)


def _batch_with_retries(
    run: TaskRun,
    subtask: Subtask,
    query: Any,
    progress: dict[str, Any],
    process: Callable[[Batch], dict[str, int]],
) -> tuple[dict[str, Any], Batch] | None:
    from sqlalchemy.exc import DBAPIError

    for attempt in range(1, BATCH_ATTEMPTS + 1):
        try:
            with run.engine.begin() as connection:
                ids = list(connection.scalars(query))
                if not ids:
                    return None
                batch = Batch(connection=connection, ids=ids, number=int(progress["batches"]))
                counts = process(batch)
                updated = dict(progress)
                for name, value in counts.items():
                    updated[name] = int(updated.get(name, 0)) + int(value)
                updated["batches"] = batch.number + 1
                updated["last_id"] = str(ids[-1])
                _save_progress(connection, subtask, updated)
            return updated, batch
        except DBAPIError as error:
            # two batches touching the same rows (a list, a face) in opposite order: PostgreSQL
            # aborts one of them; running it again is safe because nothing of it was committed
            if getattr(error.orig, "pgcode", None) not in RETRYABLE_PGCODES or attempt == BATCH_ATTEMPTS:
                raise
            time.sleep(0.1 * attempt)
    return None


def _save_progress(connection: Connection, subtask: Subtask, progress: dict[str, Any]) -> None:
    """Store the progress in the subtask row, in the batch's transaction; stop if it became final."""
    from sqlalchemy import update

    from luna_provider.store.models import Subtask as SubtaskRow

    active = [int(TaskStatus.PENDING), int(TaskStatus.IN_PROGRESS)]
    content = {**(subtask.content or {}), "progress": progress}
    saved = connection.execute(
        update(SubtaskRow)
        .where(SubtaskRow.subtask_id == subtask.subtask_id, SubtaskRow.subtask_status.in_(active))
        .values(content=content)
        .returning(SubtaskRow.subtask_id)
    ).first()
    if saved is None:
        raise SubtaskStopped(f"subtask {subtask.subtask_id} is final; its batch was rolled back")
