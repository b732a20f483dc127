"""Creating estimator and additional extract tasks: what is refused before anything is stored."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import insert

from luna_provider.store.models import FaceList
from tests.unit.api.test_task_handlers import assert_luna_error, task_count


def estimator(**content) -> dict:
    return {
        "content": {
            "source": {"source_type": "network_disk", "path": "/srv/images"},
            "handler": {"policies": {}},
            **content,
        }
    }


def make_list(engine, account_id) -> str:
    list_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(insert(FaceList).values(list_id=list_id, account_id=account_id))
    return str(list_id)


def test_estimator_is_stored_and_its_dag_triggered(client, headers, engine, airflow, account_id) -> None:
    list_id = make_list(engine, account_id)
    body = estimator(handler={"policies": {"storage_policy": {"face_policy": {"link_to_lists": [list_id]}}}})

    response = client.post("/6/tasks/estimator", json=body, headers=headers)

    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    assert airflow.triggered == [("luna_estimator", f"luna_task_{task_id}", airflow.triggered[0][2])]
    assert client.get(f"/6/tasks/{task_id}", headers=headers).json()["task_type"] == 9


def test_handler_id_is_refused(client, headers, engine) -> None:
    handler_id = str(uuid.uuid4())

    body = assert_luna_error(
        client.post(
            "/6/tasks/estimator", json=estimator(handler={"handler_id": handler_id}), headers=headers
        ),
        403,
        28084,
    )

    assert handler_id in body["detail"] and "policies" in body["detail"]
    assert task_count(engine) == 0


def test_lists_must_be_the_accounts(client, headers, engine) -> None:
    foreign = make_list(engine, uuid.uuid4())
    for list_id in (str(uuid.uuid4()), foreign):
        body = estimator(
            handler={"policies": {"storage_policy": {"face_policy": {"link_to_lists": [list_id]}}}}
        )

        detail = assert_luna_error(client.post("/6/tasks/estimator", json=body, headers=headers), 404, 22003)

        assert list_id in detail["detail"]
    assert task_count(engine) == 0


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        ({"source": {"source_type": "network_disk", "path": "images"}}, 400, 12031),
        ({"source": {"source_type": "zip", "url": "ftp://example.com/a.zip"}}, 400, 12031),
        ({"handler": {"policies": {"detect_policy": {"detect_face": 0}}}}, 400, 12031),
    ],
    ids=["relative-path", "zip-scheme", "no-detection-on-raw-images"],
)
def test_estimator_content_checks(client, headers, engine, content, status, code) -> None:
    assert_luna_error(
        client.post("/6/tasks/estimator", json=estimator(**content), headers=headers), status, code
    )
    assert task_count(engine) == 0


def test_local_roots_bound_the_folders(client, headers, engine, monkeypatch) -> None:
    monkeypatch.setenv("LUNA_ESTIMATOR_LOCAL_ROOTS", "/srv/images")
    inside = estimator(source={"source_type": "network_disk", "path": "/srv/images/2024"})
    outside = estimator(source={"source_type": "network_disk", "path": "/etc"})

    assert client.post("/6/tasks/estimator", json=inside, headers=headers).status_code == 201
    assert_luna_error(client.post("/6/tasks/estimator", json=outside, headers=headers), 403, 28086)
    assert task_count(engine) == 1


def test_warps_without_detection_are_accepted(client, headers) -> None:
    body = estimator(handler={"policies": {"detect_policy": {"detect_face": 0}}}, image_type=1)

    assert client.post("/6/tasks/estimator", json=body, headers=headers).status_code == 201


@pytest.mark.parametrize(
    ("content", "status", "code"),
    [
        (
            {"extraction_target": "face_descriptor", "options": {"missing": True, "descriptor_version": 62}},
            400,
            28043,
        ),
        (
            {
                "extraction_target": "basic_attributes",
                "options": {"missing": True, "descriptor_version": 201},
            },
            400,
            12031,
        ),
        ({"extraction_target": "face_descriptor", "options": {"missing": False}}, 400, 12022),
    ],
    ids=["unknown-version", "version-for-attributes", "missing-false"],
)
def test_additional_extract_checks(client, headers, engine, content, status, code) -> None:
    body = {"content": {**content, "filters": {"objects_type": "faces"}}}

    assert_luna_error(client.post("/6/tasks/additional_extract", json=body, headers=headers), status, code)
    assert task_count(engine) == 0


def test_additional_extract_is_stored_and_triggered(client, headers, airflow) -> None:
    body = {
        "content": {
            "extraction_target": "face_descriptor",
            "options": {"missing": True, "descriptor_version": 201},
            "filters": {"objects_type": "events", "sources": ["door"]},
        }
    }

    response = client.post("/6/tasks/additional_extract", json=body, headers=headers)

    assert response.status_code == 201, response.text
    assert airflow.triggered[0][0] == "luna_additional_extract"
