from __future__ import annotations

import uuid

import pytest

from tests.unit.api.test_task_handlers import FACES_BODY, assert_luna_error, task_count


@pytest.mark.parametrize(
    ("data", "content_type"),
    [
        (b'\xff{"content": {}}', "application/json"),  # not UTF-8
        (b'{"content": {"filters": {"object_type": "faces"}, "threshold": NaN}}', "application/json"),
        (
            b'{"description": "a\\u0000b", "content": {"filters": {"object_type": "faces"}}}',
            "application/json",
        ),
        (b'{"description": "\\ud800", "content": {"filters": {"object_type": "faces"}}}', "application/json"),
        (
            b'{"content": {"filters": {"object_type": "faces"}, "limit": 1' + b"0" * 5000 + b"}}",
            "application/json",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "application/json"),
        (b'{"content": {}}', "application/json; charset=utf-16"),
        (b'{"content": {}}', "text/plain"),
        (b'{"content": {}}', None),
    ],
)
def test_unparsable_bodies_are_4xx_and_store_nothing(client, headers, engine, data, content_type) -> None:
    sent = {**headers, **({"Content-Type": content_type} if content_type else {})}

    response = client.post("/6/tasks/clustering", content=data, headers=sent)

    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error_code", "desc", "detail", "link"}
    assert task_count(engine) == 0


def test_media_type_case_does_not_matter(client, headers) -> None:
    import json

    response = client.post(
        "/6/tasks/clustering",
        content=json.dumps(FACES_BODY),
        headers={**headers, "Content-Type": "Application/JSON"},
    )

    assert response.status_code == 201, response.text


def test_body_size_is_limited(client, headers, engine, connexion_app) -> None:
    big = {"content": {"filters": {"object_type": "events", "meta": {"k": "x" * (17 << 20)}}}}

    assert_luna_error(client.post("/6/tasks/clustering", json=big, headers=headers), 413, 12030)

    def chunks():
        yield b'{"content": {"filters": {"object_type": "events", "meta": {"k": "'
        for _ in range(17):
            yield b"x" * (1 << 20)
        yield b'"}}}}'

    response = client.post(
        "/6/tasks/clustering", content=chunks(), headers={**headers, "Content-Type": "application/json"}
    )
    assert_luna_error(response, 413, 12030)
    assert task_count(engine) == 0


@pytest.mark.parametrize(
    "path",
    [
        "/6/tasks?page=9223372036854775807",
        "/6/errors?page=9223372036854775807",
        "/6/tasks/count?create_time__gte=9999-12-31T23:59:59-23:59",
        "/6/tasks/" + "1" * 5000,
    ],
)
def test_extreme_query_values_are_4xx(client, headers, path) -> None:
    response = client.get(path, headers=headers)

    assert 400 <= response.status_code < 500, response.text
    assert set(response.json()) == {"error_code", "desc", "detail", "link"}


def test_filter_time_offsets_and_lists_are_checked_at_creation(client, headers, engine) -> None:
    late = {"content": {"filters": {"object_type": "faces", "create_time__gte": "2020-01-01T00:00:00-23:00"}}}
    missing = {"content": {"filters": {"object_type": "faces", "list_id": str(uuid.uuid4())}}}

    assert_luna_error(client.post("/6/tasks/clustering", json=late, headers=headers), 400, 12031)
    assert_luna_error(client.post("/6/tasks/clustering", json=missing, headers=headers), 404, 22003)
    assert task_count(engine) == 0


@pytest.mark.parametrize("form", [str.upper, lambda value: value.replace("-", ""), lambda v: "{" + v + "}"])
def test_account_ids_must_be_written_as_uuids(client, headers, form) -> None:
    response = client.get("/6/tasks", headers={"Luna-Account-Id": form(headers["Luna-Account-Id"])})

    assert_luna_error(response, 400, 12012)


def test_unknown_paths_share_one_metrics_series(client) -> None:
    for index in range(3):
        client.get(f"/nothing-{index}")

    metrics = client.get("/6/metrics").text

    assert "nothing-" not in metrics
    assert 'path="GET:<unknown>"' in metrics
