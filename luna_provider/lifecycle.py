"""The task lifecycle shared by every task type.

Status changes are single conditional UPDATEs, so a cancel from the API and a worker finishing a
step cannot both win: a final status (done, failed, cancelled) is never left again. Every step is
safe to repeat, because Airflow retries a task instance after a crash.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete, func, insert, select, update
from sqlalchemy.orm import Session

from luna_provider import notifications
from luna_provider.errors import CANNOT_CANCEL, TASK_NOT_FOUND, LunaError
from luna_provider.store.models import Subtask, Task, TaskError
from luna_provider.task_types import TaskStatus

if TYPE_CHECKING:
    from sqlalchemy import Connection

    from luna_provider.storage import ObjectStore

log = logging.getLogger(__name__)

_ACTIVE = (TaskStatus.PENDING, TaskStatus.IN_PROGRESS, TaskStatus.COLLECT_RESULTS)


def _transition(
    engine: Engine, task_id: int, allowed: tuple[TaskStatus, ...], **values: object
) -> Task | None:
    """Set ``values`` on the task if its status is one of ``allowed``; return the updated row."""
    now = func.now()
    statement = (
        update(Task)
        .where(Task.task_id == task_id, Task.task_status.in_([int(s) for s in allowed]))
        .values(last_update_time=now, **values)
        .returning(Task)
    )
    with _session(engine) as session:
        return session.execute(statement).scalar_one_or_none()


@contextmanager
def _session(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        yield session


def get_task(engine: Engine, task_id: int) -> Task | None:
    """Load a task by id, whatever its account."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Task, task_id)


def start_task(engine: Engine, task_id: int) -> Task | None:
    """Mark the task in progress; return None when it is gone or already final (nothing to do)."""
    return _transition(
        engine, task_id, (TaskStatus.PENDING, TaskStatus.IN_PROGRESS), task_status=int(TaskStatus.IN_PROGRESS)
    )


def create_subtasks(engine: Engine, task_id: int, contents: list[dict]) -> list[int]:
    """Replace the task's subtasks by one per entry of ``contents``; return their ids in order."""
    with engine.begin() as connection:
        connection.execute(delete(Subtask).where(Subtask.task_id == task_id))
        ids = []
        for index, content in enumerate(contents):
            ids.append(
                connection.execute(
                    insert(Subtask)
                    .values(
                        task_id=task_id,
                        part_index=index,
                        content=content,
                        subtask_status=0,
                        count_objects=int(content.get("count_objects", 0)),
                    )
                    .returning(Subtask.subtask_id)
                ).scalar_one()
            )
        connection.execute(
            update(Task)
            .where(Task.task_id == task_id)
            .values(count_task_parts_all=len(contents), count_task_parts_done=0, last_update_time=func.now())
        )
    return ids


def get_subtask(engine: Engine, task_id: int, part_index: int) -> Subtask | None:
    """Load the subtask of ``task_id`` with ``part_index``."""
    with Session(engine, expire_on_commit=False) as session:
        return session.scalars(
            select(Subtask).where(Subtask.task_id == task_id, Subtask.part_index == part_index)
        ).first()


def _subtask_transition(
    engine: Engine, subtask_id: int, status: TaskStatus, **values: object
) -> Subtask | None:
    final = status.is_final
    statement = (
        update(Subtask)
        .where(Subtask.subtask_id == subtask_id, Subtask.subtask_status.in_([int(s) for s in _ACTIVE]))
        .values(
            subtask_status=int(status),
            last_update_time=func.now(),
            **({"end_time": func.now()} if final else {}),
            **values,
        )
        .returning(Subtask)
    )
    with _session(engine) as session:
        # lock the task row first: subtasks finishing together then count one after another, each
        # seeing the others' committed status, so no progress update is lost
        session.execute(
            select(Task.task_id)
            .where(
                Task.task_id
                == select(Subtask.task_id).where(Subtask.subtask_id == subtask_id).scalar_subquery()
            )
            .with_for_update()
        )
        subtask = session.execute(statement).scalar_one_or_none()
        if subtask is None:
            return None
        done = session.execute(
            select(func.count()).where(
                Subtask.task_id == subtask.task_id, Subtask.subtask_status == int(TaskStatus.DONE)
            )
        ).scalar_one()
        task = session.execute(
            update(Task)
            .where(Task.task_id == subtask.task_id)
            .values(count_task_parts_done=done, last_update_time=func.now())
            .returning(Task)
        ).scalar_one_or_none()
    if task is not None:
        notifications.notify_subtask(engine, task, subtask, completed=done)
    return subtask


def start_subtask(engine: Engine, subtask_id: int) -> Subtask | None:
    """Mark a subtask in progress; None when it (or its task) is already final."""
    return _subtask_transition(engine, subtask_id, TaskStatus.IN_PROGRESS)


def finish_subtask(engine: Engine, subtask_id: int, *, result_key: str | None, count_objects: int) -> None:
    """Mark a subtask done with the object-store key of its partial result."""
    _subtask_transition(
        engine,
        subtask_id,
        TaskStatus.DONE,
        result_key=result_key,
        count_objects=count_objects,
        result_id=uuid.uuid4() if result_key else None,
    )


def fail_subtask(engine: Engine, subtask_id: int) -> None:
    """Mark a subtask failed."""
    _subtask_transition(engine, subtask_id, TaskStatus.FAILED)


def add_error(
    engine: Engine,
    task_id: int,
    error: LunaError,
    *,
    subtask_id: int | None = None,
    additional_info: str | None = None,
    connection: Connection | None = None,
) -> None:
    """Record a task error (a failed object, subtask or the task itself).

    With ``connection`` the error is written in that connection's open transaction, so it is kept
    exactly when the work it reports on is committed.
    """
    statement = insert(TaskError).values(
        task_id=task_id,
        subtask_id=subtask_id,
        error_code=error.error_code,
        status_code=error.status,
        description=error.kind.desc,
        detail=error.detail,
        link=error.body()["link"],
        additional_info=additional_info,
    )
    if connection is not None:
        connection.execute(statement)
        return
    with engine.begin() as own:
        own.execute(statement)


def begin_collect(engine: Engine, task_id: int) -> Task | None:
    """Move the task to 'collect results'; None when it is already final."""
    return _transition(
        engine,
        task_id,
        (TaskStatus.IN_PROGRESS, TaskStatus.COLLECT_RESULTS),
        task_status=int(TaskStatus.COLLECT_RESULTS),
    )


def finish_task(
    engine: Engine, task_id: int, *, result_key: str | None, content_type: str | None, ttl_days: int | None
) -> Task | None:
    """Mark the task done with its stored result; None when it was cancelled meanwhile."""
    expire = datetime.now().astimezone() + timedelta(days=ttl_days) if ttl_days else None
    task = _transition(
        engine,
        task_id,
        (TaskStatus.IN_PROGRESS, TaskStatus.COLLECT_RESULTS),
        task_status=int(TaskStatus.DONE),
        end_time=func.now(),
        result_id=uuid.uuid4() if result_key else None,
        result_key=result_key,
        result_content_type=content_type,
        result_expire_time=expire,
    )
    if task is not None:
        notifications.notify_task(engine, task)
    return task


def fail_task(
    engine: Engine, task_id: int, error: LunaError, *, subtask_id: int | None = None
) -> Task | None:
    """Fail the task with ``error`` unless it is already final; cancel its unfinished subtasks."""
    task = _transition(engine, task_id, _ACTIVE, task_status=int(TaskStatus.FAILED), end_time=func.now())
    if task is None:
        return None
    add_error(engine, task_id, error, subtask_id=subtask_id)
    _close_subtasks(engine, task, TaskStatus.CANCELLED)
    log.warning("task %s failed: %s", task_id, error.detail)
    notifications.notify_task(engine, task)
    return task


def cancel_task(engine: Engine, task_id: int) -> Task:
    """Cancel an unfinished task; raise 28019 when its status does not allow it."""
    task = _transition(engine, task_id, _ACTIVE, task_status=int(TaskStatus.CANCELLED), end_time=func.now())
    if task is None:
        current = get_task(engine, task_id)
        if current is None:
            raise TASK_NOT_FOUND(task_id)
        raise CANNOT_CANCEL(task_id, TaskStatus(current.task_status).callback_name)
    _close_subtasks(engine, task, TaskStatus.CANCELLED)
    notifications.notify_task(engine, task)
    return task


def _close_subtasks(engine: Engine, task: Task, status: TaskStatus) -> None:
    """End the task's unfinished subtasks with ``status`` and queue their callbacks."""
    with _session(engine) as session:
        closed = session.scalars(
            update(Subtask)
            .where(Subtask.task_id == task.task_id, Subtask.subtask_status.in_([int(s) for s in _ACTIVE]))
            .values(subtask_status=int(status), end_time=func.now(), last_update_time=func.now())
            .returning(Subtask)
        ).all()
    notifications.notify_subtasks(
        engine, task, sorted(closed, key=lambda subtask: subtask.part_index), task.count_task_parts_done
    )


def purge_expired_results(engine: Engine, store: ObjectStore, batch_size: int = 500) -> int:
    """Delete results whose storage time is over; return how many were purged."""
    purged = 0
    while True:
        with _session(engine) as session:
            tasks = session.scalars(
                select(Task)
                .where(Task.result_expire_time < func.now(), Task.result_key.is_not(None))
                .limit(batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            for task in tasks:
                store.delete(task.result_key)
                task.result_key = None
                task.result_id = None
        purged += len(tasks)
        if len(tasks) < batch_size:
            return purged


def purge_leftover_work(engine: Engine, store: ObjectStore) -> int:
    """Delete the work files of tasks that are final or gone (cancelled runs leave theirs)."""
    from luna_provider.task_types import FINAL_STATUSES, work_prefix

    try:
        entries = store.fs.ls(store.path("work"), detail=False)
    except FileNotFoundError:
        return 0
    names = (entry.rstrip("/").rsplit("/", 1)[-1] for entry in entries)
    task_ids = {int(name[5:]) for name in names if name.startswith("task_") and name[5:].isdigit()}
    if not task_ids:
        return 0
    with engine.connect() as connection:
        active = set(
            connection.scalars(
                select(Task.task_id).where(
                    Task.task_id.in_(task_ids), Task.task_status.not_in([int(s) for s in FINAL_STATUSES])
                )
            )
        )
    leftovers = [task_id for task_id in task_ids if task_id not in active]
    for task_id in leftovers:
        store.delete(work_prefix(task_id))
    return len(leftovers)
