"""``/tasks/schedules``: tasks created on a cron trigger."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from luna_provider import lifecycle
from luna_provider.api import services
from luna_provider.api.queries import iso, paginate, time_bounds
from luna_provider.errors import BAD_INPUT, SCHEDULE_NOT_FOUND
from luna_provider.schedules import next_run_time, schedule_dag_id
from luna_provider.store.models import Schedule, Task
from luna_provider.submission import check_content, submit_task
from luna_provider.task_types import FINAL_STATUSES, TaskType

log = logging.getLogger(__name__)


def schedule_view(schedule: Schedule, task_ids: list[int]) -> dict[str, Any]:
    """Render a schedule as the API returns it."""
    return {
        "schedule_id": schedule.schedule_id,
        "account_id": str(schedule.account_id),
        "task": schedule.task,
        "trigger": schedule.trigger,
        "behaviour": schedule.behaviour,
        "status": schedule.status,
        "task_ids": task_ids,
        "next_run_time": iso(next_run_time(schedule.trigger, datetime.now().astimezone()))
        if schedule.status == "running"
        else None,
        "create_time": iso(schedule.create_time),
        "last_update_time": iso(schedule.last_update_time),
    }


def _task_ids(session: Session, schedule_id: int) -> list[int]:
    return list(
        session.scalars(select(Task.task_id).where(Task.schedule_id == schedule_id).order_by(Task.task_id))
    )


def _load(session: Session, schedule_id: int, account: uuid.UUID) -> Schedule:
    schedule = session.get(Schedule, schedule_id)
    if schedule is None or schedule.account_id != account:
        raise SCHEDULE_NOT_FOUND(schedule_id)
    return schedule


def _checked(body: dict, account: uuid.UUID) -> tuple[TaskType, dict, dict, dict]:
    task = body["task"]
    task_type = TaskType(task["task_type"])
    check_content(task_type, task["content"], engine=services.engine(), account_id=account)
    trigger = {"timezone": "UTC", **body["trigger"]}
    try:
        next_run_time(trigger, datetime.now().astimezone())
    except ValueError as error:
        raise BAD_INPUT(f"trigger: {error}") from None
    behaviour = {"start_immediately": False, "create_stopped": False, **(body.get("behaviour") or {})}
    return task_type, task, trigger, behaviour


def _start_now(schedule: Schedule) -> None:
    task_body = {key: value for key, value in schedule.task.items() if key != "task_type"}
    submit_task(
        services.engine(),
        services.airflow(),
        TaskType(schedule.task_type),
        schedule.account_id,
        task_body,
        schedule_id=schedule.schedule_id,
    )


def _sync_airflow(schedule_id: int, paused: bool | None = None) -> None:
    from luna_provider.schedules import sync_schedule_dag

    sync_schedule_dag(services.airflow(), schedule_dag_id(schedule_id), paused=paused)


def create_schedule(body: dict) -> tuple[dict, int]:
    """Create a schedule; its DAG fires tasks on the cron trigger."""
    account = services.header_account_id()
    task_type, task, trigger, behaviour = _checked(body, account)
    with Session(services.engine(), expire_on_commit=False) as session, session.begin():
        schedule = Schedule(
            account_id=account,
            task_type=int(task_type),
            task=task,
            trigger=trigger,
            behaviour=behaviour,
            status="paused" if behaviour["create_stopped"] else "running",
        )
        session.add(schedule)
        session.flush()
    if behaviour["start_immediately"] and schedule.status == "running":
        _start_now(schedule)
    _sync_airflow(schedule.schedule_id)
    log.info("schedule %s created (%s, %s)", schedule.schedule_id, task_type.slug, trigger["cron"])
    return {"schedule_id": schedule.schedule_id}, 201


def get_schedules(page: int = 1, page_size: int = 10, account_id: str | None = None, **params: Any) -> list:
    """List the account's schedules (a bare array, as the Luna API returns it)."""
    account = services.request_account_id(account_id)
    conditions = [Schedule.account_id == account]
    conditions += time_bounds(
        Schedule.create_time, "create_time", params.get("create_time__gte"), params.get("create_time__lt")
    )
    if params.get("task_type") is not None:
        conditions.append(Schedule.task_type == params["task_type"])
    query = select(Schedule).where(*conditions).order_by(Schedule.schedule_id)
    with Session(services.engine()) as session:
        schedules = session.scalars(paginate(query, page, page_size)).all()
        return [schedule_view(schedule, _task_ids(session, schedule.schedule_id)) for schedule in schedules]


def get_schedule(schedule_id: int, account_id: str | None = None) -> dict:
    """Return one schedule."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        schedule = _load(session, schedule_id, account)
        return schedule_view(schedule, _task_ids(session, schedule_id))


def _cancel_running(schedule_id: int) -> None:
    from luna_provider.api.handlers.tasks import _stop_run

    with Session(services.engine()) as session:
        running = session.scalars(
            select(Task).where(
                Task.schedule_id == schedule_id, Task.task_status.not_in([int(s) for s in FINAL_STATUSES])
            )
        ).all()
    for task in running:
        lifecycle.cancel_task(services.engine(), task.task_id)
        _stop_run(task)


def replace_schedule(schedule_id: int, body: dict) -> dict:
    """Replace a schedule: running tasks it created are cancelled, then the new parameters apply."""
    account = services.header_account_id()
    task_type, task, trigger, behaviour = _checked(body, account)
    with Session(services.engine()) as session:
        _load(session, schedule_id, account)
    _cancel_running(schedule_id)
    with Session(services.engine(), expire_on_commit=False) as session, session.begin():
        session.execute(
            update(Schedule)
            .where(Schedule.schedule_id == schedule_id)
            .values(
                task_type=int(task_type),
                task=task,
                trigger=trigger,
                behaviour=behaviour,
                last_update_time=func.now(),
            )
        )
        schedule = session.get(Schedule, schedule_id)
    if behaviour["start_immediately"] and schedule.status == "running":
        _start_now(schedule)
    _sync_airflow(schedule_id)
    return {"schedule_id": schedule_id}


def patch_schedule(schedule_id: int, action: str) -> tuple[str, int]:
    """Pause or start a schedule."""
    account = services.header_account_id()
    status = "paused" if action == "pause" else "running"
    with Session(services.engine()) as session, session.begin():
        _load(session, schedule_id, account)
        session.execute(
            update(Schedule)
            .where(Schedule.schedule_id == schedule_id)
            .values(status=status, last_update_time=func.now())
        )
    _sync_airflow(schedule_id, paused=status == "paused")
    return "", 204


def delete_schedule(schedule_id: int, account_id: str | None = None) -> tuple[str, int]:
    """Delete a schedule; the tasks it created stay."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session, session.begin():
        _load(session, schedule_id, account)
        session.execute(delete(Schedule).where(Schedule.schedule_id == schedule_id))
    _sync_airflow(schedule_id, paused=True)
    return "", 204
