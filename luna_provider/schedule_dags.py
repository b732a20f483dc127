"""Build the DAGs of the schedule file: one per task schedule, plus the service's housekeeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from airflow.sdk import DAG

from luna_provider.schedules import SCHEDULES_ANCHOR_DAG_ID, load_schedules, schedule_dag_id


def maintenance_dag() -> DAG:
    """Return the hourly housekeeping DAG (it also anchors the schedule file for re-parsing)."""
    from luna_provider.operators.maintenance import LunaPurgeExpiredResultsOperator

    with DAG(
        dag_id=SCHEDULES_ANCHOR_DAG_ID,
        description="Luna Tasks housekeeping: purge task results whose storage time is over",
        schedule=timedelta(hours=1),
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=1,
        tags=["luna"],
    ) as dag:
        LunaPurgeExpiredResultsOperator(task_id="purge_expired_results")
    return dag


def schedule_dag(schedule: dict) -> DAG:
    """Return the DAG that fires one schedule: create the task, then trigger its task type's DAG."""
    from airflow.providers.standard.operators.trigger_dagrun import TriggerDagRunOperator
    from airflow.timetables.trigger import CronTriggerTimetable

    from luna_provider.operators.schedule import LunaScheduleOperator
    from luna_provider.task_types import TaskType

    trigger = schedule["trigger"]
    task_type = TaskType(schedule["task_type"])
    with DAG(
        dag_id=schedule_dag_id(schedule["schedule_id"]),
        description=f"Luna Tasks schedule {schedule['schedule_id']}: {task_type.slug} on '{trigger['cron']}'",
        schedule=CronTriggerTimetable(trigger["cron"], timezone=trigger.get("timezone") or "UTC"),
        # a start at the creation time keeps Airflow from firing a run for a slot already past
        start_date=schedule["create_time"],
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=schedule["status"] != "running",
        render_template_as_native_obj=True,
        tags=["luna", "schedule", task_type.slug],
    ) as dag:
        create = LunaScheduleOperator(task_id="create_task", schedule_id=schedule["schedule_id"])
        run = TriggerDagRunOperator(
            task_id="run_task",
            trigger_dag_id=task_type.dag_id,
            trigger_run_id="luna_task_{{ ti.xcom_pull(task_ids='create_task') }}",
            conf={"task_id": "{{ ti.xcom_pull(task_ids='create_task') }}"},
            wait_for_completion=False,
        )
        create >> run
    return dag


def build_schedule_dags(database_url: str) -> dict[str, DAG]:
    """Return the DAGs of every stored schedule and the housekeeping DAG, by DAG id."""
    dags = [maintenance_dag()]
    for schedule in load_schedules(database_url):
        try:
            dags.append(schedule_dag(schedule))
        except (ValueError, KeyError) as error:
            # one broken schedule must not hide the others
            import logging

            logging.getLogger(__name__).warning("schedule %s skipped: %s", schedule["schedule_id"], error)
    return {dag.dag_id: dag for dag in dags}
