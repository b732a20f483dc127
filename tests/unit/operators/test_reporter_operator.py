from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import delete, select, update

from luna_provider import lifecycle
from luna_provider.operators.reporter import LunaReporterOperator
from luna_provider.storage import ObjectStore
from luna_provider.store.models import Task, TaskError
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType
from tests.unit.operators.export_fixtures import (
    START,
    assert_time_cell,
    insert_events,
    insert_faces,
    insert_lists,
    insert_sample,
    quoted_list,
    read_zip,
    run_task,
)


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


def done_clustering(engine, store, account_id, clusters: list[list[str]], object_type: str = "faces") -> int:
    """Store a finished clustering task whose result holds ``clusters``."""
    task_id = store_task(
        engine, TaskType.CLUSTERING, account_id, {"content": {"filters": {"object_type": object_type}}}
    )
    key = f"results/{account_id}/task_{task_id}.json"
    total = sum(map(len, clusters))
    store.put_json(key, {"result": {"clusters": clusters, "total_objects": total}, "errors": []})
    with engine.begin() as connection:
        connection.execute(
            update(Task)
            .where(Task.task_id == task_id)
            .values(task_status=5, result_key=key, result_content_type="application/json")
        )
    return task_id


def report(engine, store, account_id, monkeypatch, content: dict, **settings: str) -> tuple[int, list[dict]]:
    task_id = store_task(engine, TaskType.REPORTER, account_id, {"content": content})
    parts = run_task(LunaReporterOperator, engine, store, task_id, monkeypatch, **settings)
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    assert task.result_content_type == "application/zip"
    assert not store.exists(f"work/task_{task_id}")
    return task_id, parts


def test_face_report_with_missing_objects(engine, store, account_id, monkeypatch) -> None:
    faces = [
        {
            "face_id": uuid.uuid4(),
            "user_data": f"face {index}",
            "create_time": START + timedelta(hours=index),
            "external_id": f"x{index}" if index % 2 else None,
            "avatar": "a.jpg" if index == 1 else "",
            "event_id": uuid.uuid4() if index == 2 else None,
        }
        for index in range(6)
    ]
    insert_faces(engine, account_id, faces)
    stranger = {"face_id": uuid.uuid4(), "user_data": "not yours"}
    insert_faces(engine, uuid.uuid4(), [stranger])
    list_a, list_b = uuid.uuid4(), uuid.uuid4()
    insert_lists(engine, account_id, {faces[0]["face_id"]: [list_b, list_a], faces[4]["face_id"]: [list_a]})
    ids = [str(face["face_id"]) for face in faces]
    gone = str(uuid.uuid4())
    clusters = [
        [ids[3], ids[0], ids[1]],
        [ids[2]],
        [gone, ids[4], str(stranger["face_id"]), "not-an-id", ids[5]],
    ]
    source = done_clustering(engine, store, account_id, clusters)

    task_id, parts = report(
        engine,
        store,
        account_id,
        monkeypatch,
        {"task_id": source},
        LUNA_EXPORTER_SUBTASK_SIZE="3",
        LUNA_EXPORTER_BATCH_SIZE="2",
    )

    assert [part["count_objects"] for part in parts] == [3, 3, 3]
    rows, others = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    assert others == {}
    assert rows[0] == [
        "cluster",
        "face_id",
        "user_data",
        "create_time",
        "lists",
        "external_id",
        "avatar",
        "event_id",
    ]
    lists = {ids[0]: [str(list_b), str(list_a)], ids[4]: [str(list_a)]}
    by_id = {str(face["face_id"]): face for face in faces}
    expected_order = [
        (str(number), object_id) for number, cluster in enumerate(clusters) for object_id in cluster
    ]
    assert [tuple(row[:2]) for row in rows[1:]] == expected_order
    for row in rows[1:]:
        face = by_id.get(row[1])
        if face is None:  # deleted, another account's, or not an id: only the first two columns
            assert row[2:] == [""] * 6
            continue
        assert_time_cell(row[3], face["create_time"])
        assert row[2:3] + row[4:] == [
            face["user_data"],
            quoted_list(lists.get(row[1], [])),
            face["external_id"] or "",
            face["avatar"],
            str(face["event_id"]) if face["event_id"] else "",
        ]


def test_event_report_columns_delimiter_and_images(engine, store, account_id, monkeypatch) -> None:
    events = [
        {
            "event_id": uuid.uuid4(),
            "tags": ["entrance", "staff"] if index % 2 else [],
            "latitude": 52.5 if index % 2 else None,
            "liveness": 1 if index == 0 else None,
            "user_data": "a|b" if index == 0 else f"e{index}",
            # keys in the order JSONB keeps them (shorter first), so the repr is predictable
            "match_result": [{"label": "l1", "similarity": 0.25}] if index == 1 else [],
            "top_match": {"event_id": "e-ref", "label": "t", "similarity": 0.9} if index == 2 else None,
        }
        for index in range(4)
    ]
    insert_events(engine, account_id, events)
    images = {}
    for index, number in ((0, 1), (2, 0)):
        data = f"image of event {index}".encode()
        sample_id, _ = insert_sample(engine, store, account_id, data, event_id=events[index]["event_id"])
        images[f"images/{number}/{events[index]['event_id']}/{sample_id}.jpg"] = data
    ids = [str(event["event_id"]) for event in events]
    source = done_clustering(engine, store, account_id, [[ids[2], ids[3]], [ids[0]], [ids[1]]], "events")
    columns = ["user_data", "tags", "top_match", "latitude", "match_result", "liveness"]
    content = {
        "task_id": source,
        "parameters": {"columns": columns, "csv_delimiter": "|", "save_images": True, "format": "csv"},
    }

    task_id, _ = report(engine, store, account_id, monkeypatch, content)

    rows, others = read_zip(store, lifecycle.get_task(engine, task_id).result_key, delimiter="|")
    assert others == images
    assert rows == [
        ["cluster", "event_id", *columns],
        ["0", ids[2], "e2", "[]", "{'event_id': 'e-ref', 'label': 't', 'similarity': 0.9}", "", "[]", ""],
        ["0", ids[3], "e3", "['entrance', 'staff']", "", "52.5", "[]", ""],
        ["1", ids[0], "a|b", "[]", "", "", "[]", "1"],
        ["2", ids[1], "e1", "['entrance', 'staff']", "", "52.5", "[{'label': 'l1', 'similarity': 0.25}]", ""],
    ]


def test_empty_clustering_gives_a_header_only_report(engine, store, account_id, monkeypatch) -> None:
    source = done_clustering(engine, store, account_id, [], "events")

    task_id, parts = report(engine, store, account_id, monkeypatch, {"task_id": source})

    assert parts == []
    rows, _ = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    assert rows[0][:3] == ["cluster", "event_id", "create_time"]
    assert len(rows) == 1


def break_source(engine, store, source: int, how: str) -> None:
    task = lifecycle.get_task(engine, source)
    if how == "deleted":
        with engine.begin() as connection:
            connection.execute(delete(Task).where(Task.task_id == source))
    elif how == "result lost":
        store.delete(task.result_key)
    elif how == "not clusters":
        store.put_json(task.result_key, {"result": {"clusters": [[1, 2]]}})
    else:
        with store.open(task.result_key, "wb") as stream:
            stream.write(b"{not json")


@pytest.mark.parametrize(
    ("how", "code"),
    [("deleted", 28001), ("result lost", 28016), ("not clusters", 28073), ("not json", 28073)],
)
def test_source_checked_again_when_the_report_runs(engine, store, account_id, monkeypatch, how, code) -> None:
    source = done_clustering(engine, store, account_id, [[str(uuid.uuid4())]])
    task_id = store_task(engine, TaskType.REPORTER, account_id, {"content": {"task_id": source}})
    break_source(engine, store, source, how)

    with pytest.raises(Exception, match=r"\w"):
        run_task(LunaReporterOperator, engine, store, task_id, monkeypatch)

    assert lifecycle.get_task(engine, task_id).task_status == 3
    with engine.connect() as connection:
        codes = connection.scalars(select(TaskError.error_code).where(TaskError.task_id == task_id)).all()
    assert codes == [code]
