"""``/errors`` and ``/tasks/{task_id}/errors``: problems recorded while tasks ran."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from luna_provider.api import services
from luna_provider.api.handlers.tasks import load_task
from luna_provider.api.queries import iso, paginate, parse_ids, time_bounds
from luna_provider.errors import TASK_ERROR_NOT_FOUND
from luna_provider.store.models import Task, TaskError


def error_view(error: TaskError) -> dict[str, Any]:
    """Render a task error as the API returns it."""
    return {
        "error_id": error.error_id,
        "task_id": error.task_id,
        "subtask_id": error.subtask_id,
        "error_code": error.error_code,
        "description": error.description,
        "detail": error.detail,
        "link": error.link,
        "additional_info": error.additional_info,
        "error_time": iso(error.error_time),
    }


def _account_errors(account_id: str | None) -> Any:
    account = services.request_account_id(account_id)
    return select(TaskError).join(Task, Task.task_id == TaskError.task_id).where(Task.account_id == account)


def _filters(params: dict[str, Any]) -> list:
    conditions = time_bounds(
        TaskError.error_time, "error_time", params.get("error_time__gte"), params.get("error_time__lt")
    )
    if (task_ids := parse_ids("task_ids", params.get("task_ids"))) is not None:
        conditions.append(TaskError.task_id.in_(task_ids))
    if (error_ids := parse_ids("error_ids", params.get("error_ids"))) is not None:
        conditions.append(TaskError.error_id.in_(error_ids))
    if params.get("error_code") is not None:
        conditions.append(TaskError.error_code == params["error_code"])
    if params.get("status_code") is not None:
        conditions.append(TaskError.status_code == params["status_code"])
    if params.get("task_type") is not None:
        conditions.append(Task.task_type == params["task_type"])
    return conditions


def _list(query: Any, page: int, page_size: int) -> dict:
    with Session(services.engine()) as session:
        errors = session.scalars(paginate(query.order_by(TaskError.error_id), page, page_size)).all()
        return {"errors": [error_view(error) for error in errors]}


def _count(query: Any) -> dict:
    with Session(services.engine()) as session:
        return {"count": session.scalar(select(func.count()).select_from(query.subquery()))}


def get_task_errors(task_id: int, page: int = 1, page_size: int = 10, account_id: str | None = None) -> dict:
    """List the errors of one task."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        load_task(session, task_id, account)
    return _list(_account_errors(account_id).where(TaskError.task_id == task_id), page, page_size)


def get_task_errors_count(task_id: int, account_id: str | None = None, **params: Any) -> dict:
    """Count the errors of one task."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        load_task(session, task_id, account)
    return _count(_account_errors(account_id).where(TaskError.task_id == task_id, *_filters(params)))


def get_errors(page: int = 1, page_size: int = 10, account_id: str | None = None, **params: Any) -> dict:
    """List the account's task errors."""
    return _list(_account_errors(account_id).where(*_filters(params)), page, page_size)


def get_errors_count(account_id: str | None = None, **params: Any) -> dict:
    """Count the account's task errors."""
    return _count(_account_errors(account_id).where(*_filters(params)))


def get_error(error_id: int, account_id: str | None = None) -> dict:
    """Return one task error."""
    with Session(services.engine()) as session:
        error = session.scalars(_account_errors(account_id).where(TaskError.error_id == error_id)).first()
        if error is None:
            raise TASK_ERROR_NOT_FOUND(error_id)
        return error_view(error)
