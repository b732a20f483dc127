"""Additional extract on faces and events an estimator task made from the shared sample photos."""

from __future__ import annotations

import shutil
import uuid
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select, update

from luna_provider.compute.descriptors import DLIB_RESNET_V1
from luna_provider.operators.additional_extract import LunaAdditionalExtractOperator
from luna_provider.operators.estimator import LunaEstimatorOperator
from luna_provider.store.models import Event, EventDescriptor, Face, FaceDescriptor, Sample, TaskError
from luna_provider.task_types import TaskType
from tests.sample_faces import require_sample_faces
from tests.unit.operators.face_tasks import Stack, module_stack  # noqa: F401  (the stack fixture)

PHOTOS = ["johns/John_Salley", "johns/John_Simm", "group/2008_002470.jpg", "group/2008_001322.jpg"]
#: faces in PHOTOS: 11 chips each, and the party photos' counts (see tests/sample_faces.py)
FACES = 11 + 11 + 6 + 3


@pytest.fixture(scope="module")
def made(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Faces and events (with samples and v201 descriptors) of a few photos, by an estimator task."""
    faces_dir = require_sample_faces()
    folder = tmp_path_factory.mktemp("photos")
    for name in PHOTOS:
        if (faces_dir / name).is_dir():
            shutil.copytree(faces_dir / name, folder / name)
        else:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(faces_dir / name, folder / name)
    account = uuid.uuid4()
    content = {
        "source": {"source_type": "network_disk", "path": str(folder), "recursive": True},
        "handler": {"policies": {"storage_policy": {"event_policy": {"store_event": 1}}}},
    }
    task_id = stack.create(TaskType.ESTIMATOR, account, content)
    stack.run(LunaEstimatorOperator, task_id)
    assert stack.result(task_id)["result"]["total_faces"] == FACES
    return {"account": account}


def extract(stack: Stack, account: uuid.UUID, objects_type: str, target: str = "face_descriptor", **options):
    content = {
        "extraction_target": target,
        "options": {"missing": True, **options},
        "filters": {"objects_type": objects_type},
    }
    task_id = stack.create(TaskType.ADDITIONAL_EXTRACT, account, content)
    parts = stack.run(LunaAdditionalExtractOperator, task_id, LUNA_ADDITIONAL_EXTRACT_SUBTASK_SIZE="8")
    return task_id, parts, stack.result(task_id)


def descriptors(stack: Stack, account: uuid.UUID) -> tuple[dict, dict]:
    with stack.engine.connect() as connection:
        faces = dict(
            connection.execute(
                select(FaceDescriptor.face_id, FaceDescriptor.descriptor)
                .join(Face, Face.face_id == FaceDescriptor.face_id)
                .where(Face.account_id == account, FaceDescriptor.descriptor_version == 201)
            ).all()
        )
        events = dict(
            connection.execute(
                select(EventDescriptor.event_id, EventDescriptor.descriptor)
                .join(Event, Event.event_id == EventDescriptor.event_id)
                .where(Event.account_id == account, EventDescriptor.descriptor_version == 201)
            ).all()
        )
    return faces, events


def assert_equal_descriptors(restored: dict, original: dict) -> None:
    assert set(restored) == set(original)
    keys = sorted(original)
    np.testing.assert_allclose(
        DLIB_RESNET_V1.from_bytes([restored[key] for key in keys]),
        DLIB_RESNET_V1.from_bytes([original[key] for key in keys]),
        atol=1e-5,
    )


def test_deleted_descriptors_are_restored_equal(stack, made) -> None:
    account = made["account"]
    original_faces, original_events = descriptors(stack, account)
    assert len(original_faces) == len(original_events) == FACES
    with stack.engine.begin() as connection:
        connection.execute(delete(FaceDescriptor).where(FaceDescriptor.face_id.in_(list(original_faces))))
        connection.execute(delete(EventDescriptor).where(EventDescriptor.event_id.in_(list(original_events))))

    _, face_parts, face_result = extract(stack, account, "faces", descriptor_version=201)
    _, event_parts, event_result = extract(stack, account, "events")

    restored_faces, restored_events = descriptors(stack, account)
    assert_equal_descriptors(restored_faces, original_faces)
    assert_equal_descriptors(restored_events, original_events)
    assert len(face_parts) == len(event_parts) == -(-FACES // 8)
    for result, ids in ((face_result, original_faces), (event_result, original_events)):
        summary = result["result"]
        assert (summary["total_objects"], summary["extracted"], summary["failed"]) == (FACES, FACES, 0)
        assert summary["descriptor_version"] == 201
        # each object once, though the subtasks cut the objects into id ranges
        assert sorted(item["object_id"] for item in summary["objects"]) == sorted(str(key) for key in ids)
        assert result["errors"] == []


def test_only_missing_descriptors_are_added(stack, made) -> None:
    account = made["account"]
    original, _ = descriptors(stack, account)
    some = sorted(original)[:5]
    marker = DLIB_RESNET_V1.to_bytes(np.full(128, 0.5, dtype=np.float32))
    with stack.engine.begin() as connection:
        connection.execute(delete(FaceDescriptor).where(FaceDescriptor.face_id.in_(some)))
        # a descriptor that differs from what the sample gives must stay as it is
        connection.execute(
            update(FaceDescriptor)
            .where(FaceDescriptor.face_id == sorted(original)[-1])
            .values(descriptor=marker)
        )

    _, parts, result = extract(stack, account, "faces")

    restored, _ = descriptors(stack, account)
    assert sorted(item["object_id"] for item in result["result"]["objects"]) == sorted(
        str(key) for key in some
    )
    assert len(parts) == 1
    assert restored[sorted(original)[-1]] == marker
    assert_equal_descriptors({key: restored[key] for key in some}, {key: original[key] for key in some})
    with stack.engine.begin() as connection:
        connection.execute(
            update(FaceDescriptor)
            .where(FaceDescriptor.face_id == sorted(original)[-1])
            .values(descriptor=original[sorted(original)[-1]])
        )


def test_missing_basic_attributes_are_filled_not_replaced(stack, made) -> None:
    account = made["account"]
    with stack.engine.connect() as connection:
        attributes = {
            row.face_id: (row.age, row.gender)
            for row in connection.execute(
                select(Face.face_id, Face.age, Face.gender).where(Face.account_id == account)
            )
        }
    keys = sorted(attributes)
    with stack.engine.begin() as connection:
        connection.execute(update(Face).where(Face.face_id.in_(keys[:10])).values(age=None, gender=None))
        connection.execute(update(Face).where(Face.face_id.in_(keys[10:14])).values(age=None))
        connection.execute(update(Face).where(Face.face_id == keys[14]).values(age=99.0, gender=None))

    _, _, result = extract(stack, account, "faces", target="basic_attributes")

    with stack.engine.connect() as connection:
        now = {
            row.face_id: (row.age, row.gender)
            for row in connection.execute(
                select(Face.face_id, Face.age, Face.gender).where(Face.account_id == account)
            )
        }
    assert result["result"]["total_objects"] == 15 and result["result"]["descriptor_version"] is None
    assert now[keys[14]] == (99.0, attributes[keys[14]][1])  # the age that was there is kept
    assert {key: now[key] for key in keys if key != keys[14]} == {
        key: attributes[key] for key in keys if key != keys[14]
    }
    with stack.engine.begin() as connection:
        connection.execute(update(Face).where(Face.face_id == keys[14]).values(age=attributes[keys[14]][0]))


def test_nothing_missing_means_no_subtask(stack, made) -> None:
    _, parts, result = extract(stack, made["account"], "events")

    assert parts == []
    assert result["result"]["total_objects"] == 0 and result["result"]["objects"] == []


def test_unreadable_sample_is_an_error_and_the_rest_goes_on(stack, made) -> None:
    account = made["account"]
    original, _ = descriptors(stack, account)
    with stack.engine.connect() as connection:
        samples = connection.execute(
            select(Sample.face_id, Sample.storage_key)
            .where(Sample.account_id == account)
            .order_by(Sample.face_id)
        ).all()
    (broken, key), (fine, _) = samples[0], samples[1]
    with stack.engine.begin() as connection:
        connection.execute(delete(FaceDescriptor).where(FaceDescriptor.face_id.in_([broken, fine])))
    with stack.store.open(key, "rb") as stream:
        kept = stream.read()
    with stack.store.open(key, "wb") as stream:
        stream.write(b"garbage")
    try:
        task_id, _, result = extract(stack, account, "faces")
    finally:
        with stack.store.open(key, "wb") as stream:
            stream.write(kept)

    summary = result["result"]
    assert (summary["extracted"], summary["failed"]) == (1, 1)
    assert [error["error_code"] for error in result["errors"]] == [28087]
    with stack.engine.connect() as connection:
        info = connection.scalar(select(TaskError.additional_info).where(TaskError.task_id == task_id))
    assert info == str(broken)
    restored, _ = descriptors(stack, account)
    assert broken not in restored and restored[fine] == original[fine]
    extract(stack, account, "faces")
    assert_equal_descriptors(descriptors(stack, account)[0], original)


def test_other_accounts_objects_are_not_touched(stack, made) -> None:
    account = made["account"]
    with stack.engine.begin() as connection:
        connection.execute(update(Face).where(Face.account_id == account).values(gender=None))

    _, parts, result = extract(stack, uuid.uuid4(), "faces", target="basic_attributes")

    assert parts == [] and result["result"]["total_objects"] == 0
    with stack.engine.connect() as connection:
        assert (
            connection.scalar(select(func.count()).where(Face.account_id == account, Face.gender.is_(None)))
            == FACES
        )
    _, _, result = extract(stack, account, "faces", target="basic_attributes")
    assert result["result"]["extracted"] == FACES


def test_objects_without_samples_are_not_selected(stack, made) -> None:
    from luna_provider.importer import import_faces

    account = made["account"]
    vector = np.linspace(-0.1, 0.1, 128).tolist()
    face_id = uuid.uuid4()
    import_faces(
        stack.engine, account, [(1, {"descriptor": vector, "face_id": str(face_id)})], DLIB_RESNET_V1
    )
    with stack.engine.begin() as connection:
        connection.execute(delete(FaceDescriptor).where(FaceDescriptor.face_id == face_id))

    _, _, attributes = extract(stack, account, "faces", target="basic_attributes")
    _, _, descriptors_result = extract(stack, account, "faces")

    assert attributes["result"]["total_objects"] == descriptors_result["result"]["total_objects"] == 0
    with stack.engine.begin() as connection:
        connection.execute(delete(Face).where(Face.face_id == face_id))


def test_filters_narrow_the_selection(stack, made) -> None:
    account = made["account"]
    original, _ = descriptors(stack, account)
    chosen = sorted(original)[3:7]
    with stack.engine.begin() as connection:
        connection.execute(delete(FaceDescriptor).where(FaceDescriptor.face_id.in_(list(original))))
    content = {
        "extraction_target": "face_descriptor",
        "options": {"missing": True},
        "filters": {"objects_type": "faces", "face_ids": [str(key) for key in chosen]},
    }
    task_id = stack.create(TaskType.ADDITIONAL_EXTRACT, account, content)

    stack.run(LunaAdditionalExtractOperator, task_id)

    assert set(descriptors(stack, account)[0]) == set(chosen)
    extract(stack, account, "faces")
    assert_equal_descriptors(descriptors(stack, account)[0], original)
