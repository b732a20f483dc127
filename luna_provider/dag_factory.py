"""Build the DAG of a Luna task type from its operator.

Every task type's DAG has the same shape: ``split`` selects the objects and plans subtasks,
``subtask`` is mapped over the plan, ``collect`` merges and stores the result, and ``mark_failed``
runs only when a step failed without saying why (a killed worker, a lost process).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from airflow.sdk import DAG, Param

if TYPE_CHECKING:
    from luna_provider.operators.base import LunaTaskOperator


def luna_task_dag(
    operator_class: type[LunaTaskOperator], *, doc_md: str | None = None, max_active_runs: int = 8
) -> DAG:
    """Return the DAG ``luna_<task type>`` that runs tasks with ``operator_class``.

    :param operator_class: the task type's operator.
    :param doc_md: documentation shown in the Airflow UI.
    :param max_active_runs: tasks of this type that may run at once; the rest wait queued.
    """
    task_type = operator_class.task_type
    with DAG(
        dag_id=task_type.dag_id,
        description=f"Luna Tasks: {task_type.slug.replace('_', ' ')} tasks",
        schedule=None,
        start_date=datetime(2024, 1, 1, tzinfo=UTC),
        catchup=False,
        max_active_runs=max_active_runs,
        tags=["luna", task_type.slug],
        doc_md=doc_md,
        default_args={"retries": 0},
        params={
            "task_id": Param(
                type="integer",
                minimum=1,
                title="Luna task id",
                description="Id of the stored task to run; the Luna Tasks API creates the task and this run.",
            )
        },
    ) as dag:
        split = operator_class(task_id="split", phase="split")
        subtasks = operator_class.partial(task_id="subtask", phase="subtask").expand(part=split.output)
        collect = operator_class(task_id="collect", phase="collect", trigger_rule="none_failed")
        mark_failed = operator_class(task_id="mark_failed", phase="fail", trigger_rule="one_failed")
        split >> subtasks >> collect
        [split, subtasks, collect] >> mark_failed
    return dag
