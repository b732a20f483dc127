"""``/tasks/{task_id}/notification_policy``: the callbacks of a task."""

from __future__ import annotations

from sqlalchemy import func, update
from sqlalchemy.orm import Session

from luna_provider.api import services
from luna_provider.api.handlers.tasks import load_task, task_view
from luna_provider.store.models import Task


def get_notification_policy(task_id: int, account_id: str | None = None) -> dict:
    """Return the task's notification policy."""
    account = services.request_account_id(account_id)
    with Session(services.engine()) as session:
        return task_view(load_task(session, task_id, account))["notification_policy"]


def replace_notification_policy(task_id: int, body: dict) -> tuple[str, int]:
    """Replace the task's notification policy; later status changes use the new one."""
    account = services.header_account_id()
    policy = {"enable": 0, "task_callbacks": [], "subtask_callbacks": [], **body}
    with Session(services.engine()) as session, session.begin():
        load_task(session, task_id, account)
        session.execute(
            update(Task)
            .where(Task.task_id == task_id, Task.account_id == account)
            .values(notification_policy=policy, last_update_time=func.now())
        )
    return "", 204
