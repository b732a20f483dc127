"""Checks of exporter and reporter contents that the schema cannot express.

They run when a task is created, so the client gets the error and nothing is stored, and again
when the task runs (a scheduled task, or a clustering task deleted in between).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from luna_provider.errors import (
    EXPORT_BAD_DELIMITER,
    REPORT_BAD_STATUS,
    REPORT_COLUMNS_NOT_APPLICABLE,
    REPORT_NO_RESULT,
    REPORT_NOT_CLUSTERING,
    TASK_NOT_FOUND,
)
from luna_provider.export.rows import EVENT_REPORT_COLUMNS, FACE_REPORT_COLUMNS
from luna_provider.store.models import Task
from luna_provider.task_types import TaskStatus, TaskType

if TYPE_CHECKING:
    from sqlalchemy import Engine

#: delimiters the CSV could not be read back with
_BAD_DELIMITERS = {'"': "it is the quote character", "\r": "it ends lines", "\n": "it ends lines"}


def check_delimiter(delimiter: str | None) -> None:
    """Refuse a CSV delimiter that would make the file unreadable."""
    if delimiter in _BAD_DELIMITERS:
        raise EXPORT_BAD_DELIMITER(delimiter, _BAD_DELIMITERS[delimiter])


def check_exporter_content(content: dict[str, Any]) -> None:
    """Check an exporter task's content."""
    check_delimiter(content.get("csv_delimiter"))


def check_reporter_content(
    content: dict[str, Any], *, engine: Engine | None = None, account_id: uuid.UUID | None = None
) -> None:
    """Check a reporter task's content; with a database, check its clustering task too."""
    parameters = content.get("parameters") or {}
    check_delimiter(parameters.get("csv_delimiter"))
    if engine is None or account_id is None:
        return
    source = clustering_source(engine, account_id, int(content["task_id"]))
    report_columns(parameters, report_object_type(source))


def clustering_source(engine: Engine, account_id: uuid.UUID, task_id: int) -> Task:
    """Return the account's clustering task ``task_id`` if a report can be built on it.

    :raises LunaError: 28001 no such task in the account, 28070 not a clustering task, 28015 not
        done, 28016 without a (live) result.
    """
    with Session(engine, expire_on_commit=False) as session:
        task = session.get(Task, task_id)
    if task is None or task.account_id != account_id:
        raise TASK_NOT_FOUND(task_id)
    if task.task_type != TaskType.CLUSTERING:
        raise REPORT_NOT_CLUSTERING(task_id)
    if task.task_status != TaskStatus.DONE:
        raise REPORT_BAD_STATUS(TaskStatus(task.task_status).callback_name)
    expired = task.result_expire_time is not None and task.result_expire_time < datetime.now().astimezone()
    if not task.result_key or expired:
        raise REPORT_NO_RESULT()
    return task


def report_object_type(clustering: Task) -> str:
    """Return what a clustering task clustered: ``faces`` or ``events``."""
    return (clustering.content.get("filters") or {}).get("object_type") or "faces"


def report_columns(parameters: dict[str, Any], object_type: str) -> list[str]:
    """Return the report columns after ``cluster`` and the object id; refuse those that do not apply."""
    allowed = FACE_REPORT_COLUMNS if object_type == "faces" else EVENT_REPORT_COLUMNS
    requested = parameters.get("columns")
    if requested is None:
        return list(allowed)
    wrong = [column for column in requested if column not in allowed]
    if wrong:
        raise REPORT_COLUMNS_NOT_APPLICABLE(", ".join(wrong), object_type)
    return list(requested)
