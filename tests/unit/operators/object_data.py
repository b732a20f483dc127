"""Random faces, events, descriptors and samples for the linker and garbage-collection tests.

Records are plain dicts kept by the test, so expectations are computed from them in Python
(:func:`face_matches`, :func:`event_matches`), independently of the SQL filters under test.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import insert, select

from luna_provider.storage import ObjectStore
from luna_provider.store.models import (
    Event,
    EventDescriptor,
    Face,
    FaceDescriptor,
    FaceList,
    ListFace,
    Sample,
)

START = datetime(2024, 3, 1, tzinfo=UTC)
USER_DATA = ("staff", "guest", "")
EXTERNAL_IDS = ("ext-1", "ext-2", "ext-3", None)
SOURCES = ("cam-1", "cam-2", "cam-3")
TAGS = ("entrance", "exit", "vip")
CITIES = ("Berlin", "Paris", None)


@dataclass
class Data:
    """What a test inserted, as plain records."""

    faces: list[dict] = field(default_factory=list)
    events: list[dict] = field(default_factory=list)
    #: list_id -> account
    lists: dict[uuid.UUID, uuid.UUID] = field(default_factory=dict)
    #: (list_id, face_id)
    links: set[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=set)
    #: face_id -> {version: bytes}
    face_descriptors: dict[uuid.UUID, dict[int, bytes]] = field(default_factory=dict)
    #: event_id -> {(type, version): bytes}
    event_descriptors: dict[uuid.UUID, dict[tuple[str, int], bytes]] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)


def descriptor(rng: np.random.Generator, length: int = 128) -> bytes:
    return rng.normal(size=length).astype("<f4").tobytes()


def add_lists(engine: Any, data: Data, account: uuid.UUID, count: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    with engine.begin() as connection:
        connection.execute(
            insert(FaceList),
            [{"list_id": i, "account_id": account, "last_update_time": START} for i in ids],
        )
    data.lists.update(dict.fromkeys(ids, account))
    return ids


def add_faces(
    engine: Any,
    store: ObjectStore,
    data: Data,
    account: uuid.UUID,
    count: int,
    rng: np.random.Generator,
    *,
    lists: list[uuid.UUID] = (),
    versions: tuple[int, ...] = (201, 202),
    samples: int = 1,
) -> list[dict]:
    """Insert faces with descriptors of ``versions``, random list links and ``samples`` samples each."""
    faces, descriptors, links, sample_rows = [], [], [], []
    offset = len(data.faces)
    for index in range(count):
        face = {
            "face_id": uuid.uuid4(),
            "account_id": account,
            "user_data": USER_DATA[rng.integers(len(USER_DATA))],
            "external_id": EXTERNAL_IDS[rng.integers(len(EXTERNAL_IDS))],
            "create_time": START + timedelta(minutes=offset + index),
            "last_update_time": START,
        }
        faces.append(face)
        data.face_descriptors[face["face_id"]] = {}
        for version in versions:
            blob = descriptor(rng)
            data.face_descriptors[face["face_id"]][version] = blob
            descriptors.append(
                {"face_id": face["face_id"], "descriptor_version": version, "descriptor": blob}
            )
        for list_id in lists:
            if rng.random() < 0.5:
                links.append({"list_id": list_id, "face_id": face["face_id"]})
        for _ in range(samples):
            sample_rows.append(_sample(store, account, face_id=face["face_id"]))
    with engine.begin() as connection:
        connection.execute(insert(Face), faces)
        if descriptors:
            connection.execute(insert(FaceDescriptor), descriptors)
        if links:
            connection.execute(insert(ListFace), links)
        if sample_rows:
            connection.execute(insert(Sample), sample_rows)
    data.faces.extend(faces)
    data.links.update((link["list_id"], link["face_id"]) for link in links)
    data.samples.extend(sample_rows)
    return faces


def add_events(
    engine: Any,
    store: ObjectStore,
    data: Data,
    account: uuid.UUID,
    count: int,
    rng: np.random.Generator,
    *,
    face_ids: list[uuid.UUID] = (),
) -> list[dict]:
    """Insert events with random attributes, face/body descriptors and face/body samples.

    About a tenth have no face descriptor; events take a face id from ``face_ids`` at random.
    """
    events, descriptors, sample_rows = [], [], []
    offset = len(data.events)
    for index in range(count):
        created = START + timedelta(minutes=offset + index)
        tags = [tag for tag in TAGS if rng.random() < 0.4]
        event = {
            "event_id": uuid.uuid4(),
            "account_id": account,
            "create_time": created,
            "end_time": created + timedelta(seconds=int(rng.integers(1, 120))),
            "source": SOURCES[rng.integers(len(SOURCES))],
            "tags": tags,
            "meta": {"zone": {"floor": int(rng.integers(1, 4))}, "shift": ["day", "night"][rng.integers(2)]},
            "user_data": USER_DATA[rng.integers(len(USER_DATA))],
            "external_id": EXTERNAL_IDS[rng.integers(len(EXTERNAL_IDS))],
            "age": None if rng.random() < 0.1 else float(rng.integers(5, 80)),
            "gender": None if rng.random() < 0.1 else int(rng.integers(2)),
            "city": CITIES[rng.integers(len(CITIES))],
            "face_id": face_ids[rng.integers(len(face_ids))] if face_ids and rng.random() < 0.3 else None,
        }
        events.append(event)
        data.event_descriptors[event["event_id"]] = {}
        kinds = [("body", 110)]
        if rng.random() >= 0.1:
            kinds += [("face", 201), ("face", 202)]
        for kind in kinds:
            blob = descriptor(rng)
            data.event_descriptors[event["event_id"]][kind] = blob
            descriptors.append(
                {
                    "event_id": event["event_id"],
                    "descriptor_type": kind[0],
                    "descriptor_version": kind[1],
                    "descriptor": blob,
                }
            )
        # the face sample of an event with a face is shared with that face, as the linker leaves it
        sample_rows.append(
            _sample(store, account, event_id=event["event_id"], face_id=event["face_id"], sample_type="face")
        )
        sample_rows.append(_sample(store, account, event_id=event["event_id"], sample_type="body"))
    with engine.begin() as connection:
        connection.execute(insert(Event), events)
        connection.execute(insert(EventDescriptor), descriptors)
        connection.execute(insert(Sample), sample_rows)
    data.events.extend(events)
    data.samples.extend(sample_rows)
    return events


def _sample(
    store: ObjectStore,
    account: uuid.UUID,
    *,
    face_id: uuid.UUID | None = None,
    event_id: uuid.UUID | None = None,
    sample_type: str = "face",
) -> dict:
    sample_id = uuid.uuid4()
    key = f"samples/{account}/{sample_id}.jpg"
    with store.open(key, "wb") as stream:
        stream.write(b"\xff\xd8 sample " + sample_id.bytes)
    return {
        "sample_id": sample_id,
        "account_id": account,
        "sample_type": sample_type,
        "face_id": face_id,
        "event_id": event_id,
        "storage_key": key,
        "size": 26,
    }


# -- independent filter semantics -----------------------------------------------------------------


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _common(record: dict, filters: dict, account: uuid.UUID) -> bool:
    if record["account_id"] != account:
        return False
    if "account_id" in filters and str(filters["account_id"]) != str(account):
        return False
    if "create_time__gte" in filters and record["create_time"] < _time(filters["create_time__gte"]):
        return False
    if "create_time__lt" in filters and record["create_time"] >= _time(filters["create_time__lt"]):
        return False
    if "user_data" in filters and record["user_data"] != filters["user_data"]:
        return False
    return "external_ids" not in filters or record["external_id"] in filters["external_ids"]


def face_matches(face: dict, filters: dict, account: uuid.UUID, links: set[tuple]) -> bool:
    """Tell whether a face record matches the face filters of the spec."""
    if not _common(face, filters, account):
        return False
    face_id = face["face_id"]
    if "face_ids" in filters and str(face_id) not in {str(item) for item in filters["face_ids"]}:
        return False
    if "face_id__gte" in filters and face_id.int < uuid.UUID(filters["face_id__gte"]).int:
        return False
    if "face_id__lt" in filters and face_id.int >= uuid.UUID(filters["face_id__lt"]).int:
        return False
    return "list_id" not in filters or (uuid.UUID(filters["list_id"]), face_id) in links


def _meta_value(meta: dict, path: str) -> Any:
    node: Any = meta
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return object()
        node = node[key]
    return node


def event_matches(event: dict, filters: dict, account: uuid.UUID) -> bool:
    """Tell whether an event record matches the event filters of the spec."""
    if not _common(event, filters, account):
        return False
    if "event_ids" in filters and str(event["event_id"]) not in set(filters["event_ids"]):
        return False
    if "sources" in filters and event["source"] not in filters["sources"]:
        return False
    if "tags" in filters and not set(event["tags"]) & set(filters["tags"]):
        return False
    if "cities" in filters and event["city"] not in filters["cities"]:
        return False
    if "gender" in filters and event["gender"] != filters["gender"]:
        return False
    age = event["age"]
    if "age__gte" in filters and (age is None or age < filters["age__gte"]):
        return False
    if "age__lt" in filters and (age is None or age >= filters["age__lt"]):
        return False
    if "end_time__lt" in filters and event["end_time"] >= _time(filters["end_time__lt"]):
        return False
    for path, value in (filters.get("meta") or {}).items():
        if _meta_value(event["meta"], path) != value:
            return False
    return True


# -- reading the database back ----------------------------------------------------------------------


def column_set(engine: Any, *columns: Any, where: Any = None) -> set:
    query = select(*columns)
    if where is not None:
        query = query.where(where)
    with engine.connect() as connection:
        rows = connection.execute(query).all()
    return {row[0] if len(columns) == 1 else tuple(row) for row in rows}


def run_task(
    operator_class: type,
    engine: Any,
    store: ObjectStore,
    task_id: int,
    monkeypatch: Any,
    **settings: str,
) -> list[dict]:
    """Run the three phases the way the DAG does, each as its own operator instance."""
    from luna_provider.settings import load

    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    kwargs = {"engine": engine, "store": store, "settings": load()}
    parts = operator_class(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        operator_class(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    operator_class(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    return parts
