"""Task schedules on Airflow: one DAG per schedule, fired by a cron timetable."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
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
    if not croniter.is_valid(cron):
        raise ValueError(f"invalid cron expression {cron!r}")
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
        if paused is not None:
            airflow.set_dag_paused(dag_id, paused, wait=10.0)
    except AirflowApiError as error:
        # the next periodic parse picks the change up anyway; only the delay is lost
        log.warning("could not sync %s with Airflow now: %s", dag_id, error)
