from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import func, select

from luna_provider import lifecycle
from luna_provider.operators.gc import LunaGcOperator
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

REPO = Path(__file__).resolve().parents[3]
SMALL = {"LUNA_GC_SUBTASK_SIZE": "25", "LUNA_GC_BATCH_SIZE": "7"}


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


@pytest.fixture
def world(engine, store, account_id) -> tuple[Data, uuid.UUID, list[uuid.UUID]]:
    """Faces and events of the account and of a stranger with the same attribute values."""
    rng = np.random.default_rng(7)
    data = Data()
    stranger = uuid.uuid4()
    lists = add_lists(engine, data, account_id, 2)
    stranger_lists = add_lists(engine, data, stranger, 1)
    faces = add_faces(engine, store, data, account_id, 120, rng, lists=lists)
    add_faces(engine, store, data, stranger, 40, rng, lists=stranger_lists)
    add_events(engine, store, data, account_id, 100, rng, face_ids=[face["face_id"] for face in faces[:30]])
    add_events(engine, store, data, stranger, 30, rng)
    return data, stranger, lists


def gc_task(engine: Any, store: ObjectStore, account: uuid.UUID, content: dict, monkeypatch: Any) -> dict:
    task_id = store_task(engine, TaskType.GC, account, {"content": content})
    run_task(LunaGcOperator, engine, store, task_id, monkeypatch, **SMALL)
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    return store.get_json(task.result_key)


def resolve(filters: dict, data: Data, account: uuid.UUID, stranger: uuid.UUID, lists: list) -> dict:
    """Fill the placeholders of a parametrized filter set with this test's ids."""
    mine = [face["face_id"] for face in data.faces if face["account_id"] == account]
    theirs = [face["face_id"] for face in data.faces if face["account_id"] == stranger]
    my_events = [event["event_id"] for event in data.events if event["account_id"] == account]
    their_events = [event["event_id"] for event in data.events if event["account_id"] == stranger]
    values = {
        "LIST0": str(lists[0]),
        "FACES": [str(face) for face in mine[5:40:3] + theirs[:10]],
        "EVENTS": [str(event) for event in my_events[::4] + their_events[::2]],
        "STRANGER": str(stranger),
    }
    return {
        key: values.get(value, value) if isinstance(value, str) else value for key, value in filters.items()
    }


def assert_samples_consistent(engine: Any, store: ObjectStore, data: Data) -> None:
    """A sample file is gone only if its row is gone."""
    kept = column_set(engine, Sample.sample_id)
    for sample in data.samples:
        if sample["sample_id"] in kept:
            assert store.exists(sample["storage_key"]), sample


FACE_FILTERS = [
    {},
    {"user_data": "staff"},
    {"external_ids": ["ext-1", "ext-3"], "create_time__gte": (START + timedelta(minutes=30)).isoformat()},
    {"list_id": "LIST0"},
    {"face_ids": "FACES"},
    {
        "face_id__gte": "40000000-0000-0000-0000-000000000000",
        "face_id__lt": "c0000000-0000-0000-0000-000000000000",
    },
    {"create_time__lt": (START + timedelta(minutes=50)).isoformat(), "user_data": ""},
    {"account_id": "STRANGER"},
]


@pytest.mark.parametrize("remove_samples", [True, False])
@pytest.mark.parametrize("filters", FACE_FILTERS)
def test_gc_faces_removes_exactly_the_selected_faces(
    engine, store, account_id, world, monkeypatch, filters, remove_samples
) -> None:
    data, stranger, lists = world
    filters = resolve(filters, data, account_id, stranger, lists)
    gone = {face["face_id"] for face in data.faces if face_matches(face, filters, account_id, data.links)}
    kept = {face["face_id"] for face in data.faces} - gone
    events_before = column_set(engine, Event.event_id)

    result = gc_task(
        engine,
        store,
        account_id,
        {"target": "faces", "filters": filters, "remove_samples": remove_samples},
        monkeypatch,
    )

    assert column_set(engine, Face.face_id) == kept
    assert column_set(engine, FaceDescriptor.face_id, FaceDescriptor.descriptor_version) == {
        (face, version) for face in kept for version in data.face_descriptors[face]
    }
    assert column_set(engine, ListFace.list_id, ListFace.face_id) == {
        link for link in data.links if link[1] in kept
    }
    removed_samples = {
        sample["sample_id"]
        for sample in data.samples
        if remove_samples and sample["face_id"] in gone and sample["event_id"] is None
    }
    assert column_set(engine, Sample.sample_id) == {s["sample_id"] for s in data.samples} - removed_samples
    for sample in data.samples:
        assert store.exists(sample["storage_key"]) == (sample["sample_id"] not in removed_samples)
    # samples shared with an event stay with the event, detached from the deleted face
    assert column_set(engine, Sample.face_id, where=Sample.face_id.is_not(None)) <= kept
    assert column_set(engine, Event.event_id) == events_before
    touched = {list_id for list_id, face in data.links if face in gone}
    assert column_set(engine, FaceList.list_id, where=FaceList.last_update_time > START) == touched
    assert result == {
        "result": {"target": "faces", "removed_faces": len(gone), "removed_samples": len(removed_samples)},
        "errors": [],
    }


EVENT_FILTERS = [
    {},
    {"sources": ["cam-1"], "tags": ["vip"]},
    {"meta": {"zone.floor": 2}},
    {"meta": {"shift": "night"}, "create_time__gte": (START + timedelta(minutes=40)).isoformat()},
    {"age__gte": 30, "age__lt": 60, "gender": 1},
    {"cities": ["Berlin"], "end_time__lt": (START + timedelta(minutes=70)).isoformat()},
    {"event_ids": "EVENTS"},
    {"user_data": "guest", "external_ids": ["ext-2"]},
]


@pytest.mark.parametrize("filters", EVENT_FILTERS)
def test_gc_events_removes_exactly_the_selected_events(
    engine, store, account_id, world, monkeypatch, filters
) -> None:
    data, stranger, lists = world
    filters = resolve(filters, data, account_id, stranger, lists)
    gone = {event["event_id"] for event in data.events if event_matches(event, filters, account_id)}
    kept = {event["event_id"] for event in data.events} - gone
    faces_before = column_set(engine, Face.face_id)
    content = {"target": "events", "filters": filters, "remove_samples": True, "remove_image_origins": True}

    result = gc_task(engine, store, account_id, content, monkeypatch)

    assert column_set(engine, Event.event_id) == kept
    assert column_set(engine, EventDescriptor.event_id, EventDescriptor.descriptor_type) == {
        (event, kind) for event in kept for kind, _ in data.event_descriptors[event]
    }
    removed_samples = {
        sample["sample_id"]
        for sample in data.samples
        if sample["event_id"] in gone and sample["face_id"] is None
    }
    assert column_set(engine, Sample.sample_id) == {s["sample_id"] for s in data.samples} - removed_samples
    for sample in data.samples:
        assert store.exists(sample["storage_key"]) == (sample["sample_id"] not in removed_samples)
    assert column_set(engine, Face.face_id) == faces_before
    assert result["result"] == {
        "target": "events",
        "removed_events": len(gone),
        "removed_samples": len(removed_samples),
    }


def test_gc_face_descriptors_of_one_version(engine, store, account_id, world, monkeypatch) -> None:
    data, _, _ = world
    filters = {"user_data": "staff"}
    selected = {face["face_id"] for face in data.faces if face_matches(face, filters, account_id, data.links)}
    faces_before = column_set(engine, Face.face_id)

    content = {"target": "face_descriptors", "descriptor_version": 202, "filters": filters}
    result = gc_task(engine, store, account_id, content, monkeypatch)

    assert column_set(engine, FaceDescriptor.face_id, FaceDescriptor.descriptor_version) == {
        (face, version)
        for face, versions in data.face_descriptors.items()
        for version in versions
        if not (version == 202 and face in selected)
    }
    assert column_set(engine, Face.face_id) == faces_before
    assert result["result"] == {
        "target": "face_descriptors",
        "descriptor_version": 202,
        "removed_descriptors": len(selected),
    }


@pytest.mark.parametrize(("kind", "version"), [("body", 110), ("face", 201)])
def test_gc_event_descriptors_of_one_type_and_version(
    engine, store, account_id, world, monkeypatch, kind, version
) -> None:
    data, _, _ = world
    filters = {"sources": ["cam-2", "cam-3"]}
    selected = {
        event_id
        for event_id, kinds in data.event_descriptors.items()
        if (kind, version) in kinds
        and event_matches(next(e for e in data.events if e["event_id"] == event_id), filters, account_id)
    }

    content = {
        "target": "event_descriptors",
        "descriptor_version": version,
        "descriptor_type": kind,
        "filters": filters,
    }
    result = gc_task(engine, store, account_id, content, monkeypatch)

    columns = (EventDescriptor.event_id, EventDescriptor.descriptor_type, EventDescriptor.descriptor_version)
    assert column_set(engine, *columns) == {
        (event, *pair)
        for event, kinds in data.event_descriptors.items()
        for pair in kinds
        if not (pair == (kind, version) and event in selected)
    }
    assert len(column_set(engine, Event.event_id)) == len(data.events)
    assert result["result"]["removed_descriptors"] == len(selected) > 0


def test_gc_never_touches_another_account(engine, store, account_id, world, monkeypatch) -> None:
    data, stranger, _ = world
    theirs = [face for face in data.faces if face["account_id"] == stranger]
    their_events = [event for event in data.events if event["account_id"] == stranger]
    before = {
        "faces": column_set(engine, Face.face_id),
        "events": column_set(engine, Event.event_id),
        "samples": column_set(engine, Sample.sample_id),
    }

    for content in (
        {"target": "faces", "filters": {"face_ids": [str(face["face_id"]) for face in theirs]}},
        {"target": "faces", "filters": {"list_id": str(next(iter(data.lists)))}},
        {"target": "events", "filters": {"event_ids": [str(e["event_id"]) for e in their_events]}},
        {"target": "faces", "filters": {"account_id": str(stranger)}, "remove_samples": True},
    ):
        if content["filters"].get("list_id"):
            # a list of the stranger's, named by the account: none of its faces are the account's
            content["filters"]["list_id"] = str(
                next(i for i, owner in data.lists.items() if owner == stranger)
            )
        result = gc_task(engine, store, account_id, content, monkeypatch)
        assert set(result["result"].values()) <= {content["target"], 0}

    assert column_set(engine, Face.face_id) == before["faces"]
    assert column_set(engine, Event.event_id) == before["events"]
    assert column_set(engine, Sample.sample_id) == before["samples"]

    # the stranger's own task removes them, and nothing of the account
    gc_task(engine, store, stranger, {"target": "faces", "remove_samples": True}, monkeypatch)
    assert column_set(engine, Face.face_id) == before["faces"] - {face["face_id"] for face in theirs}


def test_objects_created_after_the_task_are_kept(engine, store, account_id, monkeypatch) -> None:
    data = Data()
    rng = np.random.default_rng(3)
    add_faces(engine, store, data, account_id, 10, rng)
    task_id = store_task(engine, TaskType.GC, account_id, {"content": {"target": "faces"}})
    late = add_faces(engine, store, data, account_id, 5, rng)
    with engine.begin() as connection:  # created after the task: create_time later than the task's
        connection.execute(
            Face.__table__.update()
            .where(Face.face_id.in_([face["face_id"] for face in late]))
            .values(create_time=func.now())
        )

    run_task(LunaGcOperator, engine, store, task_id, monkeypatch)

    assert column_set(engine, Face.face_id) == {face["face_id"] for face in late}


def faces_all_or_nothing(engine: Any, data: Data, faces: list[dict]) -> tuple[int, int]:
    """Assert every face is complete or completely gone; return (present, gone) counts."""
    present_faces = column_set(engine, Face.face_id)
    descriptors = column_set(engine, FaceDescriptor.face_id, FaceDescriptor.descriptor_version)
    links = column_set(engine, ListFace.list_id, ListFace.face_id)
    samples = column_set(engine, Sample.sample_id)
    present = 0
    for face in faces:
        face_id = face["face_id"]
        parts = [
            face_id in present_faces,
            *((face_id, version) in descriptors for version in data.face_descriptors[face_id]),
            *(link in links for link in data.links if link[1] == face_id),
            *(s["sample_id"] in samples for s in data.samples if s["face_id"] == face_id),
        ]
        assert all(parts) or not any(parts), f"face {face_id} half deleted: {parts}"
        present += parts[0]
    return present, len(faces) - present


_CHILD = """
import json, sys
from luna_provider.operators.gc import LunaGcOperator
from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.db import get_engine

settings = load()
part = json.loads(sys.argv[2])
LunaGcOperator(task_id="subtask", phase="subtask", part=part).run_phase(
    int(sys.argv[1]),
    engine=get_engine(settings.database_url),
    store=ObjectStore(settings.object_store_url),
    settings=settings,
)
"""


def test_gc_killed_halfway_leaves_whole_faces_and_a_rerun_finishes(
    engine, store, account_id, monkeypatch
) -> None:
    rng = np.random.default_rng(5)
    data = Data()
    lists = add_lists(engine, data, account_id, 3)
    faces = add_faces(engine, store, data, account_id, 400, rng, lists=lists, samples=2)
    task_id = store_task(
        engine, TaskType.GC, account_id, {"content": {"target": "faces", "remove_samples": True}}
    )
    kwargs = {"engine": engine, "store": store, "settings": load()}
    [part] = LunaGcOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "LUNA_GC_BATCH_SIZE": "6",
        "LUNA_GC_BATCH_PAUSE": "0.03",
    }
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(task_id), json.dumps(part)], env=env)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and child.poll() is None:
            left = len(column_set(engine, Face.face_id))
            if left <= 250:
                break
            time.sleep(0.01)
        assert child.poll() is None, "the subtask ended before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()

    present, gone = faces_all_or_nothing(engine, data, faces)
    assert 0 < present < 400 and gone > 0
    assert_samples_consistent(engine, store, data)

    # Airflow would retry the subtask: it resumes after the last committed batch
    LunaGcOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaGcOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)

    assert faces_all_or_nothing(engine, data, faces) == (0, 400)
    assert column_set(engine, Sample.sample_id) == set()
    assert not any(store.exists(sample["storage_key"]) for sample in data.samples)
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    # each face counted exactly once across the killed run and the rerun
    assert store.get_json(task.result_key)["result"] == {
        "target": "faces",
        "removed_faces": 400,
        "removed_samples": 800,
    }


def test_files_of_a_batch_committed_before_a_crash_are_deleted_on_rerun(
    engine, store, account_id, monkeypatch
) -> None:
    rng = np.random.default_rng(8)
    data = Data()
    faces = add_faces(engine, store, data, account_id, 20, rng, samples=1)
    task_id = store_task(
        engine, TaskType.GC, account_id, {"content": {"target": "faces", "remove_samples": True}}
    )
    monkeypatch.setenv("LUNA_GC_BATCH_SIZE", "8")
    kwargs = {"engine": engine, "store": store, "settings": load()}
    [part] = LunaGcOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    subtask = lifecycle.start_subtask(engine, part["subtask_id"])
    run = lifecycle.get_task(engine, task_id)

    def crash(*args: Any) -> None:
        raise KeyboardInterrupt("worker died right after the commit")

    monkeypatch.setattr(LunaGcOperator, "delete_files", crash)
    from luna_provider.operators.base import TaskRun

    with pytest.raises(KeyboardInterrupt):
        LunaGcOperator(task_id="subtask", phase="subtask", part=part).run_part(
            TaskRun(task=run, engine=engine, store=store, settings=kwargs["settings"]), subtask, part
        )
    monkeypatch.undo()
    monkeypatch.setenv("LUNA_GC_BATCH_SIZE", "8")

    # the first batch is committed: its rows are gone but its files are still there (orphans)
    assert len(column_set(engine, Face.face_id)) == 12
    orphans = [s for s in data.samples if s["sample_id"] not in column_set(engine, Sample.sample_id)]
    assert len(orphans) == 8 and all(store.exists(s["storage_key"]) for s in orphans)

    LunaGcOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaGcOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)

    assert faces_all_or_nothing(engine, data, faces) == (0, 20)
    assert not any(store.exists(sample["storage_key"]) for sample in data.samples)
    task = lifecycle.get_task(engine, task_id)
    assert store.get_json(task.result_key)["result"]["removed_samples"] == 20


def test_cancel_during_a_batch_rolls_it_back(engine, store, account_id, monkeypatch) -> None:
    from airflow.exceptions import AirflowSkipException

    rng = np.random.default_rng(9)
    data = Data()
    add_faces(engine, store, data, account_id, 12, rng)
    task_id = store_task(engine, TaskType.GC, account_id, {"content": {"target": "faces"}})
    kwargs = {"engine": engine, "store": store, "settings": load()}
    [part] = LunaGcOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    original = LunaGcOperator.delete_batch

    def cancel_then_delete(self: Any, run: Any, batch: Any, intent_key: str) -> dict:
        lifecycle.cancel_task(engine, task_id)
        return original(self, run, batch, intent_key)

    monkeypatch.setattr(LunaGcOperator, "delete_batch", cancel_then_delete)

    with pytest.raises(AirflowSkipException):
        LunaGcOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)

    assert len(column_set(engine, Face.face_id)) == 12
    assert lifecycle.get_task(engine, task_id).task_status == 2


@pytest.mark.parametrize("key", ["../outside.jpg", "results/{account}/task_1.json"])
def test_sample_file_that_cannot_be_deleted_is_a_task_error(
    engine, store, account_id, monkeypatch, key
) -> None:
    rng = np.random.default_rng(10)
    data = Data()
    faces = add_faces(engine, store, data, account_id, 3, rng)
    bad = data.samples[0]["sample_id"]
    key = key.format(account=account_id)
    if not key.startswith(".."):
        store.put_json(key, {"result": "a task result, not a sample"})
    with engine.begin() as connection:
        connection.execute(Sample.__table__.update().where(Sample.sample_id == bad).values(storage_key=key))

    result = gc_task(engine, store, account_id, {"target": "faces", "remove_samples": True}, monkeypatch)

    assert result["result"]["removed_faces"] == len(faces)
    assert [error["error_code"] for error in result["errors"]] == [28062]
    with engine.connect() as connection:
        assert connection.scalar(select(TaskError.additional_info)) == str(bad)
    if not key.startswith(".."):
        assert store.exists(key)


def test_a_deadlocked_batch_is_run_again(engine, store, account_id, monkeypatch) -> None:
    from sqlalchemy.exc import OperationalError

    class Deadlock(Exception):
        pgcode = "40P01"

    rng = np.random.default_rng(11)
    data = Data()
    add_faces(engine, store, data, account_id, 10, rng)
    original = LunaGcOperator.delete_batch
    calls = []

    def deadlock_once(self: Any, run: Any, batch: Any, intent_key: str) -> dict:
        calls.append(len(batch.ids))
        counts = original(self, run, batch, intent_key)
        if len(calls) == 1:  # after the work, before the commit: all of it must roll back
            raise OperationalError("DELETE ...", {}, Deadlock("deadlock detected"))
        return counts

    monkeypatch.setattr(LunaGcOperator, "delete_batch", deadlock_once)

    result = gc_task(engine, store, account_id, {"target": "faces", "remove_samples": True}, monkeypatch)

    assert calls[:2] == [7, 7]
    assert result["result"] == {"target": "faces", "removed_faces": 10, "removed_samples": 10}
    assert column_set(engine, Face.face_id) == set()
