from __future__ import annotations

import uuid

import pytest
from sqlalchemy import update

from luna_provider.schedules import create_scheduled_task
from luna_provider.store.models import Task

TASK = {"task_type": 2, "description": "nightly", "content": {"filters": {"object_type": "faces"}}}


def create(client, headers, **extra) -> int:
    body = {"task": TASK, "trigger": {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}, **extra}
    response = client.post("/6/tasks/schedules", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()["schedule_id"]


def test_schedule_round_trip(client, headers) -> None:
    schedule_id = create(client, headers)

    schedule = client.get(f"/6/tasks/schedules/{schedule_id}", headers=headers).json()

    assert schedule["status"] == "running"
    assert schedule["task"] == TASK
    assert schedule["trigger"] == {"cron": "0 3 * * *", "timezone": "Europe/Berlin"}
    assert schedule["task_ids"] == []
    # 03:00 in Berlin is 01:00 or 02:00 UTC depending on the season
    assert schedule["next_run_time"][11:19] == "03:00:00"
    listed = client.get("/6/tasks/schedules", headers=headers).json()
    assert [item["schedule_id"] for item in listed] == [schedule_id]


def test_start_immediately_creates_a_task(client, headers, airflow) -> None:
    schedule_id = create(client, headers, behaviour={"start_immediately": True})

    schedule = client.get(f"/6/tasks/schedules/{schedule_id}", headers=headers).json()

    assert len(schedule["task_ids"]) == 1
    task = client.get(f"/6/tasks/{schedule['task_ids'][0]}", headers=headers).json()
    assert task["schedule_id"] == schedule_id
    assert airflow.triggered[0][0] == "luna_clustering"


@pytest.mark.parametrize(
    "trigger",
    [
        {"cron": "61 * * * *"},
        {"cron": "not cron"},
        {"cron": "0 3 * * *", "timezone": "Mars/Base"},
        {"cron": "* * * * * *"},  # a seconds field would fire every second
        {"cron": "* * * * * * *"},
    ],
)
def test_bad_trigger_is_rejected(client, headers, engine, trigger) -> None:
    response = client.post("/6/tasks/schedules", json={"task": TASK, "trigger": trigger}, headers=headers)

    assert response.status_code == 400, response.text
    assert client.get("/6/tasks/schedules", headers=headers).json() == []


def test_schedules_are_isolated_by_account(client, headers) -> None:
    schedule_id = create(client, headers)
    other = {"Luna-Account-Id": str(uuid.uuid4())}

    assert client.get(f"/6/tasks/schedules/{schedule_id}", headers=other).status_code == 404
    assert client.patch(f"/6/tasks/schedules/{schedule_id}?action=pause", headers=other).status_code == 404
    assert client.delete(f"/6/tasks/schedules/{schedule_id}", headers=other).status_code == 404
    assert client.get("/6/tasks/schedules", headers=other).json() == []


def test_pause_start_replace_delete(client, headers, engine) -> None:
    schedule_id = create(client, headers, behaviour={"start_immediately": True})
    running_task = client.get(f"/6/tasks/schedules/{schedule_id}", headers=headers).json()["task_ids"][0]

    assert client.patch(f"/6/tasks/schedules/{schedule_id}?action=pause", headers=headers).status_code == 204
    assert client.get(f"/6/tasks/schedules/{schedule_id}", headers=headers).json()["status"] == "paused"
    assert create_scheduled_task(engine, schedule_id) is None
    assert client.patch(f"/6/tasks/schedules/{schedule_id}?action=start", headers=headers).status_code == 204
    assert client.patch(f"/6/tasks/schedules/{schedule_id}?action=stop", headers=headers).status_code == 400

    replaced = {"task": {**TASK, "description": "weekly"}, "trigger": {"cron": "0 4 * * 1"}}
    response = client.put(f"/6/tasks/schedules/{schedule_id}", json=replaced, headers=headers)

    assert response.status_code == 200, response.text
    # replacing cancels what the schedule is running
    assert client.get(f"/6/tasks/{running_task}", headers=headers).json()["task_status"] == 2
    schedule = client.get(f"/6/tasks/schedules/{schedule_id}", headers=headers).json()
    assert schedule["task"]["description"] == "weekly"
    assert client.delete(f"/6/tasks/schedules/{schedule_id}", headers=headers).status_code == 204
    assert client.get(f"/6/tasks/schedules/{schedule_id}", headers=headers).status_code == 404
    # the tasks it created stay
    assert client.get(f"/6/tasks/{running_task}", headers=headers).status_code == 200


def test_firing_skips_while_previous_task_runs(client, headers, engine) -> None:
    schedule_id = create(client, headers)

    first = create_scheduled_task(engine, schedule_id)

    assert first is not None
    assert create_scheduled_task(engine, schedule_id) is None
    with engine.begin() as connection:
        connection.execute(update(Task).where(Task.task_id == first).values(task_status=5))
    second = create_scheduled_task(engine, schedule_id)
    assert second is not None and second != first
    task = client.get(f"/6/tasks/{second}", headers=headers).json()
    assert (task["schedule_id"], task["description"], task["task_status"]) == (schedule_id, "nightly", 0)
