"""Task schedules on Airflow: one DAG per schedule, fired by a cron timetable."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.airflow_client import AirflowClient

log = logging.getLogger(__name__)

#: DAG that always exists in the schedules DAG file, so the file can be re-parsed on demand
SCHEDULES_ANCHOR_DAG_ID = "luna_maintenance"


def schedule_dag_id(schedule_id: int) -> str:
    """Return the id of the DAG that fires a schedule."""
    return f"luna_schedule_{schedule_id}"


def next_run_time(trigger: dict, after: datetime) -> datetime:
    """Return the next time a trigger fires after ``after``; ValueError for a bad cron or time zone."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from croniter import croniter

    cron = trigger.get("cron", "")
    # croniter also takes a seconds and a year field; a schedule fires at most once a minute
    if len(cron.split()) != 5 or not croniter.is_valid(cron):
        raise ValueError(
            f"invalid cron expression {cron!r}: expected five fields (minute hour day month weekday)"
        )
    try:
        zone = ZoneInfo(trigger.get("timezone") or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {trigger.get('timezone')!r}") from None
    return croniter(cron, after.astimezone(zone)).get_next(datetime)


def sync_schedule_dag(airflow: AirflowClient, dag_id: str, *, paused: bool | None = None) -> None:
    """Make Airflow re-read the schedule DAGs now and set the pause state of ``dag_id``."""
    from luna_provider.airflow_client import AirflowApiError

    try:
        airflow.reparse_dag_file(SCHEDULES_ANCHOR_DAG_ID)
    except AirflowApiError as error:
        # the next periodic parse picks the change up anyway; only the delay is lost
        log.warning("could not ask Airflow to re-read the schedules now: %s", error)
    if paused is None:
        return
    try:
        airflow.set_dag_paused(dag_id, paused, wait=10.0)
    except AirflowApiError as error:
        # the reconciler sets the pause state on its next pass
        log.warning("could not set the pause state of %s now: %s", dag_id, error)


def reconcile_pause_states(engine: Engine, airflow: AirflowClient) -> int:
    """Make every schedule DAG's pause state match its schedule's status; return how many changed."""
    from sqlalchemy import select

    from luna_provider.store.models import Schedule

    with engine.connect() as connection:
        wanted = {
            schedule_dag_id(schedule_id): status != "running"
            for schedule_id, status in connection.execute(select(Schedule.schedule_id, Schedule.status))
        }
    changed = 0
    for dag_id, paused in airflow.paused_states("luna_schedule_").items():
        if dag_id in wanted and wanted[dag_id] != paused:
            airflow.set_dag_paused(dag_id, wanted[dag_id])
            changed += 1
    return changed


def create_scheduled_task(engine: Engine, schedule_id: int) -> int | None:
    """Store the next task of a schedule; None when it is paused, gone or its last task is unfinished."""
    from sqlalchemy import insert, select
    from sqlalchemy.orm import Session

    from luna_provider.store.models import Schedule, Task
    from luna_provider.submission import task_row
    from luna_provider.task_types import FINAL_STATUSES

    with Session(engine) as session, session.begin():
        # the row lock keeps two overlapping firings from both creating a task
        schedule = session.scalars(
            select(Schedule).where(Schedule.schedule_id == schedule_id).with_for_update()
        ).first()
        if schedule is None or schedule.status != "running":
            return None
        unfinished = session.scalars(
            select(Task.task_id).where(
                Task.schedule_id == schedule_id, Task.task_status.not_in([int(s) for s in FINAL_STATUSES])
            )
        ).first()
        if unfinished is not None:
            log.info("schedule %s: task %s is still running; skipping this firing", schedule_id, unfinished)
            return None
        row = task_row(schedule.task_type, schedule.account_id, schedule.task, schedule_id)
        return session.execute(insert(Task).values(row).returning(Task.task_id)).scalar_one()


def load_schedules(database_url: str) -> list[dict]:
    """Read every schedule for the DAG file; an unreachable database gives none (logged)."""
    from sqlalchemy import select

    from luna_provider.store.db import get_engine
    from luna_provider.store.models import Schedule

    try:
        with get_engine(database_url).connect() as connection:
            rows = connection.execute(
                select(
                    Schedule.schedule_id,
                    Schedule.task_type,
                    Schedule.trigger,
                    Schedule.status,
                    Schedule.create_time,
                )
            ).all()
    except Exception as error:
        log.warning("cannot read schedules: %s", error)
        return []
    return [row._asdict() for row in rows]
