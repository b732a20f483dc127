"""Notification policy callbacks: HTTP (and Telegram) messages on task and subtask status changes.

A status change only queues its callbacks in the ``notifications`` table; the API process delivers
them in the background (:func:`start_dispatcher`), so neither a request nor an Airflow worker ever
waits on a receiver. A callback that fails is retried a few times with a growing delay, then
dropped with a log line; it never changes the task's outcome.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.store.models import Notification, Subtask, Task

log = logging.getLogger(__name__)

#: base URL of the Telegram Bot API (settable so tests can point it at a local server)
TELEGRAM_API_URL = os.environ.get("LUNA_TELEGRAM_API_URL", "https://api.telegram.org")
#: deliveries of one callback before it is dropped
MAX_ATTEMPTS = 3
#: callbacks claimed per dispatcher pass
BATCH = 64


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


def _enabled(task: Task, kind: str) -> list[dict]:
    policy = task.notification_policy or {}
    if not policy.get("enable"):
        return []
    return [callback for callback in policy.get(kind) or [] if callback.get("enable", 1)]


def notify_task(engine: Engine, task: Task) -> None:
    """Queue the task callbacks of the task's policy for its current status."""
    from luna_provider.settings import load

    callbacks = _enabled(task, "task_callbacks")
    if callbacks:
        enqueue(engine, task.task_id, callbacks, [task_payload(task, load().public_url)])


def notify_subtask(engine: Engine, task: Task, subtask: Subtask, completed: int) -> None:
    """Queue the subtask callbacks of the task's policy for a subtask's current status."""
    callbacks = _enabled(task, "subtask_callbacks")
    if callbacks:
        enqueue(engine, task.task_id, callbacks, [subtask_payload(subtask, completed)])


def notify_subtasks(engine: Engine, task: Task, subtasks: Iterable[Subtask], completed: int) -> None:
    """Queue the subtask callbacks for several subtasks at once (e.g. all cancelled together)."""
    callbacks = _enabled(task, "subtask_callbacks")
    payloads = [subtask_payload(subtask, completed) for subtask in subtasks]
    if callbacks and payloads:
        enqueue(engine, task.task_id, callbacks, payloads)


def enqueue(engine: Engine, task_id: int, callbacks: list[dict], payloads: list[dict]) -> None:
    """Store one notification per payload and callback, in order."""
    from sqlalchemy import insert

    from luna_provider.store.models import Notification

    rows = [
        {"task_id": task_id, "callback": callback, "payload": payload, "attempts": 0}
        for payload in payloads
        for callback in callbacks
    ]
    with engine.begin() as connection:
        connection.execute(insert(Notification), rows)


def _claim(engine: Engine, limit: int) -> list[Notification]:
    """Take due notifications for delivery; a crashed deliverer's claims expire and are taken again."""
    from sqlalchemy import func, or_, select, text, update
    from sqlalchemy.orm import Session

    from luna_provider.store.models import Notification

    due = (
        select(Notification.notification_id)
        .where(
            Notification.next_attempt_time <= func.now(),
            or_(Notification.claimed_until.is_(None), Notification.claimed_until < func.now()),
        )
        .order_by(Notification.notification_id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    with Session(engine, expire_on_commit=False) as session, session.begin():
        claimed = session.scalars(
            update(Notification)
            .where(Notification.notification_id.in_(due.scalar_subquery()))
            # a claim outlives the longest callback (spec: timeout <= 300 s)
            .values(
                claimed_until=func.now() + text("interval '330 seconds'"), attempts=Notification.attempts + 1
            )
            .returning(Notification)
        ).all()
    return sorted(claimed, key=lambda item: item.notification_id)


def _settle(engine: Engine, notification: Notification, error: Exception | None) -> None:
    from sqlalchemy import delete, func, text, update

    from luna_provider.store.models import Notification

    with engine.begin() as connection:
        if error is None or notification.attempts >= MAX_ATTEMPTS:
            if error is not None:
                log.warning(
                    "task %s: dropped a %s callback after %d attempts: %s",
                    notification.task_id,
                    notification.callback.get("type"),
                    notification.attempts,
                    error,
                )
            connection.execute(
                delete(Notification).where(Notification.notification_id == notification.notification_id)
            )
            return
        log.info(
            "task %s: %s callback failed (attempt %d), retrying: %s",
            notification.task_id,
            notification.callback.get("type"),
            notification.attempts,
            error,
        )
        delay = text(f"interval '{5 * 4 ** (notification.attempts - 1)} seconds'")
        connection.execute(
            update(Notification)
            .where(Notification.notification_id == notification.notification_id)
            .values(claimed_until=None, next_attempt_time=func.now() + delay)
        )


def _deliver_in_order(engine: Engine, notifications: list[Notification]) -> None:
    for notification in notifications:
        try:
            send(notification.callback, notification.payload)
        except Exception as error:
            # the receiver is outside our control; its failure must not stop the others
            _settle(engine, notification, error)
        else:
            _settle(engine, notification, None)


def deliver_due(engine: Engine, workers: int = 8) -> int:
    """Deliver the notifications that are due, each task's in order; return how many were tried."""
    claimed = _claim(engine, BATCH)
    by_task: dict[int, list[Notification]] = {}
    for notification in claimed:
        by_task.setdefault(notification.task_id, []).append(notification)
    if len(by_task) == 1:
        _deliver_in_order(engine, claimed)
    elif by_task:
        with ThreadPoolExecutor(max_workers=min(workers, len(by_task))) as pool:
            list(pool.map(lambda group: _deliver_in_order(engine, group), by_task.values()))
    return len(claimed)


def start_dispatcher(database_url: str, interval: float = 0.5) -> threading.Thread:
    """Deliver queued notifications in a daemon thread of this process."""
    from luna_provider.store.db import get_engine

    def loop() -> None:
        engine = get_engine(database_url)
        while True:
            try:
                busy = deliver_due(engine)
            except Exception:
                log.exception("notification dispatch failed")
                busy = 0
            if not busy:
                threading.Event().wait(interval)

    thread = threading.Thread(target=loop, name="luna-notifications", daemon=True)
    thread.start()
    return thread


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
