from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sqlalchemy import select

from luna_provider import lifecycle
from luna_provider.compute.descriptors import DLIB_RESNET_V1
from luna_provider.errors import LunaError
from luna_provider.importer import import_faces
from luna_provider.operators.cross_match import LunaCrossMatchOperator
from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.models import Event, EventDescriptor, TaskError
from luna_provider.submission import check_content, store_task
from luna_provider.task_types import TaskType


def make_faces(count: int, people: int, seed: int, list_ids: list[str] | None = None) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128))
    centres *= 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, people, size=count)] + rng.normal(scale=0.03, size=(count, 128))
    start = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=seed)
    return [
        {
            "face_id": str(uuid.uuid4()),
            "descriptor": vector.astype(np.float32).tolist(),
            "create_time": (start + timedelta(seconds=index)).isoformat(),
            **({"list_ids": list_ids} if list_ids else {}),
        }
        for index, vector in enumerate(vectors)
    ]


def expected_matches(references: list[dict], candidates: list[dict], limit: int, threshold: float) -> list:
    """Brute force: every pair's similarity from SciPy distances, sorted, cut, self excluded."""
    distance = cdist(
        np.asarray([r["descriptor"] for r in references], dtype=np.float64),
        np.asarray([c["descriptor"] for c in candidates], dtype=np.float64),
    )
    similarity = np.clip(1.0 - distance / 1.2, 0.0, 1.0)
    result = []
    for i, reference in enumerate(references):
        kept = [
            (candidate["face_id"], similarity[i, j])
            for j, candidate in enumerate(candidates)
            if similarity[i, j] >= threshold and candidate["face_id"] != reference["face_id"]
        ]
        kept.sort(key=lambda item: (-item[1], item[0]))
        result.append((reference["face_id"], kept[:limit]))
    return result


def run_task(engine: Any, store: ObjectStore, task_id: int, monkeypatch: pytest.MonkeyPatch, **settings: str):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    kwargs = {"engine": engine, "store": store, "settings": load()}
    parts = LunaCrossMatchOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        LunaCrossMatchOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaCrossMatchOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    return parts


def result_of(engine: Any, store: ObjectStore, task_id: int) -> dict:
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5, task.task_status
    assert task.result_content_type == "application/json"
    with store.open(task.result_key, "rb") as stream:
        return json.loads(stream.read())


def assert_matches(result: list, expected: list) -> None:
    assert [item["reference_id"] for item in result] == [reference for reference, _ in expected]
    for item, (_, kept) in zip(result, expected, strict=True):
        assert [c["candidate_id"] for c in item["candidates"]] == [candidate for candidate, _ in kept]
        np.testing.assert_allclose(
            [c["similarity"] for c in item["candidates"]], [value for _, value in kept], rtol=0, atol=1e-12
        )


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


@pytest.mark.parametrize(
    ("subtask_size", "block", "limit"), [("1000", "1000", 3), ("25", "7", 5), ("40", "16", 1)]
)
def test_cross_match_equals_brute_force(
    engine, store, account_id, monkeypatch, subtask_size, block, limit
) -> None:
    references_list, candidates_list = str(uuid.uuid4()), str(uuid.uuid4())
    references = make_faces(70, people=8, seed=1, list_ids=[references_list])
    candidates = make_faces(130, people=8, seed=1, list_ids=[candidates_list])[::-1]
    import_faces(engine, account_id, enumerate(references + candidates, 1), DLIB_RESNET_V1)
    content = {
        "references": {"filters": {"object_type": "faces", "list_id": references_list}},
        "candidates": {"filters": {"object_type": "faces", "list_id": candidates_list}},
        "threshold": 0.45,
        "limit": limit,
    }
    task_id = store_task(engine, TaskType.CROSS_MATCH, account_id, {"content": content})

    parts = run_task(
        engine,
        store,
        task_id,
        monkeypatch,
        LUNA_CROSS_MATCH_SUBTASK_SIZE=subtask_size,
        LUNA_MATCH_BLOCK_SIZE=block,
        LUNA_MAX_SUBTASKS="512",
    )

    assert len(parts) == -(-70 // int(subtask_size))
    document = result_of(engine, store, task_id)
    assert document["errors"] == []
    # references come in creation order; make_faces gives increasing create times
    assert_matches(document["result"], expected_matches(references, candidates, limit, 0.45))
    assert any(len(item["candidates"]) == limit for item in document["result"])
    assert not store.exists(f"work/task_{task_id}")


def test_default_threshold_and_limit_and_no_self_match(engine, store, account_id, monkeypatch) -> None:
    faces = make_faces(60, people=5, seed=2)
    faces[1]["descriptor"] = faces[0]["descriptor"]  # a duplicate still matches (similarity 1)
    import_faces(engine, account_id, enumerate(faces, 1), DLIB_RESNET_V1)
    content = {
        "references": {"filters": {"object_type": "faces"}},
        "candidates": {"filters": {"object_type": "faces"}},
    }
    task_id = store_task(engine, TaskType.CROSS_MATCH, account_id, {"content": content})

    run_task(
        engine,
        store,
        task_id,
        monkeypatch,
        LUNA_DEFAULT_CROSSMATCH_THRESHOLD="0.6",
        LUNA_MATCH_BLOCK_SIZE="9",
    )

    result = result_of(engine, store, task_id)["result"]
    assert_matches(result, expected_matches(faces, faces, 3, 0.6))
    for item in result:
        assert item["reference_id"] not in [c["candidate_id"] for c in item["candidates"]]
    assert result[0]["candidates"][0] == {"candidate_id": faces[1]["face_id"], "similarity": 1.0}


def test_events_against_faces_and_account_isolation(engine, store, account_id, monkeypatch) -> None:
    faces = make_faces(20, people=4, seed=3)
    import_faces(engine, account_id, enumerate(faces, 1), DLIB_RESNET_V1)
    stranger = make_faces(20, people=4, seed=3)  # the same people in another account
    import_faces(engine, uuid.uuid4(), enumerate(stranger, 1), DLIB_RESNET_V1)
    events = make_faces(15, people=4, seed=3)
    with engine.begin() as connection:
        for index, event in enumerate(events):
            event_id = uuid.UUID(event["face_id"])
            connection.execute(
                Event.__table__.insert().values(
                    event_id=event_id,
                    account_id=account_id,
                    source="cam-1" if index % 3 else "cam-2",
                    create_time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(seconds=index),
                )
            )
            connection.execute(
                EventDescriptor.__table__.insert().values(
                    event_id=event_id,
                    descriptor_type="face",
                    descriptor_version=201,
                    descriptor=DLIB_RESNET_V1.to_bytes(np.asarray(event["descriptor"])),
                )
            )
    content = {
        "references": {"filters": {"object_type": "events", "sources": ["cam-1"]}},
        "candidates": {"filters": {"object_type": "faces"}},
        "threshold": 0.4,
        "limit": 2,
    }
    task_id = store_task(engine, TaskType.CROSS_MATCH, account_id, {"content": content})

    run_task(engine, store, task_id, monkeypatch)

    cam1 = [event for index, event in enumerate(events) if index % 3]
    assert_matches(result_of(engine, store, task_id)["result"], expected_matches(cam1, faces, 2, 0.4))


def test_empty_sides(engine, store, account_id, monkeypatch) -> None:
    faces = make_faces(5, people=2, seed=4)
    import_faces(engine, account_id, enumerate(faces, 1), DLIB_RESNET_V1)

    no_candidates = store_task(
        engine,
        TaskType.CROSS_MATCH,
        account_id,
        {
            "content": {
                "references": {"filters": {"object_type": "faces"}},
                "candidates": {"filters": {"object_type": "events"}},
            }
        },
    )
    run_task(engine, store, no_candidates, monkeypatch)
    assert result_of(engine, store, no_candidates)["result"] == [
        {"reference_id": face["face_id"], "candidates": []} for face in faces
    ]

    no_references = store_task(
        engine,
        TaskType.CROSS_MATCH,
        account_id,
        {
            "content": {
                "references": {"filters": {"object_type": "events"}},
                "candidates": {"filters": {"object_type": "faces"}},
            }
        },
    )
    assert run_task(engine, store, no_references, monkeypatch) == []
    assert result_of(engine, store, no_references) == {"result": [], "errors": []}


def test_unknown_list_fails_the_task(engine, store, account_id, monkeypatch) -> None:
    foreign_list = str(uuid.uuid4())
    import_faces(engine, uuid.uuid4(), enumerate(make_faces(3, 1, 5, [foreign_list]), 1), DLIB_RESNET_V1)
    content = {
        "references": {"filters": {"object_type": "faces"}},
        "candidates": {"filters": {"object_type": "faces", "list_id": foreign_list}},
    }
    task_id = store_task(engine, TaskType.CROSS_MATCH, account_id, {"content": content})

    with pytest.raises(LunaError):
        run_task(engine, store, task_id, monkeypatch)

    assert lifecycle.get_task(engine, task_id).task_status == 3
    with engine.connect() as connection:
        assert connection.scalars(select(TaskError.error_code)).all() == [22003]


def test_body_descriptors_of_faces_are_refused() -> None:
    content = {
        "references": {"filters": {"object_type": "events"}},
        "candidates": {"filters": {"object_type": "faces"}},
        "descriptor": {"type": "body"},
    }
    with pytest.raises(LunaError) as raised:
        check_content(TaskType.CROSS_MATCH, content)
    assert raised.value.error_code == 28053
    content["candidates"]["filters"]["object_type"] = "events"
    check_content(TaskType.CROSS_MATCH, content)
