from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from luna_provider import lifecycle
from luna_provider.operators.exporter import LunaExporterOperator
from luna_provider.storage import ObjectStore
from luna_provider.store.models import TaskError
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

FACE_HEADER = [
    "face_id",
    "account_id",
    "event_id",
    "user_data",
    "create_time",
    "external_id",
    "avatar",
    "lists",
    "age",
    "gender",
]


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


def export(engine, store, account_id, monkeypatch, content: dict, **settings: str) -> tuple[int, list[dict]]:
    task_id = store_task(engine, TaskType.EXPORTER, account_id, {"content": content})
    parts = run_task(LunaExporterOperator, engine, store, task_id, monkeypatch, **settings)
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    assert task.result_content_type == "application/zip"
    assert task.result_key == f"results/{account_id}/task_{task_id}.zip"
    assert not store.exists(f"work/task_{task_id}")
    return task_id, parts


def face_fixtures(count: int) -> list[dict]:
    faces = []
    for index in range(count):
        faces.append(
            {
                "face_id": uuid.uuid4(),
                "event_id": uuid.uuid4() if index % 3 == 0 else None,
                "user_data": f'person {index}, "quoted"' if index % 4 == 0 else f"person {index}",
                "create_time": START + timedelta(minutes=index),
                "external_id": f"ext-{index}" if index % 2 else None,
                "avatar": f"https://example.com/{index}.jpg" if index % 5 == 0 else "",
                "age": [31.0, 27.5, None][index % 3],
                "gender": [0, 1, None][index % 3],
            }
        )
    return faces


def expected_face_row(face: dict, account_id: uuid.UUID, lists: list[uuid.UUID]) -> list[str]:
    age = face["age"]
    return [
        str(face["face_id"]),
        str(account_id),
        str(face["event_id"]) if face["event_id"] else "",
        face["user_data"],
        "<time>",
        face["external_id"] or "",
        face["avatar"],
        quoted_list([str(list_id) for list_id in lists]),
        "" if age is None else ("31" if age == 31.0 else "27.5"),
        "" if face["gender"] is None else str(face["gender"]),
    ]


def test_faces_export_all_columns_in_several_subtasks(engine, store, account_id, monkeypatch) -> None:
    faces = face_fixtures(23)
    insert_faces(engine, account_id, faces)
    # faces of another account are not exported
    insert_faces(engine, uuid.uuid4(), face_fixtures(4))
    list_a, list_b = sorted([uuid.uuid4(), uuid.uuid4()], reverse=True)
    links = {faces[0]["face_id"]: [list_a, list_b], faces[1]["face_id"]: [list_b], faces[2]["face_id"]: []}
    insert_lists(engine, account_id, {face: lists for face, lists in links.items() if lists})

    task_id, parts = export(
        engine,
        store,
        account_id,
        monkeypatch,
        {"objects_type": "faces"},
        LUNA_EXPORTER_SUBTASK_SIZE="5",
        LUNA_EXPORTER_BATCH_SIZE="2",
    )

    assert [part["count_objects"] for part in parts] == [5, 5, 5, 5, 3]
    task = lifecycle.get_task(engine, task_id)
    rows, others = read_zip(store, task.result_key)
    assert others == {}
    assert rows[0] == FACE_HEADER
    by_id = {str(face["face_id"]): face for face in faces}
    assert [row[0] for row in rows[1:]] == sorted(by_id)  # ordered by face id (uuid order = text order)
    for row in rows[1:]:
        face = by_id[row[0]]
        expected = expected_face_row(face, account_id, links.get(face["face_id"], []))
        assert_time_cell(row[4], face["create_time"])
        assert row[:4] + row[5:] == expected[:4] + expected[5:]


def test_newer_faces_are_left_out(engine, store, account_id, monkeypatch) -> None:
    faces = face_fixtures(3)
    faces[2]["create_time"] = START + timedelta(days=365 * 100)  # created "after" the task
    insert_faces(engine, account_id, faces)

    task_id, _ = export(
        engine, store, account_id, monkeypatch, {"objects_type": "faces", "columns": ["face_id"]}
    )

    rows, _ = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    assert sorted(rows[1:]) == sorted([[str(face["face_id"])] for face in faces[:2]])


def test_face_filters_columns_and_delimiter(engine, store, account_id, monkeypatch) -> None:
    faces = face_fixtures(12)
    faces[4]["user_data"] = "semi;colon"
    insert_faces(engine, account_id, faces)
    in_list = [face["face_id"] for face in faces[3:9]]
    list_id = uuid.uuid4()
    insert_lists(engine, account_id, {face_id: [list_id] for face_id in in_list})
    content = {
        "objects_type": "faces",
        "filters": {"list_id": str(list_id), "create_time__gte": faces[4]["create_time"].isoformat()},
        "columns": ["user_data", "lists", "face_id"],
        "csv_delimiter": ";",
    }

    task_id, _ = export(engine, store, account_id, monkeypatch, content)

    rows, _ = read_zip(store, lifecycle.get_task(engine, task_id).result_key, delimiter=";")
    expected = sorted(
        [[face["user_data"], quoted_list([str(list_id)]), str(face["face_id"])] for face in faces[4:9]],
        key=lambda row: row[2],
    )
    assert rows == [["user_data", "lists", "face_id"], *expected]
    with store.open(lifecycle.get_task(engine, task_id).result_key, "rb") as stream:
        import zipfile

        raw = zipfile.ZipFile(stream).read(f"task_{task_id}.csv").decode()
    assert raw.startswith("user_data;lists;face_id\r\n")
    assert '"semi;colon"' in raw


def event_fixtures(count: int) -> list[dict]:
    events = []
    for index in range(count):
        face_id = uuid.uuid4()
        events.append(
            {
                "event_id": uuid.uuid4(),
                "create_time": START + timedelta(seconds=index),
                "end_time": START + timedelta(seconds=index + 1),
                "handler_id": uuid.uuid4(),
                "source": f"cam-{index % 2}",
                "external_id": f"e{index}" if index % 2 else None,
                "user_data": f"event {index}",
                "track_id": f"track-{index // 2}",
                "face_id": face_id if index % 2 else None,
                "age": 40.0 if index % 2 else None,
                "gender": index % 2,
                "emotion": 4 if index % 3 == 0 else None,
                "ethnic_group": 2,
                "mask": 1 if index % 2 else None,
                "city": "Berlin" if index % 2 else None,
                "area": None,
                "district": "Mitte",
                "street": None,
                "house_number": "7",
                "latitude": 52.52 if index % 2 else None,
                "longitude": 13.405 if index % 2 else None,
                "tags": ["entrance", "staff"] if index % 2 else [],
                "meta": {"camera": {"floor": index % 3}},
                # stored in an order JSONB does not keep; the CSV follows the Luna example's order
                "top_match": {"similarity": 0.6, "external_id": "e0", "label": "vip", "face_id": str(face_id)}
                if index % 2
                else None,
            }
        )
    return events


def expected_event_cells(event: dict) -> dict[str, str]:
    match = event["top_match"]
    return {
        "event_id": str(event["event_id"]),
        "external_id": event["external_id"] or "",
        "handler_id": str(event["handler_id"]),
        "source": event["source"],
        "top_match": (
            f"{{'face_id': '{match['face_id']}', 'label': 'vip', 'similarity': 0.6, 'external_id': 'e0'}}"
            if match
            else ""
        ),
        "face_id": str(event["face_id"]) if event["face_id"] else "",
        "gender": str(event["gender"]),
        "age": "40" if event["age"] else "",
        "emotion": "4" if event["emotion"] else "",
        "ethnic_group": "2",
        "user_data": event["user_data"],
        "mask": "1" if event["mask"] else "",
        "track_id": event["track_id"],
        "city": event["city"] or "",
        "area": "",
        "district": "Mitte",
        "street": "",
        "house_number": "7",
        "geo_position": "{'latitude': 52.52, 'longitude': 13.405}" if event["latitude"] else "",
        "headwear_apparent_color": "",
        "lower_garment_type": "",
        "lower_garment_colors": "",
        "shoes_apparent_color": "",
    }


def test_events_export_all_columns(engine, store, account_id, monkeypatch) -> None:
    from luna_provider.export.rows import EVENT_EXPORT_COLUMNS

    events = event_fixtures(9)
    insert_events(engine, account_id, events)
    insert_events(engine, uuid.uuid4(), event_fixtures(3))

    task_id, parts = export(
        engine, store, account_id, monkeypatch, {"objects_type": "events"}, LUNA_EXPORTER_SUBTASK_SIZE="4"
    )

    assert len(parts) == 3
    rows, _ = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    header = rows[0]
    assert header == list(EVENT_EXPORT_COLUMNS)
    # the Luna exporter's documented header starts like this
    luna_example = "event_id,create_time,external_id,handler_id,source,top_match,face_id,gender,age"
    assert ",".join(header).startswith(luna_example + ",emotion,ethnic_group,user_data,mask,track_id")
    by_id = {str(event["event_id"]): event for event in events}
    assert [row[0] for row in rows[1:]] == sorted(by_id)
    for row in rows[1:]:
        event = by_id[row[0]]
        cells = dict(zip(header, row, strict=True))
        assert_time_cell(cells.pop("create_time"), event["create_time"])
        assert cells == expected_event_cells(event)


@pytest.mark.parametrize(
    ("filters", "selected"),
    [
        ({"sources": ["cam-1"]}, [1, 3, 5, 7]),
        ({"meta": {"camera.floor": 2}}, [2, 5]),
        ({"tags": ["staff"], "track_ids": ["track-1", "track-3"]}, [3, 7]),
        ({"account_id": "00000000-0000-4000-8000-000000000000"}, []),
    ],
)
def test_event_filters(engine, store, account_id, monkeypatch, filters, selected) -> None:
    events = event_fixtures(8)
    insert_events(engine, account_id, events)
    content = {"objects_type": "events", "filters": filters, "columns": ["event_id", "source"]}

    task_id, _ = export(engine, store, account_id, monkeypatch, content)

    rows, _ = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    expected = sorted([str(events[index]["event_id"]), events[index]["source"]] for index in selected)
    assert rows == [["event_id", "source"], *expected]


def test_images_are_included_and_missing_ones_reported(engine, store, account_id, monkeypatch) -> None:
    faces = face_fixtures(4)
    insert_faces(engine, account_id, faces)
    images = {}
    for index, face in enumerate(faces[:3]):
        data = bytes([index]) * (1000 + index)
        sample_id, _ = insert_sample(engine, store, account_id, data, face_id=face["face_id"])
        images[f"images/{face['face_id']}/{sample_id}.jpg"] = data
    lost_id, lost_key = insert_sample(engine, store, account_id, None, face_id=faces[3]["face_id"])
    # another account's sample of a face id it does not own is not exported
    insert_sample(engine, store, uuid.uuid4(), b"x", face_id=faces[0]["face_id"])
    content = {"objects_type": "faces", "columns": ["face_id"], "save_images": True}

    task_id, _ = export(engine, store, account_id, monkeypatch, content, LUNA_EXPORTER_SUBTASK_SIZE="2")

    rows, others = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    assert len(rows) == 5
    assert others == images
    with engine.connect() as connection:
        errors = connection.execute(
            select(TaskError.error_code, TaskError.additional_info, TaskError.detail).where(
                TaskError.task_id == task_id
            )
        ).all()
    assert [(code, info) for code, info, _ in errors] == [(28072, str(faces[3]["face_id"]))]
    assert str(lost_id) in errors[0][2]
    assert not store.exists(lost_key)


def test_empty_selection_gives_a_header_only_csv(engine, store, account_id, monkeypatch) -> None:
    task_id, parts = export(engine, store, account_id, monkeypatch, {"objects_type": "events"})

    assert parts == []
    rows, others = read_zip(store, lifecycle.get_task(engine, task_id).result_key)
    assert len(rows) == 1 and rows[0][0] == "event_id"
    assert others == {}


def test_bad_delimiter_fails_a_stored_task(engine, store, account_id, monkeypatch) -> None:
    """A task stored without the create checks (e.g. by a schedule) fails when it runs."""
    task_id = store_task(
        engine, TaskType.EXPORTER, account_id, {"content": {"objects_type": "faces", "csv_delimiter": '"'}}
    )

    with pytest.raises(Exception, match="CSV delimiter"):
        run_task(LunaExporterOperator, engine, store, task_id, monkeypatch)

    assert lifecycle.get_task(engine, task_id).task_status == 3
    with engine.connect() as connection:
        assert connection.scalar(select(TaskError.error_code)) == 28074


def test_large_export_streams_through_collect(engine, store, account_id, monkeypatch) -> None:
    """50 000 faces: the archive holds every row, and collect's memory does not grow with the CSV."""
    import threading
    import time

    import psutil

    count = 50_000
    faces = [
        {
            "face_id": uuid.uuid4(),
            "user_data": f"person number {index} of the large export",
            "create_time": START + timedelta(seconds=index),
            "external_id": f"external-{index}",
            "avatar": f"https://example.com/avatars/{index}.jpg",
            "age": float(index % 80),
            "gender": index % 2,
        }
        for index in range(count)
    ]
    for start in range(0, count, 10_000):
        insert_faces(engine, account_id, faces[start : start + 10_000])
    task_id = store_task(engine, TaskType.EXPORTER, account_id, {"content": {"objects_type": "faces"}})
    monkeypatch.setenv("LUNA_EXPORTER_SUBTASK_SIZE", "10000")
    from luna_provider.settings import load

    kwargs = {"engine": engine, "store": store, "settings": load()}
    started = time.monotonic()
    parts = LunaExporterOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        LunaExporterOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    subtasks_done = time.monotonic()

    process = psutil.Process()
    baseline = process.memory_info().rss
    peak = baseline
    sampling = True

    def sample() -> None:
        nonlocal peak
        while sampling:
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        LunaExporterOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    finally:
        sampling = False
        sampler.join()
    collected = time.monotonic()

    task = lifecycle.get_task(engine, task_id)
    rows, _ = read_zip(store, task.result_key)
    assert len(parts) == 5
    assert rows[0] == FACE_HEADER
    assert [row[0] for row in rows[1:]] == sorted(str(face["face_id"]) for face in faces)
    import zipfile

    with store.open(task.result_key, "rb") as stream:
        csv_size = zipfile.ZipFile(stream).getinfo(f"task_{task_id}.csv").file_size
    zip_size = store.fs.size(store.path(task.result_key))
    growth = peak - baseline
    print(
        f"\nexport of {count} faces: split+subtasks {subtasks_done - started:.1f} s, collect "
        f"{collected - subtasks_done:.2f} s; CSV {csv_size / 2**20:.1f} MiB, zip {zip_size / 2**20:.1f} MiB; "
        f"RSS growth during collect {growth / 2**20:.1f} MiB"
    )
    # collect copies 1 MiB chunks through zlib: its memory must not track the CSV size
    assert growth < csv_size / 2
