"""Exporter and reporter tasks through the API on the real stack: CSV zips downloaded over HTTP."""

from __future__ import annotations

import csv
import io
import time
import uuid
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
import requests
from sqlalchemy import insert

from tests.e2e.test_tasks_e2e import import_file, people, wait_final


@pytest.fixture(scope="module")
def account() -> dict[str, str]:
    return {"Luna-Account-Id": str(uuid.uuid4())}


def download_zip(api: str, task_id: int, headers: dict) -> tuple[zipfile.ZipFile, requests.Response]:
    response = requests.get(f"{api}/6/tasks/{task_id}/result", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/zip"
    assert response.headers["Content-Disposition"] == f"attachment; filename=task_{task_id}.zip"
    return zipfile.ZipFile(io.BytesIO(response.content)), response


def csv_rows(archive: zipfile.ZipFile, task_id: int, delimiter: str) -> list[list[str]]:
    text = archive.read(f"task_{task_id}.csv").decode()
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


def add_sample(luna_stack, account_id: str, face_id: str, data: bytes) -> str:
    """Put a sample of a face into the stack's object store and database; return its archive name."""
    from luna_provider.storage import ObjectStore
    from luna_provider.store.db import get_engine
    from luna_provider.store.models import Sample

    sample_id = uuid.uuid4()
    key = f"samples/{account_id}/{sample_id}.jpg"
    with ObjectStore(luna_stack.env["LUNA_OBJECT_STORE_URL"]).open(key, "wb") as stream:
        stream.write(data)
    with get_engine(luna_stack.env["LUNA_DATABASE_URL"]).begin() as connection:
        connection.execute(
            insert(Sample).values(
                sample_id=sample_id,
                account_id=uuid.UUID(account_id),
                face_id=uuid.UUID(face_id),
                storage_key=key,
                size=len(data),
            )
        )
    return f"images/{face_id}/{sample_id}.jpg"


def test_exporter_task_exports_a_list(luna_stack, account, tmp_path) -> None:
    api = luna_stack.api_url
    records, _ = people(count=3, per_person=4, seed=41)
    list_id = str(uuid.uuid4())
    start = datetime(2024, 5, 1, tzinfo=UTC)
    for index, record in enumerate(records):
        record.update(
            user_data=f"visitor {index}; badge",
            external_id=f"ext-{index}",
            create_time=(start + timedelta(minutes=index)).isoformat(),
            age=20 + index,
            gender=index % 2,
        )
        if index < 10:
            record["list_ids"] = [list_id]
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], records)
    image = add_sample(luna_stack, account["Luna-Account-Id"], records[0]["face_id"], b"\xff\xd8 face 0")
    body = {
        "content": {
            "objects_type": "faces",
            "filters": {"list_id": list_id},
            "columns": ["face_id", "user_data", "external_id", "lists", "age", "gender", "create_time"],
            "csv_delimiter": ";",
            "save_images": True,
        }
    }

    started = time.monotonic()
    response = requests.post(f"{api}/6/tasks/exporter", json=body, headers=account, timeout=30)
    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    task = wait_final(api, task_id, account)
    elapsed = time.monotonic() - started

    assert task["task_status"] == 5, luna_stack.log_tails()
    archive, _ = download_zip(api, task_id, account)
    assert sorted(archive.namelist()) == sorted([f"task_{task_id}.csv", image])
    assert archive.read(image) == b"\xff\xd8 face 0"
    rows = csv_rows(archive, task_id, ";")
    assert rows[0] == body["content"]["columns"]
    expected = sorted(
        [
            record["face_id"],
            record["user_data"],
            record["external_id"],
            f"['{list_id}']",
            str(record["age"]),
            str(record["gender"]),
        ]
        for record in records[:10]
    )
    assert sorted(row[:6] for row in rows[1:]) == expected
    created = {record["face_id"]: datetime.fromisoformat(record["create_time"]) for record in records}
    assert all(datetime.fromisoformat(row[6]) == created[row[0]] for row in rows[1:])
    print(f"exporter of 10 faces: create to done in {elapsed:.1f} s")


def test_reporter_task_reports_a_clustering(luna_stack, account, tmp_path) -> None:
    api = luna_stack.api_url
    records, _ = people(count=4, per_person=5, seed=42)
    list_id = str(uuid.uuid4())
    for index, record in enumerate(records):
        record.update(list_ids=[list_id], user_data=f"member {index}")
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], records)
    missing = requests.post(
        f"{api}/6/tasks/reporter", json={"content": {"task_id": 10**6}}, headers=account, timeout=30
    )
    assert (missing.status_code, missing.json()["error_code"]) == (404, 28001)

    clustering = requests.post(
        f"{api}/6/tasks/clustering",
        json={"content": {"filters": {"object_type": "faces", "list_id": list_id}}},
        headers=account,
        timeout=30,
    ).json()["task_id"]
    assert wait_final(api, clustering, account)["task_status"] == 5, luna_stack.log_tails()
    clusters = requests.get(f"{api}/6/tasks/{clustering}/result", headers=account, timeout=30).json()[
        "result"
    ]["clusters"]
    body = {"content": {"task_id": clustering, "parameters": {"columns": ["user_data", "lists"]}}}

    started = time.monotonic()
    response = requests.post(f"{api}/6/tasks/reporter", json=body, headers=account, timeout=30)
    assert response.status_code == 201, response.text
    task_id = response.json()["task_id"]
    task = wait_final(api, task_id, account)
    elapsed = time.monotonic() - started

    assert task["task_status"] == 5, luna_stack.log_tails()
    archive, _ = download_zip(api, task_id, account)
    assert archive.namelist() == [f"task_{task_id}.csv"]
    rows = csv_rows(archive, task_id, ",")
    user_data = {record["face_id"]: record["user_data"] for record in records}
    assert rows == [
        ["cluster", "face_id", "user_data", "lists"],
        *(
            [str(number), face_id, user_data[face_id], f"['{list_id}']"]
            for number, cluster in enumerate(clusters)
            for face_id in cluster
        ),
    ]
    assert len(clusters) == 4
    print(f"reporter of 20 faces in {len(clusters)} clusters: create to done in {elapsed:.1f} s")
