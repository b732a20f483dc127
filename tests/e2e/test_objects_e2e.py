"""Linker and garbage collection through the API on the real stack, checked with clustering tasks."""

from __future__ import annotations

import time
import uuid

import requests

from tests.e2e.test_tasks_e2e import import_file, people, wait_final


def new_account() -> dict[str, str]:
    return {"Luna-Account-Id": str(uuid.uuid4())}


def run(api: str, path: str, body: dict, headers: dict) -> dict:
    response = requests.post(f"{api}/6/tasks/{path}", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    task = wait_final(api, response.json()["task_id"], headers)
    assert task["task_status"] == 5, task
    return requests.get(f"{api}/6/tasks/{task['task_id']}/result", headers=headers, timeout=30).json()


def clustered_faces(api: str, filters: dict, headers: dict) -> set[str]:
    """Return the faces a clustering task sees: an API-only view of the database."""
    result = run(api, "clustering", {"content": {"filters": {"object_type": "faces", **filters}}}, headers)
    return {face for cluster in result["result"]["clusters"] for face in cluster}


def test_linker_links_the_selected_faces_to_a_new_list(luna_stack, tmp_path) -> None:
    api, account = luna_stack.api_url, new_account()
    records, _ = people(count=4, per_person=10, seed=31)
    for index, record in enumerate(records):
        record["user_data"] = "staff" if index % 3 == 0 else "guest"
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], records)
    staff = {record["face_id"] for record in records if record["user_data"] == "staff"}
    body = {
        "content": {
            "list": {"create_list": 1, "user_data": "e2e staff"},
            "filters": {"object_type": "faces", "user_data": "staff"},
        }
    }

    started = time.monotonic()
    result = run(api, "linker", body, account)
    elapsed = time.monotonic() - started

    assert set(result["result"]["faces"]) == staff
    assert (result["result"]["linked_faces"], result["result"]["already_linked"]) == (len(staff), 0)
    assert result["result"]["created_list"] is True
    assert clustered_faces(api, {"list_id": result["result"]["list_id"]}, account) == staff
    print(f"linker of {len(staff)} faces: create to done in {elapsed:.1f} s")


def test_linker_to_a_missing_list_is_refused(luna_stack) -> None:
    api, account = luna_stack.api_url, new_account()
    missing = str(uuid.uuid4())
    body = {"content": {"list": {"list_id": missing}, "filters": {"object_type": "faces"}}}

    response = requests.post(f"{api}/6/tasks/linker", json=body, headers=account, timeout=30)

    assert response.status_code == 404
    assert response.json()["error_code"] == 22003
    assert requests.get(f"{api}/6/tasks/count", headers=account, timeout=10).json()["count"] == 0


def test_gc_deletes_the_selected_faces_only(luna_stack, tmp_path) -> None:
    api, account = luna_stack.api_url, new_account()
    records, _ = people(count=3, per_person=10, seed=32)
    for index, record in enumerate(records):
        record["external_id"] = f"ext-{index % 4}"
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], records)
    doomed = {record["face_id"] for record in records if record["external_id"] in ("ext-1", "ext-2")}
    body = {
        "content": {
            "target": "faces",
            "filters": {"external_ids": ["ext-1", "ext-2"]},
            "remove_samples": True,
        }
    }

    started = time.monotonic()
    result = run(api, "gc", body, account)
    elapsed = time.monotonic() - started

    assert result == {
        "result": {"target": "faces", "removed_faces": len(doomed), "removed_samples": 0},
        "errors": [],
    }
    assert clustered_faces(api, {}, account) == {record["face_id"] for record in records} - doomed
    print(f"gc of {len(doomed)} faces: create to done in {elapsed:.1f} s")
