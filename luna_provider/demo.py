"""A first run on the embedded stack: find the faces of sample photos, cluster them, print the clusters.

With the shared sample photos (``LUNA_SAMPLE_FACES``, else ``../shared/data/faces`` from the current
folder or from the repository), an estimator task reads them from the folder, saves their faces in
a new list, and a clustering task groups that list; each cluster is printed next to the true names
(the chips' folder names, the collage's labels file matched by box overlap).

Without the photos, the demo says so and clusters synthetic descriptors instead: a few "people",
each a random point with samples scattered around it.
"""

from __future__ import annotations

import csv
import logging
import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.settings import Settings

log = logging.getLogger(__name__)

DEMO_ACCOUNT = uuid.UUID("7daa0e35-36a2-474a-8f2b-87f78b59d080")
#: fixed ids, so that running the demo again reuses its faces instead of adding copies
DEMO_LIST = uuid.uuid5(DEMO_ACCOUNT, "demo list")
HEADERS = {"Luna-Account-Id": str(DEMO_ACCOUNT)}
TASK_TIMEOUT = 900.0


def _say(message: str) -> None:
    print(f"demo: {message}", flush=True)


def sample_faces_folder() -> Path | None:
    """Return the sample photos folder, or None when there is none."""
    candidates = [
        Path.cwd().parent / "shared" / "data" / "faces",
        Path(__file__).resolve().parents[2] / "shared" / "data" / "faces",
    ]
    if os.environ.get("LUNA_SAMPLE_FACES"):
        candidates = [Path(os.environ["LUNA_SAMPLE_FACES"])]
    for folder in candidates:
        if (folder / "johns").is_dir() or (folder / "group").is_dir():
            return folder.resolve()
    return None


def _api(settings: Settings) -> str:
    return f"http://{settings.api_host}:{settings.api_port}/6"


def _create(settings: Settings, task_type: str, content: dict, description: str) -> int:
    import requests

    body = {"description": description, "content": content}
    response = requests.post(f"{_api(settings)}/tasks/{task_type}", json=body, headers=HEADERS, timeout=30)
    if response.status_code != 201:
        raise RuntimeError(f"creating the {task_type} task failed: {response.text}")
    task_id = response.json()["task_id"]
    url = f"{_api(settings)}/tasks/{task_id}"
    _say(f"created {task_type} task {task_id}: curl -H 'Luna-Account-Id: {DEMO_ACCOUNT}' {url}")
    return task_id


def _wait(settings: Settings, task_id: int) -> dict[str, Any]:
    """Wait until the task is final; return its result (raise when it did not end done)."""
    import requests

    api = _api(settings)
    deadline = time.monotonic() + TASK_TIMEOUT
    shown = None
    while time.monotonic() < deadline:
        task = requests.get(f"{api}/tasks/{task_id}", headers=HEADERS, timeout=10).json()
        progress = (task["count_task_parts_done"], task["count_task_parts_all"])
        if task["task_status"] in (2, 3, 5):
            break
        if progress != shown and progress[1]:
            _say(f"task {task_id}: {progress[0]} of {progress[1]} subtasks done")
            shown = progress
        time.sleep(1)
    else:
        raise RuntimeError(f"task {task_id} did not finish in {TASK_TIMEOUT:.0f} s")
    if task["task_status"] != 5:
        errors = requests.get(f"{api}/tasks/{task_id}/errors", headers=HEADERS, timeout=10).json()
        raise RuntimeError(f"task {task_id} ended with status {task['task_status']}: {errors}")
    return requests.get(f"{api}/tasks/{task_id}/result", headers=HEADERS, timeout=30).json()


def _new_list(engine: Engine, user_data: str) -> str:
    from sqlalchemy import insert

    from luna_provider.store.models import FaceList

    list_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            insert(FaceList).values(list_id=list_id, account_id=DEMO_ACCOUNT, user_data=user_data)
        )
    return str(list_id)


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - width * height
    return width * height / union if union > 0 else 0.0


def true_names(folder: Path, images: list[dict]) -> dict[str, str]:
    """Name each face of an estimator result: chip folder, collage label (by box overlap), or unknown."""
    labels: dict[str, list[tuple[tuple[int, ...], str]]] = {}
    labels_file = folder / "group" / "bald_guys_labels.csv"
    if labels_file.is_file():
        with open(labels_file, newline="") as stream:
            for row in csv.DictReader(stream):
                box = tuple(int(row[key]) for key in ("left", "top", "right", "bottom"))
                labels.setdefault(row["file"], []).append((box, row["identity"]))
    names = {}
    for entry in images:
        for face in entry["faces"]:
            if not face["face_id"]:
                continue
            rect = face["bbox"]
            box = (rect["x"], rect["y"], rect["x"] + rect["width"], rect["y"] + rect["height"])
            name = f"unknown from {entry['image'].rsplit('/', 1)[-1]}"
            if entry["image"].startswith("johns/"):
                name = entry["image"].split("/")[1]
            for labelled, identity in labels.get(entry["image"], []):
                if _overlap(box, labelled) >= 0.5:
                    name = identity
            names[face["face_id"]] = name
    return names


def run_demo(settings: Settings) -> dict:
    """Run the demo on the sample photos, or on synthetic faces when the photos are absent."""
    folder = sample_faces_folder()
    if folder is None:
        _say(
            "no sample photos (set LUNA_SAMPLE_FACES or put them in ../shared/data/faces): "
            "clustering synthetic descriptors instead"
        )
        return run_synthetic_demo(settings)
    return run_photo_demo(settings, folder)


def run_photo_demo(settings: Settings, folder: Path) -> dict:
    """Estimate the faces of the photos in ``folder``, cluster them and print them with true names."""
    from luna_provider.store.db import get_engine

    list_id = _new_list(get_engine(settings.database_url), "demo photos")
    _say(f"finding the faces of the photos in {folder} (list {list_id})")
    started = time.monotonic()
    estimator_id = _create(
        settings,
        "estimator",
        {
            "source": {"source_type": "network_disk", "path": str(folder), "recursive": True},
            "handler": {"policies": {"storage_policy": {"face_policy": {"link_to_lists": [list_id]}}}},
        },
        "demo: faces of the sample photos",
    )
    estimated = _wait(settings, estimator_id)
    summary = estimated["result"]
    _say(
        f"estimator task {estimator_id} done in {time.monotonic() - started:.0f} s: "
        f"{summary['total_faces']} faces in {summary['total_images']} images"
    )
    for entry in summary["images"]:
        if entry["error"]:
            _say(f"  {entry['image']}: {entry['error']['detail']}")
    names = true_names(folder, summary["images"])

    clustering_id = _create(
        settings, "clustering", {"filters": {"object_type": "faces", "list_id": list_id}}, "demo: who is who"
    )
    clusters = _wait(settings, clustering_id)["result"]["clusters"]
    threshold = settings.default_clustering_threshold
    _say(f"clustering task {clustering_id}: {len(clusters)} clusters (threshold {threshold})")
    for number, cluster in enumerate(clusters, 1):
        people = Counter(names.get(face_id, "?") for face_id in cluster)
        shown = ", ".join(f"{name} x{count}" for name, count in people.most_common())
        print(f"  cluster {number}: {len(cluster)} faces: {shown}", flush=True)
    return {"estimator": estimated, "clusters": clusters, "names": names}


def synthetic_faces(people: int = 5, per_person: int = 12, seed: int = 7) -> list[dict]:
    """Return import records of ``people`` identities with ``per_person`` descriptors each."""
    import numpy as np

    from luna_provider.compute.descriptors import DLIB_RESNET_V1

    rng = np.random.default_rng(seed)
    records = []
    for person in range(people):
        # identities sit about 1.0 apart, samples within about 0.25 of their centre (dlib scale)
        centre = rng.normal(size=DLIB_RESNET_V1.length)
        centre *= 0.7 / np.linalg.norm(centre)
        for sample in range(per_person):
            noise = rng.normal(size=DLIB_RESNET_V1.length)
            vector = centre + noise * (0.1 / np.linalg.norm(noise))
            records.append(
                {
                    "face_id": str(uuid.uuid5(DEMO_ACCOUNT, f"p{person + 1}-{sample + 1}")),
                    "descriptor": vector.round(6).tolist(),
                    "user_data": f"person {person + 1}",
                    "external_id": f"p{person + 1}-{sample + 1}",
                }
            )
    return records


def run_synthetic_demo(settings: Settings) -> dict:
    """Import synthetic faces, cluster them through the API and print the clusters."""
    from sqlalchemy import select

    from luna_provider.compute.descriptors import DLIB_RESNET_V1
    from luna_provider.importer import import_faces
    from luna_provider.store.db import get_engine
    from luna_provider.store.models import Face

    engine = get_engine(settings.database_url)
    records = synthetic_faces()
    list_id = str(DEMO_LIST)
    for record in records:
        record["list_ids"] = [list_id]
    report = import_faces(engine, DEMO_ACCOUNT, enumerate(records, 1), DLIB_RESNET_V1)
    _say(f"imported {report.faces} synthetic faces of 5 people into list {list_id}")
    started = time.monotonic()
    task_id = _create(
        settings, "clustering", {"filters": {"object_type": "faces", "list_id": list_id}}, "demo clustering"
    )
    result = _wait(settings, task_id)
    with engine.connect() as connection:
        names = {
            str(face_id): user_data
            for face_id, user_data in connection.execute(
                select(Face.face_id, Face.user_data).where(Face.account_id == DEMO_ACCOUNT)
            )
        }
    _say(
        f"task {task_id} done in {time.monotonic() - started:.1f} s: "
        f"{result['result']['total_clusters']} clusters"
    )
    for number, cluster in enumerate(result["result"]["clusters"]):
        people = Counter(names.get(face_id, "?") for face_id in cluster)
        print(
            f"  cluster {number}: {len(cluster)} faces: " + ", ".join(f"{k} x{v}" for k, v in people.items()),
            flush=True,
        )
    return result


def run_demo_in_background(settings: Settings) -> threading.Thread:
    """Run :func:`run_demo` in a thread, logging rather than raising its failure."""

    def target() -> None:
        try:
            run_demo(settings)
        except Exception:
            log.exception("demo failed")

    thread = threading.Thread(target=target, name="luna-demo", daemon=True)
    thread.start()
    return thread
