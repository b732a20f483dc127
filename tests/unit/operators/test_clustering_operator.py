from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from airflow.sdk.exceptions import AirflowFailException
from sklearn.cluster import DBSCAN
from sklearn.metrics import pairwise_distances
from sqlalchemy import select, update

from luna_provider import lifecycle
from luna_provider.compute.descriptors import DLIB_RESNET_V1
from luna_provider.importer import import_faces
from luna_provider.operators.clustering import LunaClusteringOperator
from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.models import Subtask, Task, TaskError
from luna_provider.submission import store_task
from luna_provider.task_types import TaskType


def make_faces(count: int, people: int, seed: int) -> tuple[list[dict], np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128))
    centres *= 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)
    vectors = centres[rng.integers(0, people, size=count)] + rng.normal(scale=0.03, size=(count, 128))
    vectors = vectors.astype(np.float32)
    start = datetime(2024, 1, 1, tzinfo=UTC)
    records = [
        {
            "face_id": str(uuid.uuid4()),
            "descriptor": vector.tolist(),
            "create_time": (start + timedelta(seconds=index)).isoformat(),
        }
        for index, vector in enumerate(vectors)
    ]
    return records, vectors


def reference_clusters(records: list[dict], vectors: np.ndarray, threshold: float) -> set[frozenset[str]]:
    distances = pairwise_distances(vectors.astype(np.float64))
    eps = np.nextafter(DLIB_RESNET_V1.threshold_distance(threshold), 0)
    labels = DBSCAN(eps=eps, min_samples=1, metric="precomputed").fit_predict(distances)
    groups: dict[int, set[str]] = {}
    for record, label in zip(records, labels, strict=True):
        groups.setdefault(label, set()).add(record["face_id"])
    return {frozenset(group) for group in groups.values()}


def run_task(
    engine: Any, store: ObjectStore, task_id: int, monkeypatch: pytest.MonkeyPatch, **settings: str
) -> Any:
    """Run the three phases the way the DAG does, each as its own operator instance."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    config = load()
    kwargs = {"engine": engine, "store": store, "settings": config}
    parts = LunaClusteringOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        LunaClusteringOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaClusteringOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    return parts


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


@pytest.mark.parametrize(("subtask_size", "block"), [("1000", "1000"), ("70", "16")])
def test_clustering_task_matches_dbscan(engine, store, account_id, monkeypatch, subtask_size, block) -> None:
    records, vectors = make_faces(240, people=9, seed=11)
    report = import_faces(engine, account_id, enumerate(records, 1), DLIB_RESNET_V1)
    assert report.faces == 240
    task_id = store_task(
        engine,
        TaskType.CLUSTERING,
        account_id,
        {"content": {"filters": {"object_type": "faces"}, "threshold": 0.5}},
    )

    parts = run_task(
        engine,
        store,
        task_id,
        monkeypatch,
        LUNA_CLUSTERING_SUBTASK_SIZE=subtask_size,
        LUNA_MATCH_BLOCK_SIZE=block,
        LUNA_MAX_SUBTASKS="512",
    )

    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    assert task.count_task_parts_all == task.count_task_parts_done == len(parts)
    assert len(parts) == -(-240 // int(subtask_size))
    result = store.get_json(task.result_key)
    clusters = result["result"]["clusters"]
    assert {frozenset(cluster) for cluster in clusters} == reference_clusters(records, vectors, 0.5)
    assert result["result"]["total_objects"] == 240
    assert result["result"]["total_clusters"] == len(clusters)
    assert [len(c) for c in clusters] == sorted((len(c) for c in clusters), reverse=True)
    assert not store.exists(f"work/task_{task_id}")


def test_filters_limit_and_accounts(engine, store, account_id, monkeypatch) -> None:

    records, _ = make_faces(30, people=3, seed=2)
    list_id = str(uuid.uuid4())
    for record in records[:20]:
        record["list_ids"] = [list_id]
    import_faces(engine, account_id, enumerate(records, 1), DLIB_RESNET_V1)
    stranger, _ = make_faces(10, people=1, seed=3)
    import_faces(engine, uuid.uuid4(), enumerate(stranger, 1), DLIB_RESNET_V1)

    def clustered(content: dict) -> set[str]:
        task_id = store_task(engine, TaskType.CLUSTERING, account_id, {"content": content})
        run_task(engine, store, task_id, monkeypatch)
        result = store.get_json(lifecycle.get_task(engine, task_id).result_key)["result"]
        return {face for cluster in result["clusters"] for face in cluster}

    ids = [record["face_id"] for record in records]
    assert clustered({"filters": {"object_type": "faces"}}) == set(ids)
    assert clustered({"filters": {"object_type": "faces", "list_id": list_id}}) == set(ids[:20])
    assert clustered({"filters": {"object_type": "faces"}, "limit": 5}) == set(ids[:5])
    assert clustered(
        {"filters": {"object_type": "faces", "create_time__gte": records[25]["create_time"]}}
    ) == set(ids[25:])
    assert clustered({"filters": {"object_type": "faces", "face_ids": ids[3:6]}}) == set(ids[3:6])


def test_empty_selection_gives_empty_result(engine, store, account_id, monkeypatch) -> None:

    task_id = store_task(
        engine, TaskType.CLUSTERING, account_id, {"content": {"filters": {"object_type": "faces"}}}
    )

    assert run_task(engine, store, task_id, monkeypatch) == []

    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    assert store.get_json(task.result_key)["result"] == {
        "clusters": [],
        "total_objects": 0,
        "total_clusters": 0,
    }


def test_cancelled_task_is_not_resumed(engine, store, account_id, monkeypatch) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    records, _ = make_faces(10, people=2, seed=4)
    import_faces(engine, account_id, enumerate(records, 1), DLIB_RESNET_V1)
    task_id = store_task(
        engine, TaskType.CLUSTERING, account_id, {"content": {"filters": {"object_type": "faces"}}}
    )
    kwargs = {"engine": engine, "store": store, "settings": load()}
    parts = LunaClusteringOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)

    lifecycle.cancel_task(engine, task_id)

    with pytest.raises(AirflowSkipException):
        LunaClusteringOperator(task_id="subtask", phase="subtask", part=parts[0]).run_phase(task_id, **kwargs)
    with pytest.raises(AirflowSkipException):
        LunaClusteringOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 2
    with engine.connect() as connection:
        assert connection.scalars(select(Subtask.subtask_status).where(Subtask.task_id == task_id)).all() == [
            2
        ]


def test_failing_step_fails_task_with_error(engine, store, account_id, monkeypatch) -> None:

    records, _ = make_faces(10, people=2, seed=4)
    import_faces(engine, account_id, enumerate(records, 1), DLIB_RESNET_V1)
    task_id = store_task(
        engine, TaskType.CLUSTERING, account_id, {"content": {"filters": {"object_type": "faces"}}}
    )
    kwargs = {"engine": engine, "store": store, "settings": load()}
    parts = LunaClusteringOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    store.delete(f"work/task_{task_id}/objects.f32")  # a lost intermediate file

    with pytest.raises(Exception, match=r"No such file|not found|FileNotFound"):
        LunaClusteringOperator(task_id="subtask", phase="subtask", part=parts[0]).run_phase(task_id, **kwargs)

    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 3
    with engine.connect() as connection:
        error = connection.execute(select(TaskError.error_code, TaskError.subtask_id)).one()
    assert error == (28042, parts[0]["subtask_id"])

    # a later mark_failed step (trigger rule one_failed) finds the task final and adds nothing, but
    # still fails so that the DAG run shows failed
    with pytest.raises(AirflowFailException):
        LunaClusteringOperator(task_id="mark_failed", phase="fail").run_phase(task_id, **kwargs)
    assert not store.exists(f"work/task_{task_id}")
    with engine.connect() as connection:
        assert len(connection.execute(select(TaskError.error_id)).all()) == 1


def test_mark_failed_step_fails_a_lost_run(engine, store, account_id) -> None:

    task_id = store_task(
        engine, TaskType.CLUSTERING, account_id, {"content": {"filters": {"object_type": "faces"}}}
    )
    with engine.begin() as connection:
        connection.execute(update(Task).where(Task.task_id == task_id).values(task_status=1))

    with pytest.raises(AirflowFailException):
        LunaClusteringOperator(task_id="mark_failed", phase="fail").run_phase(
            task_id, engine=engine, store=store, settings=load()
        )

    assert lifecycle.get_task(engine, task_id).task_status == 3
