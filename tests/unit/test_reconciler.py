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


class PauseStates:
    def __init__(self, states: dict[str, bool]) -> None:
        self.states = states
        self.set_calls: list[tuple[str, bool]] = []

    def paused_states(self, prefix: str) -> dict[str, bool]:
        return {dag_id: paused for dag_id, paused in self.states.items() if dag_id.startswith(prefix)}

    def set_dag_paused(self, dag_id: str, paused: bool, wait: float = 0) -> None:
        self.set_calls.append((dag_id, paused))


def test_schedule_pause_states_follow_the_store(engine, luna_env, account_id) -> None:
    from luna_provider.schedules import reconcile_pause_states
    from luna_provider.store.models import Schedule

    with engine.begin() as connection:
        for status in ("running", "paused", "running"):
            connection.execute(
                Schedule.__table__.insert().values(
                    account_id=account_id,
                    task_type=2,
                    task={},
                    trigger={"cron": "* * * * *"},
                    behaviour={},
                    status=status,
                )
            )
    airflow = PauseStates(
        {
            "luna_schedule_1": True,
            "luna_schedule_2": False,
            "luna_schedule_3": False,
            "luna_schedule_9": True,
            "luna_clustering": True,
        }
    )

    assert reconcile_pause_states(engine, airflow) == 2

    assert sorted(airflow.set_calls) == [("luna_schedule_1", False), ("luna_schedule_2", True)]
