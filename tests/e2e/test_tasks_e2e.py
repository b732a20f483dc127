"""The real stack over HTTP: embedded PostgreSQL, Airflow (scheduler, LocalExecutor) and the API."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from typing import Any

import numpy as np
import pytest
import requests
from sklearn.cluster import DBSCAN
from sklearn.metrics import pairwise_distances

from luna_provider.compute.descriptors import DLIB_RESNET_V1

TASK_TIMEOUT = 180.0


@pytest.fixture(scope="module")
def account() -> dict[str, str]:
    return {"Luna-Account-Id": str(uuid.uuid4())}


def wait_final(api: str, task_id: int, headers: dict, timeout: float = TASK_TIMEOUT) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        task = requests.get(f"{api}/6/tasks/{task_id}", headers=headers, timeout=10).json()
        if task["task_status"] in (2, 3, 5):
            return task
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} not final after {timeout} s: {task}")


def import_file(luna_stack: Any, tmp_path: Any, account_id: str, records: list[dict]) -> None:
    path = tmp_path / "faces.jsonl"
    path.write_text("".join(json.dumps(record) + "\n" for record in records))
    done = subprocess.run(
        [sys.executable, "-m", "luna_provider.cli", "import", str(path), "--account-id", account_id],
        env=luna_stack.env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"imported {len(records)} faces" in done.stdout


def people(count: int, per_person: int, seed: int) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(count, 128))
    centres *= 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = np.repeat(centres, per_person, axis=0) + rng.normal(scale=0.035, size=(count * per_person, 128))
    vectors = vectors.astype(np.float32)
    records = [{"face_id": str(uuid.uuid4()), "descriptor": vector.tolist()} for vector in vectors]
    return records, vectors


def test_clustering_task_runs_on_airflow(luna_stack, account, tmp_path) -> None:
    api = luna_stack.api_url
    records, vectors = people(count=6, per_person=15, seed=21)
    list_id = str(uuid.uuid4())
    for record in records:
        record["list_ids"] = [list_id]
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], records)
    body = {
        "description": "e2e",
        "content": {"filters": {"object_type": "faces", "list_id": list_id}, "threshold": 0.5},
    }

    started = time.monotonic()
    response = requests.post(f"{api}/6/tasks/clustering", json=body, headers=account, timeout=30)
    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    task = wait_final(api, task_id, account)
    elapsed = time.monotonic() - started

    assert task["task_status"] == 5, luna_stack.log_tails()
    assert task["count_task_parts_done"] == task["count_task_parts_all"] >= 1
    result = requests.get(f"{api}/6/tasks/{task_id}/result", headers=account, timeout=30).json()
    distances = pairwise_distances(vectors.astype(np.float64))
    eps = np.nextafter(DLIB_RESNET_V1.threshold_distance(0.5), 0)
    labels = DBSCAN(eps=eps, min_samples=1, metric="precomputed").fit_predict(distances)
    expected: dict[int, set[str]] = {}
    for record, label in zip(records, labels, strict=True):
        expected.setdefault(label, set()).add(record["face_id"])
    assert {frozenset(c) for c in result["result"]["clusters"]} == {frozenset(c) for c in expected.values()}
    assert result["result"]["total_objects"] == len(records)
    subtasks = requests.get(f"{api}/1/tasks/{task_id}/subtasks", headers=account, timeout=10).json()[
        "subtasks"
    ]
    assert [subtask["subtask_status"] for subtask in subtasks] == [5] * task["count_task_parts_all"]
    print(f"clustering of {len(records)} faces: create to done in {elapsed:.1f} s")


def test_the_run_is_visible_in_airflow(luna_stack, account) -> None:
    from luna_provider.airflow_client import AirflowClient

    body = {"content": {"filters": {"object_type": "faces"}}}
    task_id = requests.post(
        f"{luna_stack.api_url}/6/tasks/clustering", json=body, headers=account, timeout=30
    ).json()["task_id"]
    wait_final(luna_stack.api_url, task_id, account)
    client = AirflowClient(
        luna_stack.airflow_url,
        luna_stack.env.get("LUNA_AIRFLOW_USERNAME", ""),
        luna_stack.env.get("LUNA_AIRFLOW_PASSWORD", ""),
    )

    # the task is final as soon as collect has stored it; the run ends a moment later
    deadline = time.monotonic() + 60
    run = client.get_dag_run("luna_clustering", f"luna_task_{task_id}")
    while run is not None and run["state"] not in ("success", "failed") and time.monotonic() < deadline:
        time.sleep(0.5)
        run = client.get_dag_run("luna_clustering", f"luna_task_{task_id}")

    assert run is not None
    assert run["state"] == "success"
    assert run["conf"]["task_id"] == task_id
    assert run["conf"]["luna_request_id"]


def test_malformed_create_stores_nothing(luna_stack, account) -> None:
    api = luna_stack.api_url
    before = requests.get(f"{api}/6/tasks/count", headers=account, timeout=10).json()["count"]

    response = requests.post(
        f"{api}/6/tasks/clustering",
        json={"content": {"filters": {"object_type": "cars"}}},
        headers=account,
        timeout=10,
    )

    assert response.status_code == 400
    assert set(response.json()) == {"error_code", "desc", "detail", "link"}
    assert response.headers["Luna-Request-Id"]
    assert requests.get(f"{api}/6/tasks/count", headers=account, timeout=10).json()["count"] == before


def test_cancel_leaves_the_task_cancelled(luna_stack, account, tmp_path) -> None:
    api = luna_stack.api_url
    records, _ = people(count=2, per_person=5, seed=5)
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], records)
    task_id = requests.post(
        f"{api}/6/tasks/clustering",
        json={"content": {"filters": {"object_type": "faces"}}},
        headers=account,
        timeout=30,
    ).json()["task_id"]

    response = requests.patch(f"{api}/6/tasks/{task_id}", headers=account, timeout=30)

    if response.status_code == 400:
        # the task was already done: cancelling a final task is refused with 28019
        assert response.json()["error_code"] == 28019
        return
    assert response.status_code == 204
    time.sleep(5)  # whatever the run was doing, it must not bring the task back
    task = requests.get(f"{api}/6/tasks/{task_id}", headers=account, timeout=10).json()
    assert task["task_status"] == 2
    result = requests.get(f"{api}/6/tasks/{task_id}/result", headers=account, timeout=10)
    assert result.json()["error_code"] == 28025


def test_delete_removes_task(luna_stack, account) -> None:
    api = luna_stack.api_url
    task_id = requests.post(
        f"{api}/6/tasks/clustering",
        json={"content": {"filters": {"object_type": "faces"}}},
        headers=account,
        timeout=30,
    ).json()["task_id"]
    wait_final(api, task_id, account)

    assert requests.delete(f"{api}/6/tasks/{task_id}", headers=account, timeout=30).status_code == 204

    assert requests.get(f"{api}/6/tasks/{task_id}", headers=account, timeout=10).status_code == 404
    assert not any((luna_stack.home / "objects" / "results").rglob(f"task_{task_id}.json"))


def test_schedule_fires_on_its_cron(luna_stack, account) -> None:
    api = luna_stack.api_url
    body = {
        "task": {
            "task_type": 2,
            "description": "every minute",
            "content": {"filters": {"object_type": "faces"}},
        },
        "trigger": {"cron": "* * * * *"},
    }

    response = requests.post(f"{api}/6/tasks/schedules", json=body, headers=account, timeout=30)
    assert response.status_code == 201, response.text
    schedule_id = response.json()["schedule_id"]

    deadline = time.monotonic() + 150
    task_ids: list[int] = []
    while time.monotonic() < deadline and not task_ids:
        task_ids = requests.get(f"{api}/6/tasks/schedules/{schedule_id}", headers=account, timeout=10).json()[
            "task_ids"
        ]
        time.sleep(2)
    assert task_ids, luna_stack.log_tails()
    task = wait_final(api, task_ids[0], account)
    assert (task["task_status"], task["schedule_id"]) == (5, schedule_id)
    assert (
        requests.delete(f"{api}/6/tasks/schedules/{schedule_id}", headers=account, timeout=30).status_code
        == 204
    )
