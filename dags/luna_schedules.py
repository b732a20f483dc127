"""
### Luna task schedules

One DAG per schedule created through the Luna Tasks API (`POST /6/tasks/schedules`): its cron
timetable fires `create_task`, which stores the task from the schedule's template, and `run_task`
triggers the DAG of that task type. A firing is skipped while the schedule's previous task is
still unfinished. `luna_maintenance` purges results whose storage time is over every hour.

The API asks Airflow to re-read this file whenever a schedule changes.
"""

from __future__ import annotations

from luna_provider.schedule_dags import build_schedule_dags
from luna_provider.settings import load

globals().update(build_schedule_dags(load().database_url))
