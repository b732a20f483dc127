from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import update

from luna_provider import lifecycle, reconciler
from luna_provider.store.models import Task, TaskError
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType


class RunStates:
    def __init__(self, states: dict[str, dict | None]) -> None:
        self.states = states
        self.triggered: list[str] = []

    def get_dag_run(self, dag_id: str, run_id: str) -> dict | None:
        return self.states.get(run_id)

    def trigger_dag_run(self, dag_id: str, run_id: str, conf: dict) -> dict:
        self.triggered.append(run_id)
        return {}


def test_lost_tasks_are_retriggered_or_failed(engine, luna_env, account_id) -> None:
    ids = [store_task(engine, TaskType.CLUSTERING, account_id, {"content": {}}) for _ in range(4)]
    pending_without_run, running_with_failed_run, running_ok, fresh = ids
    for task_id in (running_with_failed_run, running_ok):
        lifecycle.start_task(engine, task_id)
    old = datetime.now().astimezone() - timedelta(minutes=5)
    with engine.begin() as connection:
        connection.execute(update(Task).where(Task.task_id != fresh).values(last_update_time=old))
    airflow = RunStates(
        {
            f"luna_task_{running_with_failed_run}": {"state": "failed"},
            f"luna_task_{running_ok}": {"state": "running"},
        }
    )

    fixed = reconciler.reconcile_once(engine, airflow)

    assert fixed == 2
    assert airflow.triggered == [f"luna_task_{pending_without_run}"]
    assert lifecycle.get_task(engine, running_with_failed_run).task_status == 3
    assert lifecycle.get_task(engine, running_ok).task_status == 1
    assert lifecycle.get_task(engine, fresh).task_status == 0
    with engine.connect() as connection:
        assert connection.execute(TaskError.__table__.select()).one().error_code == 28044
