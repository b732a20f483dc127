from __future__ import annotations

import math
import uuid
from datetime import timedelta
from typing import Any

import numpy as np
import pytest
from sqlalchemy import select

from luna_provider import lifecycle
from luna_provider.operators.linker import LunaLinkerOperator
from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.models import (
    Event,
    EventDescriptor,
    Face,
    FaceDescriptor,
    FaceList,
    ListFace,
    Sample,
    TaskError,
)
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType
from tests.unit.operators.object_data import (
    START,
    Data,
    add_events,
    add_faces,
    add_lists,
    column_set,
    event_matches,
    face_matches,
    run_task,
)


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


def linker_task(
    engine: Any, store: ObjectStore, account: uuid.UUID, content: dict, monkeypatch: Any, size: str = "1000"
) -> tuple[dict, list[dict]]:
    task_id = store_task(engine, TaskType.LINKER, account, {"content": content})
    parts = run_task(LunaLinkerOperator, engine, store, task_id, monkeypatch, LUNA_LINKER_SUBTASK_SIZE=size)
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5, task
    return store.get_json(task.result_key), parts


FACE_FILTERS = [
    {},
    {"user_data": "staff"},
    {"external_ids": ["ext-2"], "create_time__gte": (START + timedelta(minutes=20)).isoformat()},
    {"list_id": "SOURCE"},
    {"face_ids": "FACES"},
    {"face_id__lt": "80000000-0000-0000-0000-000000000000"},
]


@pytest.mark.parametrize("filters", FACE_FILTERS)
def test_linker_links_exactly_the_selected_faces(engine, store, account_id, monkeypatch, filters) -> None:
    rng = np.random.default_rng(1)
    data = Data()
    stranger = uuid.uuid4()
    target, source = add_lists(engine, data, account_id, 2)
    mine = add_faces(engine, store, data, account_id, 90, rng, lists=[target, source], samples=0)
    theirs = add_faces(engine, store, data, stranger, 30, rng, samples=0)
    placeholders = {
        "SOURCE": str(source),
        "FACES": [str(face["face_id"]) for face in mine[::4] + theirs[:8]],
    }
    filters = {
        key: placeholders.get(value, value) if isinstance(value, str) else value
        for key, value in filters.items()
    }
    selected = {face["face_id"] for face in data.faces if face_matches(face, filters, account_id, data.links)}
    before = {face for list_id, face in data.links if list_id == target}
    content = {"list": {"list_id": str(target)}, "filters": {"object_type": "faces", **filters}}

    result, parts = linker_task(engine, store, account_id, content, monkeypatch, size="7")

    assert len(parts) == math.ceil(len(selected) / 7)
    members = column_set(engine, ListFace.face_id, where=ListFace.list_id == target)
    assert members == before | selected
    assert column_set(engine, ListFace.list_id, ListFace.face_id, where=ListFace.list_id != target) == {
        link for link in data.links if link[0] != target
    }
    assert sorted(result["result"]["faces"]) == sorted(str(face) for face in selected)
    assert result["result"] == {
        "list_id": str(target),
        "created_list": False,
        "object_type": "faces",
        "faces": result["result"]["faces"],
        "linked_faces": len(selected - before),
        "already_linked": len(selected & before),
        "created_faces": 0,
        "skipped_objects": 0,
    }
    assert result["errors"] == []
    touched = column_set(engine, Face.face_id, where=Face.last_update_time > START)
    assert touched == selected - before
    list_touched = column_set(engine, FaceList.list_id, where=FaceList.last_update_time > START)
    assert list_touched == ({target} if selected - before else set())


def test_linking_twice_is_harmless(engine, store, account_id, monkeypatch) -> None:
    rng = np.random.default_rng(2)
    data = Data()
    [target] = add_lists(engine, data, account_id, 1)
    faces = add_faces(engine, store, data, account_id, 25, rng, samples=0)
    content = {"list": {"list_id": str(target)}, "filters": {"object_type": "faces"}}

    first, _ = linker_task(engine, store, account_id, content, monkeypatch, size="10")
    second, _ = linker_task(engine, store, account_id, content, monkeypatch, size="10")

    assert (first["result"]["linked_faces"], first["result"]["already_linked"]) == (25, 0)
    assert (second["result"]["linked_faces"], second["result"]["already_linked"]) == (0, 25)
    assert column_set(engine, ListFace.face_id) == {face["face_id"] for face in faces}


def test_create_list_happens_once_even_when_split_is_retried(engine, store, account_id, monkeypatch) -> None:
    rng = np.random.default_rng(3)
    data = Data()
    faces = add_faces(engine, store, data, account_id, 12, rng, samples=0)
    content = {"list": {"create_list": 1, "user_data": "visitors"}, "filters": {"object_type": "faces"}}
    task_id = store_task(engine, TaskType.LINKER, account_id, {"content": content})
    kwargs = {"engine": engine, "store": store, "settings": load()}

    LunaLinkerOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    # a retried split (the worker died before Airflow saw its result) runs the whole step again
    parts = LunaLinkerOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        LunaLinkerOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaLinkerOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)

    with engine.connect() as connection:
        lists = connection.execute(select(FaceList.list_id, FaceList.account_id, FaceList.user_data)).all()
    assert len(lists) == 1
    list_id, owner, user_data = lists[0]
    assert (owner, user_data) == (account_id, "visitors")
    result = store.get_json(lifecycle.get_task(engine, task_id).result_key)["result"]
    assert (result["list_id"], result["created_list"], result["linked_faces"]) == (str(list_id), True, 12)
    assert column_set(engine, ListFace.face_id, where=ListFace.list_id == list_id) == {
        face["face_id"] for face in faces
    }


def test_list_of_another_account_fails_the_task(engine, store, account_id, monkeypatch) -> None:
    data = Data()
    [foreign] = add_lists(engine, data, uuid.uuid4(), 1)
    add_faces(engine, store, data, account_id, 3, np.random.default_rng(4), samples=0)
    content = {"list": {"list_id": str(foreign)}, "filters": {"object_type": "faces"}}
    task_id = store_task(engine, TaskType.LINKER, account_id, {"content": content})

    with pytest.raises(Exception, match="not found"):
        run_task(LunaLinkerOperator, engine, store, task_id, monkeypatch)

    assert lifecycle.get_task(engine, task_id).task_status == 3
    with engine.connect() as connection:
        assert connection.scalar(select(TaskError.error_code)) == 22003
    assert column_set(engine, ListFace.face_id) == set()


def test_linker_creates_faces_from_events(engine, store, account_id, monkeypatch) -> None:
    rng = np.random.default_rng(5)
    data = Data()
    stranger = uuid.uuid4()
    [target] = add_lists(engine, data, account_id, 1)
    own_faces = add_faces(engine, store, data, account_id, 15, rng, samples=0)
    events = add_events(engine, store, data, account_id, 80, rng, face_ids=[f["face_id"] for f in own_faces])
    add_events(engine, store, data, stranger, 20, rng)
    # an event pointing to a face that was deleted, and one pointing to the stranger's face
    stranger_face = add_faces(engine, store, data, stranger, 1, rng, samples=0)[0]["face_id"]
    with engine.begin() as connection:
        connection.execute(
            Event.__table__.update()
            .where(Event.event_id == events[0]["event_id"])
            .values(face_id=uuid.uuid4())
        )
        connection.execute(
            Event.__table__.update()
            .where(Event.event_id == events[1]["event_id"])
            .values(face_id=stranger_face)
        )
        connection.execute(
            Sample.__table__.update()
            .where(Sample.event_id.in_([events[0]["event_id"], events[1]["event_id"]]))
            .values(face_id=None)
        )
    events[0]["face_id"], events[1]["face_id"] = None, None  # both count as events without a face
    filters = {"sources": ["cam-1", "cam-2"]}
    selected = [event for event in data.events if event_matches(event, filters, account_id)]
    with_face = [event for event in selected if event["face_id"] is not None]
    faceless = [event for event in selected if event["face_id"] is None]
    no_descriptor = [e for e in faceless if ("face", 201) not in data.event_descriptors[e["event_id"]]]
    creatable = [e for e in faceless if ("face", 201) in data.event_descriptors[e["event_id"]]]
    faces_before = column_set(engine, Face.face_id)
    content = {"list": {"list_id": str(target)}, "filters": {"object_type": "events", **filters}}

    result, _ = linker_task(engine, store, account_id, content, monkeypatch, size="9")

    created = column_set(engine, Face.face_id) - faces_before
    assert len(created) == len(creatable) > 0
    with engine.connect() as connection:
        rows = connection.execute(
            select(
                Face.face_id,
                Face.account_id,
                Face.event_id,
                Face.user_data,
                Face.external_id,
                Face.age,
                Face.gender,
            ).where(Face.face_id.in_(created))
        ).all()
        event_faces = dict(connection.execute(select(Event.event_id, Event.face_id)).all())
        descriptors = connection.execute(
            select(
                FaceDescriptor.face_id, FaceDescriptor.descriptor_version, FaceDescriptor.descriptor
            ).where(FaceDescriptor.face_id.in_(created))
        ).all()
        samples = connection.execute(select(Sample.sample_id, Sample.face_id)).all()
    by_event = {event["event_id"]: event for event in creatable}
    for face_id, owner, event_id, user_data, external_id, age, gender in rows:
        event = by_event[event_id]
        assert (owner, user_data, external_id, age, gender) == (
            account_id,
            event["user_data"],
            event["external_id"],
            event["age"],
            event["gender"],
        )
        assert event_faces[event_id] == face_id
    expected_descriptors = {
        (event_faces[event["event_id"]], version, blob)
        for event in creatable
        for (kind, version), blob in data.event_descriptors[event["event_id"]].items()
        if kind == "face"
    }
    assert set(descriptors) == expected_descriptors
    sample_faces = dict(samples)
    for sample in data.samples:
        if sample["event_id"] in by_event and sample["sample_type"] == "face":
            assert sample_faces[sample["sample_id"]] == event_faces[sample["event_id"]]
        elif sample["event_id"] is not None and sample["sample_type"] == "body":
            assert sample_faces[sample["sample_id"]] is None
    linked = {event["face_id"] for event in with_face} | created
    assert column_set(engine, ListFace.face_id, where=ListFace.list_id == target) == linked
    assert stranger_face not in linked
    assert result["result"]["events"] == [
        {"event_id": str(event["event_id"]), "face_id": str(event_faces[event["event_id"]])}
        for event in sorted(with_face + creatable, key=lambda event: event["event_id"])
    ]
    assert "faces" not in result["result"]
    # batches are runs of 9 selected events in id order; a face met in an earlier batch (events can
    # share a face) is already linked when a later batch meets it
    ordered = [event_faces[e["event_id"]] for e in sorted(selected, key=lambda event: event["event_id"])]
    seen: set = set()
    repeated = 0
    for start in range(0, len(ordered), 9):
        chunk = {face for face in ordered[start : start + 9] if face in linked}
        repeated += len(chunk & seen)
        seen |= chunk
    assert {
        key: result["result"][key]
        for key in ("linked_faces", "already_linked", "created_faces", "skipped_objects")
    } == {
        "linked_faces": len(linked),
        "already_linked": repeated,
        "created_faces": len(creatable),
        "skipped_objects": len(no_descriptor),
    }
    assert sorted((e["error_code"], e["detail"]) for e in result["errors"]) == sorted(
        (28060, f"Event '{event['event_id']}' has no face descriptor; no face was created from it")
        for event in no_descriptor
    )
    with engine.connect() as connection:
        infos = set(connection.scalars(select(TaskError.additional_info)))
    assert infos == {str(event["event_id"]) for event in no_descriptor}
    # the stranger's events are untouched
    assert column_set(engine, Event.face_id, where=Event.account_id == stranger) <= {None}

    # a second run finds every face and creates none
    again, _ = linker_task(engine, store, account_id, content, monkeypatch, size="9")
    assert (again["result"]["created_faces"], again["result"]["linked_faces"]) == (0, 0)
    chunks = [{f for f in ordered[i : i + 9] if f in linked} for i in range(0, len(ordered), 9)]
    assert again["result"]["already_linked"] == sum(len(chunk) for chunk in chunks)
    assert column_set(engine, Face.face_id) - faces_before == created
    assert column_set(engine, EventDescriptor.event_id) == set(data.event_descriptors)


def test_empty_selection_gives_an_empty_result(engine, store, account_id, monkeypatch) -> None:
    data = Data()
    [target] = add_lists(engine, data, account_id, 1)
    content = {"list": {"list_id": str(target)}, "filters": {"object_type": "events"}}

    result, parts = linker_task(engine, store, account_id, content, monkeypatch)

    assert parts == []
    assert result == {
        "result": {
            "list_id": str(target),
            "created_list": False,
            "object_type": "events",
            "events": [],
            "linked_faces": 0,
            "already_linked": 0,
            "created_faces": 0,
            "skipped_objects": 0,
        },
        "errors": [],
    }


def test_a_subtask_rerun_after_a_crash_links_the_rest_and_counts_once(
    engine, store, account_id, monkeypatch
) -> None:
    import luna_provider.operators.linker as linker_module

    rng = np.random.default_rng(6)
    data = Data()
    [target] = add_lists(engine, data, account_id, 1)
    faces = add_faces(engine, store, data, account_id, 30, rng, samples=0)
    content = {"list": {"list_id": str(target)}, "filters": {"object_type": "faces"}}
    task_id = store_task(engine, TaskType.LINKER, account_id, {"content": content})
    monkeypatch.setenv("LUNA_LINKER_SUBTASK_SIZE", "8")
    monkeypatch.setenv("LUNA_MAX_SUBTASKS", "1")  # one subtask of 30 faces, four batches
    kwargs = {"engine": engine, "store": store, "settings": load()}
    [part] = LunaLinkerOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    original = linker_module._link
    calls = []

    def crash_in_third_batch(*args: Any) -> int:
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("worker killed")
        return original(*args)

    monkeypatch.setattr(linker_module, "_link", crash_in_third_batch)
    with pytest.raises(KeyboardInterrupt):
        LunaLinkerOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    assert len(column_set(engine, ListFace.face_id)) == 16
    monkeypatch.setattr(linker_module, "_link", original)

    LunaLinkerOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaLinkerOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)

    result = store.get_json(lifecycle.get_task(engine, task_id).result_key)["result"]
    ids = sorted(str(face["face_id"]) for face in faces)
    assert result["faces"] == ids
    assert (result["linked_faces"], result["already_linked"]) == (30, 0)
    assert column_set(engine, ListFace.face_id) == {face["face_id"] for face in faces}
