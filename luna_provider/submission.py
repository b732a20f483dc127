"""Store a new task and start its DAG run: what every create call (and every schedule) does."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from luna_provider import lifecycle
from luna_provider.errors import (
    BAD_INPUT,
    DESCRIPTOR_VERSION_UNKNOWN,
    FILTER_ACCOUNT_MISMATCH,
    LIST_NOT_FOUND,
    TASK_TYPE_UNAVAILABLE,
    TASK_WORKERS_UNREACHABLE,
)
from luna_provider.store.models import Task
from luna_provider.task_types import TaskType, dag_run_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.airflow_client import AirflowClient

log = logging.getLogger(__name__)

#: task types whose DAG ships with this release
AVAILABLE_TASK_TYPES = frozenset(
    {
        TaskType.CLUSTERING,
        TaskType.CROSS_MATCH,
        TaskType.ROC,
        TaskType.EXPORTER,
        TaskType.REPORTER,
        TaskType.LINKER,
        TaskType.GC,
        TaskType.ESTIMATOR,
        TaskType.ADDITIONAL_EXTRACT,
    }
)


def _check_filter_account(account_id: uuid.UUID, filters: dict[str, Any] | None) -> None:
    """Refuse filters that name another account than the request's."""
    from luna_provider.store.objects import names_other_account

    if names_other_account(account_id, filters):
        raise FILTER_ACCOUNT_MISMATCH(filters["account_id"], account_id)


def _check_linker(engine: Engine, account_id: uuid.UUID, content: dict[str, Any]) -> None:
    from luna_provider.store.objects import list_exists

    _check_filter_account(account_id, content.get("filters"))
    list_id = (content.get("list") or {}).get("list_id")
    if list_id is not None and not list_exists(engine, account_id, list_id):
        raise LIST_NOT_FOUND(list_id)


def _check_gc(engine: Engine, account_id: uuid.UUID, content: dict[str, Any]) -> None:
    _check_filter_account(account_id, content.get("filters"))


#: checks of a task type's content that need the account and the service database, run at creation
STORE_CHECKS: dict[TaskType, Callable[[Engine, uuid.UUID, dict[str, Any]], None]] = {
    TaskType.LINKER: _check_linker,
    TaskType.GC: _check_gc,
}


def check_content(
    task_type: TaskType,
    content: dict[str, Any],
    *,
    engine: Engine | None = None,
    account_id: uuid.UUID | None = None,
) -> None:
    """Check what the schema cannot: the task type is served, the descriptor version is known.

    With ``engine`` and ``account_id``, also check what needs the database: the type's
    :data:`STORE_CHECKS` (objects the content names exist in the account, e.g. the linker's list),
    a reporter's clustering task, the lists an estimator links faces to; without them those checks
    wait until the task runs.
    """
    from luna_provider.compute.descriptors import DESCRIPTOR_VERSIONS

    if task_type not in AVAILABLE_TASK_TYPES:
        raise TASK_TYPE_UNAVAILABLE(task_type.slug)
    version = (content.get("descriptor") or {}).get("descriptor_version")
    if version is not None and version not in DESCRIPTOR_VERSIONS:
        raise DESCRIPTOR_VERSION_UNKNOWN(version)
    if task_type == TaskType.EXPORTER:
        from luna_provider.export.checks import check_exporter_content

        check_exporter_content(content)
    if task_type == TaskType.REPORTER:
        from luna_provider.export.checks import check_reporter_content

        check_reporter_content(content, engine=engine, account_id=account_id)

    if task_type == TaskType.CROSS_MATCH:
        from luna_provider.operators.match_support import check_descriptor_type, object_type_of

        sides = [object_type_of(content[side]["filters"]) for side in ("references", "candidates")]
        check_descriptor_type(content, sides)
    elif task_type == TaskType.ROC:
        from luna_provider.operators.match_support import check_markup

        check_markup(content)
    if task_type in (TaskType.ESTIMATOR, TaskType.ADDITIONAL_EXTRACT):
        from luna_provider.face_tasks import check_face_task

        check_face_task(task_type, content, engine=engine, account_id=account_id)
    _check_times(content)
    if engine is not None and account_id is not None:
        store_check = STORE_CHECKS.get(task_type)
        if store_check is not None:
            store_check(engine, account_id, content)
        _check_filter_lists(engine, account_id, content)


def _walk(document: Any) -> Any:
    """Yield every ``(key, value)`` pair of the dicts nested in ``document``."""
    pending = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                yield key, value
                pending.append(value)
        elif isinstance(item, list):
            pending.extend(item)


def _check_times(content: dict[str, Any]) -> None:
    """Refuse time bounds PostgreSQL cannot compare (offsets beyond 15:59)."""
    from datetime import datetime, timedelta

    for key, value in _walk(content):
        if isinstance(value, str) and key.endswith(("time__gte", "time__lt")):
            try:
                moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
            except ValueError:
                raise BAD_INPUT(f"{key} must be an ISO 8601 date-time") from None
            if abs(moment.utcoffset() or timedelta()) > timedelta(hours=15, minutes=59):
                raise BAD_INPUT(f"{key} has a time zone offset beyond 15:59")


def _check_filter_lists(engine: Engine, account_id: uuid.UUID, content: dict[str, Any]) -> None:
    """Refuse filters naming a list the account does not have (22003), instead of selecting nothing."""
    from luna_provider.store.objects import list_exists

    for key, value in _walk(content):
        named = value.get("list_id") if key == "filters" and isinstance(value, dict) else None
        if named and not list_exists(engine, account_id, named):
            raise LIST_NOT_FOUND(named)


def task_row(
    task_type: TaskType | int, account_id: uuid.UUID, body: dict[str, Any], schedule_id: int | None = None
) -> dict[str, Any]:
    """Return the columns of a new pending task made from a create body (or a schedule's template)."""
    return {
        "account_id": account_id,
        "task_type": int(task_type),
        "task_status": 0,
        "description": body.get("description") or "",
        "content": body["content"],
        "notification_policy": body.get("notification_policy") or {},
        "result_storage_policy": body.get("result_storage_policy") or {},
        "schedule_id": schedule_id,
    }


def store_task(
    engine: Engine,
    task_type: TaskType,
    account_id: uuid.UUID,
    body: dict[str, Any],
    *,
    schedule_id: int | None = None,
) -> int:
    """Store a pending task from a create body; return its id."""
    with engine.begin() as connection:
        return connection.execute(
            insert(Task).values(task_row(task_type, account_id, body, schedule_id)).returning(Task.task_id)
        ).scalar_one()


def start_run(
    engine: Engine, airflow: AirflowClient, task_id: int, task_type: TaskType, request_id: str | None = None
) -> None:
    """Trigger the DAG run of a stored task; fail the task when Airflow cannot take it.

    :param request_id: the ``Luna-Request-Id`` of the create call, passed on so the run's logs name it.
    """
    from luna_provider.airflow_client import AirflowApiError

    conf: dict[str, Any] = {"task_id": task_id}
    if request_id:
        conf["luna_request_id"] = request_id
    try:
        airflow.trigger_dag_run(task_type.dag_id, dag_run_id(task_id), conf)
    except AirflowApiError as error:
        failure = TASK_WORKERS_UNREACHABLE(f"task {task_id}: {error}")
        lifecycle.fail_task(engine, task_id, failure)
        raise failure from error
    log.info("task %s: triggered %s run %s", task_id, task_type.dag_id, dag_run_id(task_id))


def submit_task(
    engine: Engine,
    airflow: AirflowClient,
    task_type: TaskType,
    account_id: uuid.UUID,
    body: dict[str, Any],
    *,
    schedule_id: int | None = None,
    request_id: str | None = None,
) -> int:
    """Check, store and start a task; return its id."""
    check_content(task_type, body["content"], engine=engine, account_id=account_id)
    task_id = store_task(engine, task_type, account_id, body, schedule_id=schedule_id)
    start_run(engine, airflow, task_id, task_type, request_id)
    return task_id
