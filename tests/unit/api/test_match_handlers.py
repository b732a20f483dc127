from __future__ import annotations

import uuid

import pytest

from tests.unit.api.test_task_handlers import assert_luna_error, task_count

CROSS_MATCH = {
    "references": {"filters": {"object_type": "faces"}},
    "candidates": {"filters": {"object_type": "events", "sources": ["cam-1"]}},
    "threshold": 0.6,
    "limit": 5,
}


def roc_content(labels: str, **extra: object) -> dict:
    items = [{"object_id": str(uuid.uuid4()), "label": label} for label in labels]
    return {"markup": {"items": items, "object_type": "faces"}, **extra}


@pytest.mark.parametrize(
    ("route", "content", "dag_id", "task_type"),
    [
        ("cross_match", CROSS_MATCH, "luna_cross_match", 6),
        ("roc", roc_content("aabb", key_FPRs=[0.01], limit=3), "luna_roc", 7),
    ],
)
def test_task_is_stored_and_its_dag_triggered(
    client, headers, airflow, route, content, dag_id, task_type
) -> None:
    response = client.post(f"/6/tasks/{route}", json={"content": content}, headers=headers)

    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    assert airflow.triggered == [(dag_id, f"luna_task_{task_id}", {"task_id": task_id})]
    task = client.get(f"/6/tasks/{task_id}", headers=headers).json()
    assert (task["task_type"], task["task_status"], task["content"]) == (task_type, 0, content)


@pytest.mark.parametrize(
    ("route", "content", "status", "code"),
    [
        ("roc", roc_content("ab"), 400, 28052),
        ("roc", roc_content("aaa"), 400, 28052),
        ("roc", roc_content("aab", descriptor={"type": "body"}), 400, 28053),
        ("roc", roc_content("aab", key_FPRs=[0]), 400, 12022),
        ("roc", roc_content("aab", limit=101), 400, 12022),
        ("cross_match", {**CROSS_MATCH, "descriptor": {"type": "body"}}, 400, 28053),
        ("cross_match", {**CROSS_MATCH, "threshold": -0.1}, 400, 12022),
        ("cross_match", {**CROSS_MATCH, "limit": 0}, 400, 12022),
        ("cross_match", {"references": CROSS_MATCH["references"]}, 400, 12022),
        ("cross_match", {**CROSS_MATCH, "descriptor": {"descriptor_version": 59}}, 400, 28043),
    ],
)
def test_bad_content_is_refused_and_not_stored(
    client, headers, engine, airflow, route, content, status, code
):
    assert_luna_error(
        client.post(f"/6/tasks/{route}", json={"content": content}, headers=headers), status, code
    )
    assert task_count(engine) == 0
    assert airflow.triggered == []


def test_duplicate_markup_object_is_named(client, headers, engine) -> None:
    content = roc_content("aab")
    duplicate = content["markup"]["items"][0]["object_id"]
    content["markup"]["items"].append({"object_id": duplicate, "label": "b"})

    body = assert_luna_error(
        client.post("/6/tasks/roc", json={"content": content}, headers=headers), 400, 28051
    )

    assert duplicate in body["detail"]
    assert task_count(engine) == 0
