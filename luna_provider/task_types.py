"""Task types and statuses, with the names the API and the DAGs use for them."""

from __future__ import annotations

import enum


class TaskStatus(enum.IntEnum):
    """Status of a task or subtask, as the Luna API numbers them."""

    PENDING = 0
    IN_PROGRESS = 1
    CANCELLED = 2
    FAILED = 3
    COLLECT_RESULTS = 4
    DONE = 5

    @property
    def is_final(self) -> bool:
        return self in (TaskStatus.CANCELLED, TaskStatus.FAILED, TaskStatus.DONE)

    @property
    def callback_name(self) -> str:
        """Return the status word used in notification payloads."""
        return self.name.lower()


class TaskType(enum.IntEnum):
    """Type of a task, as the Luna API numbers them; ``slug`` is the path of its create route."""

    UNKNOWN = 0
    LINKER = 1
    CLUSTERING = 2
    REPORTER = 3
    GC = 4
    ADDITIONAL_EXTRACT = 5
    CROSS_MATCH = 6
    ROC = 7
    EXPORTER = 8
    ESTIMATOR = 9
    LAMBDA = 10

    @property
    def slug(self) -> str:
        return self.name.lower()

    @property
    def dag_id(self) -> str:
        """Return the id of the DAG that runs tasks of this type."""
        return f"luna_{self.slug}"


FINAL_STATUSES = tuple(status for status in TaskStatus if status.is_final)


def work_prefix(task_id: int) -> str:
    """Return the object-store folder of a task's intermediate files."""
    return f"work/task_{task_id}"


def dag_run_id(task_id: int) -> str:
    """Return the DAG run id of a task; deriving it from the task id makes triggering idempotent."""
    return f"luna_task_{task_id}"
