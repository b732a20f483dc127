from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest

from luna_provider import lifecycle, notifications
from luna_provider.errors import TASK_FAILED
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType


class Receiver:
    """A local HTTP server that records the callbacks it receives."""

    def __init__(self, status: int = 200) -> None:
        received: list[tuple[str, dict, dict]] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                received.append((self.path, dict(self.headers), json.loads(self.rfile.read(length))))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.received = received
        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def policy(url: str, **callback: Any) -> dict:
    return {
        "enable": 1,
        "task_callbacks": [{"type": "http", "url": f"{url}/task", **callback}],
        "subtask_callbacks": [{"type": "http", "url": f"{url}/subtask"}],
    }


def test_task_and_subtask_callbacks(engine, luna_env, account_id, receiver, monkeypatch) -> None:
    monkeypatch.setenv("LUNA_PUBLIC_URL", "http://luna.example:5000")
    body = {
        "content": {},
        "notification_policy": policy(
            receiver.url,
            authorization={"type": "basic", "login": "u", "password": "p"},
            params={"headers": {"X-Team": "faces"}},
        ),
    }
    task_id = store_task(engine, TaskType.CLUSTERING, account_id, body)
    lifecycle.start_task(engine, task_id)
    [subtask_id] = lifecycle.create_subtasks(engine, task_id, [{"start": 0}])

    lifecycle.start_subtask(engine, subtask_id)
    lifecycle.finish_subtask(engine, subtask_id, result_key="work/x", count_objects=3)
    lifecycle.begin_collect(engine, task_id)
    task = lifecycle.finish_task(
        engine, task_id, result_key="results/x.json", content_type="application/json", ttl_days=None
    )

    notifications.deliver_due(engine)

    assert [(path, payload) for path, _, payload in receiver.received] == [
        ("/subtask", {"subtask_id": subtask_id, "subtask_status": "in_progress", "completed_subtasks": 0}),
        ("/subtask", {"subtask_id": subtask_id, "subtask_status": "done", "completed_subtasks": 1}),
        (
            "/task",
            {
                "task_id": task_id,
                "task_status": "done",
                "result_id": str(task.result_id),
                "result_url": f"http://luna.example:5000/6/tasks/{task_id}/result",
            },
        ),
    ]
    headers = receiver.received[-1][1]
    assert headers["Authorization"] == "Basic dTpw"
    assert headers["X-Team"] == "faces"


def test_failed_and_cancelled_callbacks(engine, luna_env, account_id, receiver) -> None:
    body = {"content": {}, "notification_policy": policy(receiver.url)}
    failed = store_task(engine, TaskType.CLUSTERING, account_id, body)
    cancelled = store_task(engine, TaskType.CLUSTERING, account_id, body)

    lifecycle.fail_task(engine, failed, TASK_FAILED("boom"))
    lifecycle.cancel_task(engine, cancelled)
    notifications.deliver_due(engine)

    received = sorted((payload for _, _, payload in receiver.received), key=lambda item: item["task_id"])
    assert received == [
        {"task_id": failed, "task_status": "failed"},
        {"task_id": cancelled, "task_status": "cancelled"},
    ]


def test_disabled_policy_and_broken_receiver_do_not_matter(engine, luna_env, account_id, receiver) -> None:
    quiet = store_task(
        engine,
        TaskType.CLUSTERING,
        account_id,
        {"content": {}, "notification_policy": {**policy(receiver.url), "enable": 0}},
    )
    broken = store_task(
        engine,
        TaskType.CLUSTERING,
        account_id,
        {"content": {}, "notification_policy": policy("http://127.0.0.1:9")},
    )

    lifecycle.cancel_task(engine, quiet)
    lifecycle.cancel_task(engine, broken)
    notifications.deliver_due(engine)

    assert receiver.received == []
    assert lifecycle.get_task(engine, broken).task_status == 2


def test_cancel_reports_unfinished_subtasks_cancelled(engine, luna_env, account_id, receiver) -> None:
    task_id = store_task(
        engine, TaskType.CLUSTERING, account_id, {"content": {}, "notification_policy": policy(receiver.url)}
    )
    lifecycle.start_task(engine, task_id)
    first, second = lifecycle.create_subtasks(engine, task_id, [{}, {}])
    lifecycle.start_subtask(engine, first)
    lifecycle.finish_subtask(engine, first, result_key=None, count_objects=1)

    lifecycle.cancel_task(engine, task_id)
    notifications.deliver_due(engine)

    assert [payload for _, _, payload in receiver.received][-2:] == [
        {"subtask_id": second, "subtask_status": "cancelled", "completed_subtasks": 1},
        {"task_id": task_id, "task_status": "cancelled"},
    ]


def test_a_silent_receiver_never_holds_up_the_task(engine, luna_env, account_id) -> None:
    import socket
    import time

    from sqlalchemy import func, select, update

    from luna_provider.store.models import Notification

    # a port that accepts connections and never answers
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen()
    url = f"http://127.0.0.1:{silent.getsockname()[1]}"
    body = {
        "content": {},
        "notification_policy": {
            "enable": 1,
            "task_callbacks": [{"type": "http", "url": url, "params": {"timeout": 1}}],
        },
    }
    task_id = store_task(engine, TaskType.CLUSTERING, account_id, body)

    started = time.monotonic()
    lifecycle.cancel_task(engine, task_id)
    assert time.monotonic() - started < 1

    for attempt in range(1, notifications.MAX_ATTEMPTS + 1):
        assert notifications.deliver_due(engine) == 1
        with engine.begin() as connection:
            left = connection.scalar(select(func.count()).select_from(Notification))
            assert left == (0 if attempt == notifications.MAX_ATTEMPTS else 1)
            connection.execute(update(Notification).values(next_attempt_time=func.now()))
    silent.close()
