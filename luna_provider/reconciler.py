"""Find tasks whose DAG run was lost and put them right.

A task can be stranded by a crash between storing it and triggering its run, or by a run that
ended without its steps reporting back (a killed worker, a cleared run). The API process checks
every ``LUNA_RECONCILE_INTERVAL`` seconds: a pending task without a run is triggered again (the run
id is derived from the task id, so this is idempotent), and an unfinished task whose run is over is
failed with error 28044.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from luna_provider import lifecycle
from luna_provider.errors import TASK_RUN_LOST
from luna_provider.store.models import Task
from luna_provider.task_types import FINAL_STATUSES, TaskStatus, TaskType, dag_run_id

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.airflow_client import AirflowClient
    from luna_provider.settings import Settings

log = logging.getLogger(__name__)

#: how old an unfinished task must be before it is checked, so fresh ones are left alone
GRACE = timedelta(seconds=30)
#: run states after which no step of the run will touch the task any more
_OVER = ("success", "failed")


def reconcile_once(engine: Engine, airflow: AirflowClient, now: datetime | None = None) -> int:
    """Check every unfinished task older than the grace period; return how many were fixed."""
    from luna_provider.airflow_client import AirflowApiError

    now = now or datetime.now().astimezone()
    with Session(engine) as session:
        tasks = session.scalars(
            select(Task).where(
                Task.task_status.not_in([int(s) for s in FINAL_STATUSES]),
                Task.last_update_time < now - GRACE,
            )
        ).all()
    fixed = 0
    for task in tasks:
        task_type = TaskType(task.task_type)
        run_id = dag_run_id(task.task_id)
        try:
            run = airflow.get_dag_run(task_type.dag_id, run_id)
            if run is None and task.task_status == TaskStatus.PENDING:
                log.warning("task %s has no DAG run; triggering it again", task.task_id)
                airflow.trigger_dag_run(task_type.dag_id, run_id, {"task_id": task.task_id})
                fixed += 1
            elif run is None or run.get("state") in _OVER:
                state = run.get("state") if run else "missing"
                if lifecycle.fail_task(engine, task.task_id, TASK_RUN_LOST(task.task_id, f"run {state}")):
                    fixed += 1
        except AirflowApiError as error:
            log.warning("reconcile: Airflow unavailable (%s); retrying later", error)
            break
    return fixed


def start_reconciler(settings: Settings) -> threading.Thread | None:
    """Start the reconciling loop in a daemon thread (nothing when the interval is 0)."""
    if settings.reconcile_interval <= 0:
        return None
    from luna_provider.airflow_client import AirflowClient
    from luna_provider.schedules import reconcile_pause_states
    from luna_provider.store.db import get_engine

    def loop() -> None:
        engine = get_engine(settings.database_url)
        airflow = AirflowClient.from_settings(settings)
        while not stop.wait(settings.reconcile_interval):
            try:
                reconcile_once(engine, airflow)
                reconcile_pause_states(engine, airflow)
            except Exception:
                log.exception("reconcile pass failed")

    stop = threading.Event()
    thread = threading.Thread(target=loop, name="luna-reconciler", daemon=True)
    thread.start()
    return thread
