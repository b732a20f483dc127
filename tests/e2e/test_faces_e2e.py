"""Real faces through the real stack: an estimator task over a folder, then clustering its faces."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import requests

from tests.e2e.test_tasks_e2e import wait_final
from tests.sample_faces import chip_identities, require_sample_faces


def test_estimator_then_clustering_finds_the_five_people(luna_stack) -> None:
    faces_dir = require_sample_faces()
    api = luna_stack.api_url
    headers = {"Luna-Account-Id": str(uuid.uuid4())}
    body = {
        "description": "e2e johns",
        "content": {
            "source": {"source_type": "network_disk", "path": str(faces_dir / "johns"), "recursive": True},
            "handler": {"policies": {"storage_policy": {"face_policy": {"user_data": "johns"}}}},
        },
    }

    started = time.monotonic()
    response = requests.post(f"{api}/6/tasks/estimator", json=body, headers=headers, timeout=30)
    assert response.status_code == 201, response.text
    estimator_id = response.json()["task_id"]
    task = wait_final(api, estimator_id, headers, timeout=300)
    estimated = time.monotonic() - started

    assert task["task_status"] == 5, luna_stack.log_tails()
    result = requests.get(f"{api}/6/tasks/{estimator_id}/result", headers=headers, timeout=30).json()
    assert result["errors"] == []
    person = {}
    for entry in result["result"]["images"]:
        assert len(entry["faces"]) == 1, entry
        person[entry["faces"][0]["face_id"]] = chip_identities(faces_dir)[f"johns/{entry['image']}"]
    assert len(person) == 55

    response = requests.post(
        f"{api}/6/tasks/clustering",
        json={"content": {"filters": {"object_type": "faces"}}},  # the account has these faces only
        headers=headers,
        timeout=30,
    )
    assert response.status_code == 201, response.text
    clustering_id = response.json()["task_id"]
    assert wait_final(api, clustering_id, headers)["task_status"] == 5, luna_stack.log_tails()
    clusters = requests.get(f"{api}/6/tasks/{clustering_id}/result", headers=headers, timeout=30).json()

    by_person = defaultdict(set)
    for face_id, name in person.items():
        by_person[name].add(face_id)
    assert {frozenset(cluster) for cluster in clusters["result"]["clusters"]} == {
        frozenset(faces) for faces in by_person.values()
    }
    print(f"estimator over 55 chips: create to done in {estimated:.1f} s")
