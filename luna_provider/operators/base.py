"""The operator every Luna task type builds on: split, run subtasks, collect.

A task type's DAG runs its operator three times: ``phase="split"`` marks the task in progress and
returns one content dict per subtask; ``phase="subtask"`` is mapped over those and stores each
part's result; ``phase="collect"`` merges the parts and stores the task result. The lifecycle
(statuses, progress, errors, callbacks) is handled here, not by the task types.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from airflow.sdk import BaseOperator

from luna_provider import lifecycle
from luna_provider.errors import TASK_FAILED, TASK_RUN_LOST, LunaError
from luna_provider.task_types import work_prefix

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.settings import Settings
    from luna_provider.storage import ObjectStore
    from luna_provider.store.models import Subtask, Task
    from luna_provider.task_types import TaskType

PHASES = ("split", "subtask", "collect", "fail")


@dataclass
class TaskRun:
    """What a task type's code needs: the task row, the database, the object store, settings."""

    task: Task
    engine: Engine
    store: ObjectStore
    settings: Settings

    @property
    def work_prefix(self) -> str:
        """Return the object-store folder for this task's intermediate files."""
        return work_prefix(self.task.task_id)

    @property
    def result_prefix(self) -> str:
        """Return the object-store folder for this task's results."""
        return f"results/{self.task.account_id}/task_{self.task.task_id}"

    def add_error(
        self, error: LunaError, *, subtask_id: int | None = None, object_id: str | None = None
    ) -> None:
        """Record a problem with one object; the task goes on."""
        lifecycle.add_error(
            self.engine, self.task.task_id, error, subtask_id=subtask_id, additional_info=object_id
        )


@dataclass
class TaskResult:
    """A merged task result: a JSON document, or an object already written to the store."""

    document: Any = None
    key: str | None = None
    content_type: str = "application/json"


class LunaTaskOperator(BaseOperator):
    """Run one phase of a Luna task; subclasses implement :meth:`split`, :meth:`run_part`, :meth:`collect`.

    :param phase: ``split``, ``subtask``, ``collect`` or ``fail`` (marks the task failed when a step of
        the run failed without recording why, e.g. a killed worker).
    :param part: the subtask content (``subtask`` phase, usually mapped from the split's output).
    :param luna_conn_id: Postgres connection to the service database.
    """

    task_type: ClassVar[TaskType]
    template_fields = ("part",)
    ui_color = "#e8f0fe"

    def __init__(
        self, *, phase: str, part: dict | None = None, luna_conn_id: str = "luna_default", **kwargs: Any
    ) -> None:
        if phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, not {phase!r}")
        super().__init__(**kwargs)
        self.phase = phase
        self.part = part
        self.luna_conn_id = luna_conn_id

    # -- the task type's work -----------------------------------------------------------------------

    @abc.abstractmethod
    def split(self, run: TaskRun) -> list[dict]:
        """Select the task's objects and return one content dict per subtask."""

    @abc.abstractmethod
    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        """Process one subtask; return the object-store key of its partial result."""

    @abc.abstractmethod
    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        """Merge the subtasks' partial results into the task result."""

    # -- lifecycle --------------------------------------------------------------------------------

    def execute(self, context: Any) -> Any:
        from luna_provider.hooks.luna import LunaHook
        from luna_provider.settings import load

        hook = LunaHook(self.luna_conn_id)
        dag_run = context.get("dag_run")
        request_id = (getattr(dag_run, "conf", None) or {}).get("luna_request_id")
        if request_id:
            self.log.info("task %s was created by request %s", context["params"]["task_id"], request_id)
        return self.run_phase(
            int(context["params"]["task_id"]),
            engine=hook.get_engine(),
            store=hook.get_object_store(),
            settings=load(),
        )

    def run_phase(self, task_id: int, *, engine: Engine, store: ObjectStore, settings: Settings) -> Any:
        """Run this operator's phase for the stored task ``task_id``."""
        from airflow.sdk.exceptions import AirflowSkipException

        started = time.monotonic()
        if self.phase == "fail":
            from airflow.sdk.exceptions import AirflowFailException

            lost = TASK_RUN_LOST(task_id, "a step of its DAG run failed; see the Airflow task logs")
            if lifecycle.fail_task(engine, task_id, lost) is not None:
                self.log.warning("task %s marked failed after a failed step", task_id)
            store.delete(work_prefix(task_id))
            # this step is the run's only leaf: failing it shows the run failed in the Airflow UI
            raise AirflowFailException(f"task {task_id} failed")

        task = lifecycle.get_task(engine, task_id)
        if task is None:
            raise AirflowSkipException(f"task {task_id} no longer exists")
        run = TaskRun(task=task, engine=engine, store=store, settings=settings)
        try:
            result = getattr(self, f"_execute_{self.phase}")(run)
        except AirflowSkipException:
            raise
        except Exception as error:
            luna_error = (
                error if isinstance(error, LunaError) else TASK_FAILED(f"{type(error).__name__}: {error}")
            )
            subtask_id = (self.part or {}).get("subtask_id")
            if subtask_id is not None:
                lifecycle.fail_subtask(engine, subtask_id)
            lifecycle.fail_task(engine, task_id, luna_error, subtask_id=subtask_id)
            store.delete(run.work_prefix)
            raise
        self.log.info("task %s: %s finished in %.2f s", task_id, self.phase, time.monotonic() - started)
        return result

    def _execute_split(self, run: TaskRun) -> list[dict]:
        from airflow.sdk.exceptions import AirflowSkipException

        task_id = run.task.task_id
        if lifecycle.start_task(run.engine, task_id) is None:
            raise AirflowSkipException(f"task {task_id} is already final")
        contents = self.split(run)
        subtask_ids = lifecycle.create_subtasks(run.engine, task_id, contents)
        self.log.info("task %s: split into %d subtasks", task_id, len(contents))
        return [
            {"subtask_id": subtask_id, **content}
            for subtask_id, content in zip(subtask_ids, contents, strict=True)
        ]

    def _execute_subtask(self, run: TaskRun) -> str | None:
        from airflow.sdk.exceptions import AirflowSkipException

        part = dict(self.part or {})
        subtask = lifecycle.start_subtask(run.engine, part["subtask_id"])
        if subtask is None:
            raise AirflowSkipException(f"subtask {part['subtask_id']} of task {run.task.task_id} is final")
        self.log.info(
            "task %s: subtask %s (%s objects)", run.task.task_id, subtask.subtask_id, subtask.count_objects
        )
        key = self.run_part(run, subtask, part)
        lifecycle.finish_subtask(
            run.engine, subtask.subtask_id, result_key=key, count_objects=subtask.count_objects
        )
        return key

    def _execute_collect(self, run: TaskRun) -> str | None:
        from airflow.sdk.exceptions import AirflowSkipException
        from sqlalchemy import select
        from sqlalchemy.orm import Session

        from luna_provider.store.models import Subtask

        task_id = run.task.task_id
        if lifecycle.begin_collect(run.engine, task_id) is None:
            raise AirflowSkipException(f"task {task_id} is already final")
        with Session(run.engine, expire_on_commit=False) as session:
            subtasks = list(
                session.scalars(
                    select(Subtask).where(Subtask.task_id == task_id).order_by(Subtask.part_index)
                )
            )
        result = self.collect(run, subtasks)
        key = result.key
        if result.document is not None:
            key = f"{run.result_prefix}.json"
            run.store.put_json(key, result.document)
        ttl = (run.task.result_storage_policy or {}).get("ttl")
        lifecycle.finish_task(
            run.engine, task_id, result_key=key, content_type=result.content_type, ttl_days=ttl
        )
        run.store.delete(run.work_prefix)
        return key


def task_error_bodies(run: TaskRun) -> list[dict[str, Any]]:
    """Return the errors recorded so far for the task, as Luna error bodies."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from luna_provider.store.models import TaskError

    with Session(run.engine) as session:
        errors = session.scalars(
            select(TaskError)
            .where(TaskError.task_id == run.task.task_id)
            .order_by(TaskError.error_id)
            .limit(1000)
        )
        return [
            {"error_code": e.error_code, "desc": e.description, "detail": e.detail, "link": e.link}
            for e in errors
        ]
