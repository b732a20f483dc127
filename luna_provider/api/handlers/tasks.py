"""``/tasks``: list, count, read, cancel and delete tasks; read results and subtasks."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from flask import Response, stream_with_context
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from luna_provider import lifecycle
from luna_provider.api import services
from luna_provider.api.queries import iso, paginate, parse_ids, time_bounds
from luna_provider.errors import (
    RESULT_BAD_STATUS,
    RESULT_NOT_FOUND,
    RESULT_NOT_READY,
    TASK_CANCELLED,
    TASK_NOT_FOUND,
)
from luna_provider.store.models import Subtask, Task
from luna_provider.task_types import TaskStatus, TaskType, dag_run_id, work_prefix

log = logging.getLogger(__name__)


def task_view(task: Task) -> dict[str, Any]:
    """Render a task as the API returns it."""
    return {
        "task_id": task.task_id,
        "task_type": task.task_type,
        "task_status": task.task_status,
        "content": task.content,
        "description": task.description,
        "create_time": iso(task.create_time),
        "end_time": iso(task.end_time),
        "last_update_time": iso(task.last_update_time),
        "result_id": str(task.result_id) if task.result_id else None,
        "account_id": str(task.account_id),
        "count_task_parts_done": task.count_task_parts_done,
        "count_task_parts_all": task.count_task_parts_all,
        "notification_policy": task.notification_policy
        or {"enable": 0, "task_callbacks": [], "subtask_callbacks": []},
        "result_storage_policy": task.result_storage_policy or {},
        "schedule_id": task.schedule_id,
    }


def load_task(session: Session, task_id: int, account_id: uuid.UUID) -> Task:
    """Return the account's task ``task_id``; 28001 when it does not exist for this account."""
    task = session.get(Task, task_id)
    if task is None or task.account_id != account_id:
        raise TASK_NOT_FOUND(task_id)
    return task


def _task_filters(account: uuid.UUID, params: dict[str, Any]) -> list:
    conditions = [Task.account_id == account]
    conditions += time_bounds(
        Task.create_time, "create_time", params.get("create_time__gte"), params.get("create_time__lt")
    )
    conditions += time_bounds(
        Task.end_time, "end_time", params.get("end_time__gte"), params.get("end_time__lt")
    )
    if (ids := parse_ids("task_ids", params.get("task_ids"))) is not None:
        conditions.append(Task.task_id.in_(ids))
    for name in ("task_type", "task_status", "schedule_id"):
        if params.get(name) is not None:
            conditions.append(getattr(Task, name) == params[name])
    if params.get("result_id") is not None:
        conditions.append(Task.result_id == uuid.UUID(params["result_id"]))
    return conditions


def get_tasks(page: int = 1, page_size: int = 10, account_id: str | None = None, **params: Any) -> dict:
    """List the account's tasks, newest first."""
    account = services.request_account_id(account_id)
    query = select(Task).where(*_task_filters(account, params)).order_by(Task.task_id.desc())
    with Session(services.engine()) as session:
        tasks = session.scalars(paginate(query, page, page_size)).all()
        return {"tasks": [task_view(task) for task in tasks]}


def get_tasks_count(account_id: str | None = None, **params: Any) -> dict:
    """Count the account's tasks that match the filters."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        count = session.scalar(select(func.count()).select_from(Task).where(*_task_filters(account, params)))
    return {"count": count}


def get_task(task_id: int, account_id: str | None = None) -> dict:
    """Return one task."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        return task_view(load_task(session, task_id, account))


def cancel_task(task_id: int, account_id: str | None = None) -> tuple[str, int]:
    """Cancel a task that has not finished, and stop its DAG run."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        task = load_task(session, task_id, account)
    lifecycle.cancel_task(services.engine(), task_id)
    _stop_run(task)
    # a step still finishing may write a little more; the hourly housekeeping removes that
    services.object_store().delete(work_prefix(task_id))
    log.info("task %s cancelled", task_id)
    return "", 204


def _stop_run(task: Task) -> None:
    from luna_provider.airflow_client import AirflowApiError

    try:
        services.airflow().fail_dag_run(TaskType(task.task_type).dag_id, dag_run_id(task.task_id))
    except AirflowApiError as error:
        # the task is already final in our store; a run that goes on finds it so and stops itself
        log.warning("task %s: could not stop its DAG run: %s", task.task_id, error)


def delete_task(task_id: int, account_id: str | None = None) -> tuple[str, int]:
    """Delete a task with its subtasks, errors and stored results."""
    account = services.request_account_id(account_id)
    engine = services.engine()
    with Session(engine) as session:
        task = load_task(session, task_id, account)
    if not TaskStatus(task.task_status).is_final:
        lifecycle.cancel_task(engine, task_id)
        _stop_run(task)
    with Session(engine) as session, session.begin():
        session.execute(delete(Task).where(Task.task_id == task_id, Task.account_id == account))
    store = services.object_store()
    if task.result_key:
        store.delete(task.result_key)
    store.delete(work_prefix(task_id))
    log.info("task %s deleted", task_id)
    return "", 204


def get_task_result(task_id: int, account_id: str | None = None) -> Any:
    """Return the stored result of a finished task (JSON, or a streamed zip archive)."""
    from datetime import datetime

    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        task = load_task(session, task_id, account)
    status = TaskStatus(task.task_status)
    if status == TaskStatus.CANCELLED:
        raise TASK_CANCELLED(task_id)
    if status == TaskStatus.FAILED:
        raise RESULT_BAD_STATUS(task_id, status.callback_name)
    if status != TaskStatus.DONE:
        raise RESULT_NOT_READY(task_id)
    expired = task.result_expire_time is not None and task.result_expire_time < datetime.now().astimezone()
    store = services.object_store()
    if not task.result_key or expired or not store.exists(task.result_key):
        raise RESULT_NOT_FOUND(task_id)
    content_type = task.result_content_type or "application/json"
    headers = {}
    if content_type == "application/zip":
        headers["Content-Disposition"] = f"attachment; filename=task_{task_id}.zip"
    return Response(
        stream_with_context(store.iter_chunks(task.result_key)), content_type=content_type, headers=headers
    )


def get_subtasks(task_id: int, account_id: str | None = None) -> dict:
    """List the subtasks of a task."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        load_task(session, task_id, account)
        subtasks = session.scalars(
            select(Subtask).where(Subtask.task_id == task_id).order_by(Subtask.part_index)
        ).all()
        return {
            "subtasks": [
                {
                    "subtask_id": subtask.subtask_id,
                    "task_id": subtask.task_id,
                    "subtask_status": subtask.subtask_status,
                    "content": subtask.content,
                    "count_objects": subtask.count_objects,
                    "result_id": str(subtask.result_id) if subtask.result_id else None,
                    "create_time": iso(subtask.create_time),
                    "end_time": iso(subtask.end_time),
                    "last_update_time": iso(subtask.last_update_time),
                }
                for subtask in subtasks
            ]
        }
