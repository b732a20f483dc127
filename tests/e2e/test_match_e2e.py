"""Cross-match and ROC tasks through the real stack: import faces with the CLI, create over HTTP."""

from __future__ import annotations

import base64
import time
import uuid

import numpy as np
import pytest
import requests
from scipy.spatial.distance import cdist
from sklearn.metrics import roc_auc_score

from tests.e2e.test_tasks_e2e import import_file, wait_final


@pytest.fixture(scope="module")
def account() -> dict[str, str]:
    return {"Luna-Account-Id": str(uuid.uuid4())}


def similarity(a: list[dict], b: list[dict]) -> np.ndarray:
    vectors_a = np.asarray([r["descriptor"] for r in a], dtype=np.float32).astype(np.float64)
    vectors_b = np.asarray([r["descriptor"] for r in b], dtype=np.float32).astype(np.float64)
    return np.clip(1.0 - cdist(vectors_a, vectors_b) / 1.2, 0.0, 1.0)


def faces_of(people: int, per_person: int, seed: int, list_id: str, spread: float = 0.03) -> list[dict]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128))
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)
    label = np.repeat(np.arange(people), per_person)
    noise = rng.normal(size=(len(label), 128)) * rng.uniform(0.3, 1.7, size=(len(label), 1)) * spread
    vectors = (centres[label] + noise).astype(np.float32)
    return [
        {
            "face_id": str(uuid.uuid4()),
            "descriptor": vector.tolist(),
            "list_ids": [list_id],
            "user_data": f"p{p}",
        }
        for vector, p in zip(vectors, label, strict=True)
    ]


def test_cross_match_task_runs_on_airflow(luna_stack, account, tmp_path) -> None:
    api = luna_stack.api_url
    references_list, candidates_list = str(uuid.uuid4()), str(uuid.uuid4())
    references = faces_of(8, 3, seed=31, list_id=references_list)
    candidates = faces_of(8, 6, seed=31, list_id=candidates_list)
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], references + candidates)
    body = {
        "content": {
            "references": {"filters": {"object_type": "faces", "list_id": references_list}},
            "candidates": {"filters": {"object_type": "faces", "list_id": candidates_list}},
            "threshold": 0.5,
            "limit": 4,
        }
    }

    started = time.monotonic()
    response = requests.post(f"{api}/6/tasks/cross_match", json=body, headers=account, timeout=30)
    assert response.status_code == 201, response.text
    task = wait_final(api, response.json()["task_id"], account)
    elapsed = time.monotonic() - started

    assert task["task_status"] == 5, luna_stack.log_tails()
    result = requests.get(f"{api}/6/tasks/{task['task_id']}/result", headers=account, timeout=30).json()
    assert result["errors"] == []
    matrix = similarity(references, candidates)
    by_reference = {item["reference_id"]: item["candidates"] for item in result["result"]}
    assert set(by_reference) == {r["face_id"] for r in references}
    for i, reference in enumerate(references):
        expected = sorted(
            (j for j in range(len(candidates)) if matrix[i, j] >= 0.5),
            key=lambda j: (-matrix[i, j], candidates[j]["face_id"]),
        )[:4]
        got = by_reference[reference["face_id"]]
        assert [c["candidate_id"] for c in got] == [candidates[j]["face_id"] for j in expected]
        np.testing.assert_allclose([c["similarity"] for c in got], matrix[i, expected], atol=1e-12)
    assert sum(len(c) for c in by_reference.values()) > len(references)  # real matches were found
    print(f"cross-match of {len(references)} x {len(candidates)} faces: create to done in {elapsed:.1f} s")


def test_roc_task_runs_on_airflow(luna_stack, account, tmp_path) -> None:
    api = luna_stack.api_url
    faces = faces_of(12, 8, seed=32, list_id=str(uuid.uuid4()), spread=0.045)
    import_file(luna_stack, tmp_path, account["Luna-Account-Id"], faces)
    markup = [{"object_id": f["face_id"], "label": f["user_data"]} for f in faces]
    body = {
        "content": {
            "markup": {"items": markup, "object_type": "faces"},
            "threshold_hit_top": 0.3,
            "limit": 3,
            "key_FPRs": [0.01, 0.1],
        }
    }

    started = time.monotonic()
    response = requests.post(f"{api}/6/tasks/roc", json=body, headers=account, timeout=30)
    assert response.status_code == 201, response.text
    task = wait_final(api, response.json()["task_id"], account)
    elapsed = time.monotonic() - started

    assert task["task_status"] == 5, luna_stack.log_tails()
    result = requests.get(f"{api}/6/tasks/{task['task_id']}/result", headers=account, timeout=30).json()
    roc = result["result"]
    matrix = similarity(faces, faces)
    upper = np.triu_indices(len(faces), k=1)
    labels = np.asarray([f["user_data"] for f in faces])
    same = labels[upper[0]] == labels[upper[1]]
    scores = np.round(matrix[upper] * 2.0**20) / 2.0**20
    assert (roc["total_objects"], roc["labels"]) == (96, 12)
    assert (roc["positive_pairs"], roc["negative_pairs"]) == (int(same.sum()), int((~same).sum()))
    assert abs(roc["auc"] - roc_auc_score(same, scores)) < 1e-9
    assert 0.5 < roc["auc"] < 1.0
    assert [point["key_fpr"] for point in roc["key_FPRs"]] == [0.01, 0.1]
    assert [item["n"] for item in roc["top_n"]] == [1, 2, 3]
    np.fill_diagonal(matrix, -np.inf)
    top1 = np.argmax(matrix, axis=1)
    hits = np.count_nonzero((labels[top1] == labels) & (matrix[np.arange(96), top1] >= 0.3))
    assert roc["top_n"][0]["hits"] == hits
    assert base64.b64decode(roc["plot_png_base64"]).startswith(b"\x89PNG")
    print(f"ROC of {len(faces)} faces: create to done in {elapsed:.1f} s, AUC {roc['auc']:.4f}")
