"""A first run on the embedded stack: import sample faces, cluster them over HTTP, print the clusters.

The sample faces are synthetic descriptors: a few "people", each a random point with samples
scattered around it, close enough that the default threshold puts each person in one cluster.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from luna_provider.settings import Settings

log = logging.getLogger(__name__)

DEMO_ACCOUNT = uuid.UUID("7daa0e35-36a2-474a-8f2b-87f78b59d080")
#: fixed ids, so that running the demo again reuses its faces instead of adding copies
DEMO_LIST = uuid.uuid5(DEMO_ACCOUNT, "demo list")


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


def run_demo(settings: Settings) -> dict:
    """Import the sample faces, cluster them through the API and print the clusters."""
    import requests

    from luna_provider.compute.descriptors import DLIB_RESNET_V1
    from luna_provider.importer import import_faces
    from luna_provider.store.db import get_engine

    engine = get_engine(settings.database_url)
    records = synthetic_faces()
    list_id = str(DEMO_LIST)
    for record in records:
        record["list_ids"] = [list_id]
    report = import_faces(engine, DEMO_ACCOUNT, enumerate(records, 1), DLIB_RESNET_V1)
    print(f"demo: imported {report.faces} faces of 5 people into list {list_id}", flush=True)

    api = f"http://{settings.api_host}:{settings.api_port}/6"
    headers = {"Luna-Account-Id": str(DEMO_ACCOUNT)}
    body = {
        "description": "demo clustering",
        "content": {"filters": {"object_type": "faces", "list_id": list_id}},
    }
    started = time.monotonic()
    response = requests.post(f"{api}/tasks/clustering", json=body, headers=headers, timeout=30)
    response.raise_for_status()
    task_id = response.json()["task_id"]
    print(
        f"demo: created clustering task {task_id}: curl -H 'Luna-Account-Id: {DEMO_ACCOUNT}' "
        f"{api}/tasks/{task_id}",
        flush=True,
    )
    while True:
        task = requests.get(f"{api}/tasks/{task_id}", headers=headers, timeout=10).json()
        if task["task_status"] in (2, 3, 5):
            break
        time.sleep(0.5)
    if task["task_status"] != 5:
        print(f"demo: task {task_id} ended with status {task['task_status']}", flush=True)
        return task
    result = requests.get(f"{api}/tasks/{task_id}/result", headers=headers, timeout=30).json()
    names = {}
    from sqlalchemy import select

    from luna_provider.store.models import Face

    with engine.connect() as connection:
        names = {
            str(face_id): user_data
            for face_id, user_data in connection.execute(
                select(Face.face_id, Face.user_data).where(Face.account_id == DEMO_ACCOUNT)
            )
        }
    print(
        f"demo: task {task_id} done in {time.monotonic() - started:.1f} s: "
        f"{result['result']['total_clusters']} clusters",
        flush=True,
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
