"""Store a new task and start its DAG run: what every create call (and every schedule) does."""

from __future__ import annotations

import logging
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert

from luna_provider import lifecycle
from luna_provider.errors import DESCRIPTOR_VERSION_UNKNOWN, TASK_TYPE_UNAVAILABLE, TASK_WORKERS_UNREACHABLE
from luna_provider.store.models import Task
from luna_provider.task_types import TaskType, dag_run_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.airflow_client import AirflowClient

log = logging.getLogger(__name__)

#: task types whose DAG ships with this release
AVAILABLE_TASK_TYPES = frozenset({TaskType.CLUSTERING, TaskType.ESTIMATOR, TaskType.ADDITIONAL_EXTRACT})


def check_content(
    task_type: TaskType,
    content: dict[str, Any],
    *,
    engine: Engine | None = None,
    account_id: uuid.UUID | None = None,
) -> None:
    """Check what the schema cannot: the task type is served, the descriptor version is known.

    With ``engine`` and ``account_id``, also check what depends on the account's data (the lists
    an estimator links faces to exist).
    """
    from luna_provider.compute.descriptors import DESCRIPTOR_VERSIONS

    if task_type not in AVAILABLE_TASK_TYPES:
        raise TASK_TYPE_UNAVAILABLE(task_type.slug)
    version = (content.get("descriptor") or {}).get("descriptor_version")
    if version is not None and version not in DESCRIPTOR_VERSIONS:
        raise DESCRIPTOR_VERSION_UNKNOWN(version)
    if task_type in (TaskType.ESTIMATOR, TaskType.ADDITIONAL_EXTRACT):
        from luna_provider.face_tasks import check_face_task

        check_face_task(task_type, content, engine=engine, account_id=account_id)


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
