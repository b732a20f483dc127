"""Create the task of a schedule when its timetable fires."""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseOperator


class LunaScheduleOperator(BaseOperator):
    """Store a new task from a schedule's template and return its id for the trigger that follows.

    Nothing is created (the run is skipped) when the schedule is paused or gone, or while a task it
    created earlier is still unfinished.

    :param schedule_id: the schedule to fire.
    :param luna_conn_id: Postgres connection to the service database.
    """

    template_fields = ("schedule_id",)

    def __init__(self, *, schedule_id: int, luna_conn_id: str = "luna_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.schedule_id = schedule_id
        self.luna_conn_id = luna_conn_id

    def execute(self, context: Any) -> int:
        from airflow.sdk.exceptions import AirflowSkipException

        from luna_provider.hooks.luna import LunaHook
        from luna_provider.schedules import create_scheduled_task

        task_id = create_scheduled_task(LunaHook(self.luna_conn_id).get_engine(), int(self.schedule_id))
        if task_id is None:
            raise AirflowSkipException(f"schedule {self.schedule_id}: nothing to start now")
        self.log.info("schedule %s: created task %s", self.schedule_id, task_id)
        return task_id
