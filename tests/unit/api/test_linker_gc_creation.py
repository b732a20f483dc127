"""Creating linker and garbage-collection tasks: checks that need the account and the database."""

from __future__ import annotations

import uuid

from sqlalchemy import insert

from luna_provider.store.models import FaceList
from tests.unit.api.test_task_handlers import assert_luna_error, task_count


def add_list(engine, account: str) -> str:
    list_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(insert(FaceList).values(list_id=list_id, account_id=uuid.UUID(account)))
    return str(list_id)


def linker_body(list_id: str) -> dict:
    return {"content": {"list": {"list_id": list_id}, "filters": {"object_type": "faces"}}}


def test_linker_to_an_own_list_is_created_and_triggered(client, headers, engine, airflow) -> None:
    list_id = add_list(engine, headers["Luna-Account-Id"])

    response = client.post("/6/tasks/linker", json=linker_body(list_id), headers=headers)

    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    assert airflow.triggered == [("luna_linker", f"luna_task_{task_id}", {"task_id": task_id})]


def test_linker_to_a_missing_list_is_refused_and_not_stored(client, headers, engine, airflow) -> None:
    missing = str(uuid.uuid4())

    body = assert_luna_error(
        client.post("/6/tasks/linker", json=linker_body(missing), headers=headers), 404, 22003
    )

    assert body["detail"] == f"List '{missing}' not found"
    assert task_count(engine) == 0
    assert airflow.triggered == []


def test_linker_to_another_accounts_list_is_refused(client, headers, engine, airflow) -> None:
    foreign = add_list(engine, str(uuid.uuid4()))

    assert_luna_error(client.post("/6/tasks/linker", json=linker_body(foreign), headers=headers), 404, 22003)

    assert task_count(engine) == 0


def test_linker_creating_its_list_needs_no_list(client, headers, engine, airflow) -> None:
    body = {"content": {"list": {"create_list": 1, "user_data": "new"}, "filters": {"object_type": "events"}}}

    assert client.post("/6/tasks/linker", json=body, headers=headers).status_code == 201


def test_gc_is_created_and_triggered(client, headers, airflow) -> None:
    body = {"content": {"target": "events", "remove_samples": True, "filters": {"sources": ["cam-1"]}}}

    response = client.post("/6/tasks/gc", json=body, headers=headers)

    assert response.status_code == 201, response.text
    assert airflow.triggered[0][0] == "luna_gc"


def test_filters_naming_another_account_are_refused(client, headers, engine, airflow) -> None:
    other = str(uuid.uuid4())
    gc = {"content": {"target": "faces", "filters": {"account_id": other}}}
    linker = {
        "content": {"list": {"create_list": 1}, "filters": {"object_type": "faces", "account_id": other}}
    }

    for path, body in (("/6/tasks/gc", gc), ("/6/tasks/linker", linker)):
        detail = assert_luna_error(client.post(path, json=body, headers=headers), 400, 28061)["detail"]
        assert other in detail
    assert task_count(engine) == 0
    own = {"content": {"target": "faces", "filters": {"account_id": headers["Luna-Account-Id"]}}}
    assert client.post("/6/tasks/gc", json=own, headers=headers).status_code == 201


def test_schedule_of_a_linker_to_a_missing_list_is_refused(client, headers, engine) -> None:
    body = {
        "task": {"task_type": 1, **linker_body(str(uuid.uuid4()))},
        "trigger": {"cron": "0 3 * * *"},
    }

    assert_luna_error(client.post("/6/tasks/schedules", json=body, headers=headers), 404, 22003)

    assert client.get("/6/tasks/schedules", headers=headers).json() == []
