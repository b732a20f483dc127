from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scipy.optimize import brentq
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score, roc_curve
from sqlalchemy import select

from luna_provider import lifecycle
from luna_provider.compute.descriptors import DLIB_RESNET_V1
from luna_provider.errors import LunaError
from luna_provider.importer import import_faces
from luna_provider.operators.roc import LunaRocOperator
from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.models import TaskError
from luna_provider.submission import check_content, store_task
from luna_provider.task_types import TaskType


def labelled_faces(count: int, labels: int, seed: int) -> tuple[list[dict], list[str]]:
    """Faces of ``labels`` people in pairs of look-alikes, with varying noise: the classes overlap."""
    rng = np.random.default_rng(seed)
    twins = rng.normal(size=((labels + 1) // 2, 128))
    twins *= 0.35 / np.linalg.norm(twins, axis=1, keepdims=True)
    apart = rng.normal(size=(labels, 128))
    apart *= 0.08 / np.linalg.norm(apart, axis=1, keepdims=True)
    centres = np.repeat(twins, 2, axis=0)[:labels] + apart
    label = rng.integers(0, labels, size=count)
    noise = rng.normal(size=(count, 128)) * rng.uniform(0.2, 1.8, size=(count, 1)) * 0.025
    vectors = (centres[label] + noise).astype(np.float32)
    records = [{"face_id": str(uuid.uuid4()), "descriptor": vector.tolist()} for vector in vectors]
    return records, [f"person-{value}" for value in label]


def brute_force(records: list[dict], labels: list[str], limit: int, hit_threshold: float) -> dict:
    """All pairs i < j with SciPy distances, their grid scores, and top-N hits by sorting."""
    vectors = np.asarray([r["descriptor"] for r in records], dtype=np.float64)
    similarity = np.clip(1.0 - cdist(vectors, vectors) / 1.2, 0.0, 1.0)
    upper = np.triu_indices(len(records), k=1)
    label = np.asarray(labels)
    same = label[upper[0]] == label[upper[1]]
    scores = np.round(similarity[upper] * 2.0**20) / 2.0**20
    first_hits = []
    mates = 0
    for i in range(len(records)):
        others = sorted(
            (j for j in range(len(records)) if j != i),
            key=lambda j: (-similarity[i, j], records[j]["face_id"]),
        )[:limit]
        if (label == label[i]).sum() > 1:
            mates += 1
        ranks = [
            n for n, j in enumerate(others) if label[j] == label[i] and similarity[i, j] >= hit_threshold
        ]
        first_hits.append(ranks[0] if ranks else None)
    hits = [sum(1 for rank in first_hits if rank is not None and rank < n) for n in range(1, limit + 1)]
    return {"scores": scores, "same": same, "hits": hits, "mates": mates}


def run_task(engine: Any, store: ObjectStore, task_id: int, monkeypatch: pytest.MonkeyPatch, **settings: str):
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    kwargs = {"engine": engine, "store": store, "settings": load()}
    parts = LunaRocOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        LunaRocOperator(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    LunaRocOperator(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    return parts


def markup(records: list[dict], labels: list[str]) -> dict:
    return {
        "items": [
            {"object_id": r["face_id"], "label": label} for r, label in zip(records, labels, strict=True)
        ],
        "object_type": "faces",
    }


@pytest.fixture
def store(luna_env) -> ObjectStore:
    return ObjectStore(luna_env.as_uri())


@pytest.mark.parametrize(("subtask_size", "block"), [("1000", "2048"), ("45", "13")])
def test_roc_equals_scikit_learn(engine, store, account_id, monkeypatch, subtask_size, block) -> None:
    records, labels = labelled_faces(160, labels=16, seed=1)
    import_faces(engine, account_id, enumerate(records, 1), DLIB_RESNET_V1)
    content = {
        "markup": markup(records, labels),
        "threshold_hit_top": 0.55,
        "limit": 4,
        "key_FPRs": [0.001, 0.01, 0.2],
    }
    task_id = store_task(engine, TaskType.ROC, account_id, {"content": content})

    parts = run_task(
        engine,
        store,
        task_id,
        monkeypatch,
        LUNA_ROC_SUBTASK_SIZE=subtask_size,
        LUNA_MATCH_BLOCK_SIZE=block,
        LUNA_ROC_CURVE_POINTS="100000",
    )

    assert len(parts) == -(-160 // int(subtask_size))
    task = lifecycle.get_task(engine, task_id)
    assert task.task_status == 5
    document = store.get_json(task.result_key)
    result = document["result"]
    expected = brute_force(records, labels, 4, 0.55)
    truth = expected["same"].astype(int)
    assert document["errors"] == []
    assert (result["total_objects"], result["labels"]) == (160, len(set(labels)))
    assert result["positive_pairs"] == int(truth.sum())
    assert result["negative_pairs"] == len(truth) - int(truth.sum())
    assert abs(result["auc"] - roc_auc_score(truth, expected["scores"])) < 1e-9
    fpr, tpr, thresholds = roc_curve(truth, expected["scores"])
    assert len(result["roc_curve"]) == len(fpr)
    np.testing.assert_allclose([p["fpr"] for p in result["roc_curve"]], fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose([p["tpr"] for p in result["roc_curve"]], tpr, rtol=0, atol=1e-12)
    assert [p["threshold"] for p in result["roc_curve"]] == [None, *thresholds[1:].tolist()]
    eer = brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0, xtol=1e-14)
    assert abs(result["eer"] - eer) < 1e-9
    positives, negatives = expected["scores"][truth == 1], expected["scores"][truth == 0]
    for point in result["key_FPRs"]:
        allowed = [
            t
            for t in np.unique(expected["scores"])
            if np.count_nonzero(negatives >= t) / len(negatives) <= point["key_fpr"]
        ]
        assert point["threshold"] == min(allowed)
        assert point["tpr"] == pytest.approx(np.count_nonzero(positives >= min(allowed)) / len(positives))
    assert result["references_with_mates"] == expected["mates"]
    assert [item["hits"] for item in result["top_n"]] == expected["hits"]
    assert [item["n"] for item in result["top_n"]] == [1, 2, 3, 4]
    assert result["top_n"][0]["hit_probability"] == pytest.approx(expected["hits"][0] / expected["mates"])
    assert 0 < expected["hits"][0] < expected["hits"][-1] < expected["mates"]  # the data is not trivial
    image = Image.open(io.BytesIO(base64.b64decode(result["plot_png_base64"])))
    assert (image.format, image.size) == ("PNG", (640, 480))
    assert not store.exists(f"work/task_{task_id}")


def test_missing_objects_are_reported_and_left_out(engine, store, account_id, monkeypatch) -> None:
    records, labels = labelled_faces(40, labels=5, seed=2)
    import_faces(engine, account_id, enumerate(records[:30], 1), DLIB_RESNET_V1)
    # the last ten are in another account: for this task they do not exist
    import_faces(engine, uuid.uuid4(), enumerate(records[30:], 1), DLIB_RESNET_V1)
    task_id = store_task(
        engine, TaskType.ROC, account_id, {"content": {"markup": markup(records, labels), "limit": 2}}
    )

    run_task(engine, store, task_id, monkeypatch, LUNA_ROC_CURVE_POINTS="8")

    document = store.get_json(lifecycle.get_task(engine, task_id).result_key)
    expected = brute_force(records[:30], labels[:30], 2, 0.0)
    assert document["result"]["total_objects"] == 30
    assert abs(document["result"]["auc"] - roc_auc_score(expected["same"], expected["scores"])) < 1e-9
    assert [item["hits"] for item in document["result"]["top_n"]] == expected["hits"]
    # a thinned curve: its ends and points of the full curve
    fpr, tpr, _ = roc_curve(expected["same"], expected["scores"])
    points = document["result"]["roc_curve"]
    assert 2 < len(points) <= 8 < len(fpr)
    assert (points[0]["fpr"], points[0]["tpr"], points[-1]["fpr"], points[-1]["tpr"]) == (0, 0, 1, 1)
    full = set(zip(np.round(fpr, 12), np.round(tpr, 12), strict=True))
    assert all((round(p["fpr"], 12), round(p["tpr"], 12)) in full for p in points)
    assert [e["error_code"] for e in document["errors"]] == [28050] * 10
    with engine.connect() as connection:
        missing = set(connection.scalars(select(TaskError.additional_info)))
    assert missing == {record["face_id"] for record in records[30:]}


def test_markup_without_negative_pairs_fails_the_task(engine, store, account_id, monkeypatch) -> None:
    records, _ = labelled_faces(6, labels=1, seed=3)
    import_faces(engine, account_id, enumerate(records[:3], 1), DLIB_RESNET_V1)
    labels = ["a", "a", "a", "b", "b", "b"]  # only the "a" objects exist
    task_id = store_task(engine, TaskType.ROC, account_id, {"content": {"markup": markup(records, labels)}})

    with pytest.raises(LunaError, match="no negative pairs"):
        run_task(engine, store, task_id, monkeypatch)

    assert lifecycle.get_task(engine, task_id).task_status == 3
    with engine.connect() as connection:
        codes = connection.scalars(select(TaskError.error_code).order_by(TaskError.error_id)).all()
    assert codes == [28050, 28050, 28050, 28052]


@pytest.mark.parametrize(
    ("items", "extra", "code"),
    [
        ([("x", "a"), ("y", "a"), ("x", "b")], {}, 28051),
        ([("x", "a"), ("y", "b"), ("z", "c")], {}, 28052),
        ([("x", "a"), ("y", "a")], {}, 28052),
        ([("x", "a"), ("y", "a"), ("z", "b")], {"descriptor": {"type": "body"}}, 28053),
    ],
)
def test_bad_markups_are_refused_at_creation(items: list, extra: dict, code: int) -> None:
    ids = {name: str(uuid.uuid4()) for name in "xyz"}
    content = {"markup": {"items": [{"object_id": ids[o], "label": label} for o, label in items]}, **extra}

    with pytest.raises(LunaError) as raised:
        check_content(TaskType.ROC, content)

    assert raised.value.error_code == code


def test_event_markup_with_body_descriptors_is_accepted() -> None:
    items = [{"object_id": str(uuid.uuid4()), "label": label} for label in "aab"]
    check_content(
        TaskType.ROC, {"markup": {"items": items, "object_type": "events"}, "descriptor": {"type": "body"}}
    )
