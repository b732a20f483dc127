"""Notification policy callbacks: HTTP (and Telegram) messages on task and subtask status changes.

A callback that fails is logged and dropped; it never changes the task's outcome.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luna_provider.store.models import Subtask, Task

log = logging.getLogger(__name__)

#: base URL of the Telegram Bot API (settable so tests can point it at a local server)
TELEGRAM_API_URL = os.environ.get("LUNA_TELEGRAM_API_URL", "https://api.telegram.org")


def task_payload(task: Task, public_url: str) -> dict[str, Any]:
    """Return the task callback body for the task's current status."""
    from luna_provider.task_types import TaskStatus

    payload: dict[str, Any] = {
        "task_id": task.task_id,
        "task_status": TaskStatus(task.task_status).callback_name,
    }
    if task.task_status == TaskStatus.DONE and task.result_id is not None:
        payload["result_id"] = str(task.result_id)
        payload["result_url"] = f"{public_url}/6/tasks/{task.task_id}/result"
    return payload


def subtask_payload(subtask: Subtask, completed: int) -> dict[str, Any]:
    """Return the subtask callback body for the subtask's current status."""
    from luna_provider.task_types import TaskStatus

    return {
        "subtask_id": subtask.subtask_id,
        "subtask_status": TaskStatus(subtask.subtask_status).callback_name,
        "completed_subtasks": completed,
    }


def notify_task(task: Task) -> None:
    """Send the task callbacks of the task's policy, if it enables them."""
    from luna_provider.settings import load

    policy = task.notification_policy or {}
    callbacks = policy.get("task_callbacks") or []
    if policy.get("enable") and callbacks:
        _send_all(callbacks, task_payload(task, load().public_url), task.task_id)


def notify_subtask(task: Task, subtask: Subtask, completed: int) -> None:
    """Send the subtask callbacks of the task's policy, if it enables them."""
    policy = task.notification_policy or {}
    callbacks = policy.get("subtask_callbacks") or []
    if policy.get("enable") and callbacks:
        _send_all(callbacks, subtask_payload(subtask, completed), task.task_id)


def _send_all(callbacks: list[dict], payload: dict[str, Any], task_id: int) -> None:
    for callback in callbacks:
        if not callback.get("enable", 1):
            continue
        try:
            send(callback, payload)
        except Exception as error:
            # the callback's receiver is outside our control; its failure must not fail the task
            log.warning("task %s: %s callback failed: %s", task_id, callback.get("type"), error)


def send(callback: dict, payload: dict[str, Any]) -> None:
    """Deliver ``payload`` through one callback definition."""
    import requests

    from luna_provider.settings import load

    params = callback.get("params") or {}
    timeout = float(params.get("timeout") or load().callback_timeout)
    if callback.get("type") == "telegram":
        text = ", ".join(f"{key}: {value}" for key, value in payload.items())
        response = requests.post(
            f"{TELEGRAM_API_URL}/bot{callback['token']}/sendMessage",
            json={"chat_id": callback["chat_id"], "text": text},
            timeout=timeout,
        )
    else:
        headers = {"Content-Type": "application/json", **(params.get("headers") or {})}
        auth = None
        authorization = callback.get("authorization")
        if authorization and authorization.get("type") == "basic":
            auth = (authorization.get("login", ""), authorization.get("password", ""))
        response = requests.post(callback["url"], json=payload, headers=headers, auth=auth, timeout=timeout)
    response.raise_for_status()
