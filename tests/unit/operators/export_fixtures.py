"""Fixtures of the exporter and reporter tests: rows inserted directly, and reading the zip back.

Expected CSV cells are built here by hand from the fixture values (string formatting, not the
code under test), so the tests compare the operators' output with an independent reference.
"""

from __future__ import annotations

import csv
import io
import uuid
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from luna_provider.settings import load
from luna_provider.storage import ObjectStore
from luna_provider.store.models import Event, Face, FaceList, ListFace, Sample

START = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def run_task(
    operator_class: type,
    engine: Any,
    store: ObjectStore,
    task_id: int,
    monkeypatch: pytest.MonkeyPatch,
    **settings: str,
) -> list[dict]:
    """Run the three phases the way the DAG does, each as its own operator instance."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    kwargs = {"engine": engine, "store": store, "settings": load()}
    parts = operator_class(task_id="split", phase="split").run_phase(task_id, **kwargs)
    for part in parts:
        operator_class(task_id="subtask", phase="subtask", part=part).run_phase(task_id, **kwargs)
    operator_class(task_id="collect", phase="collect").run_phase(task_id, **kwargs)
    return parts


def read_zip(store: ObjectStore, key: str, delimiter: str = ",") -> tuple[list[list[str]], dict[str, bytes]]:
    """Return the CSV rows (header first) and the other entries of a result archive."""
    with store.open(key, "rb") as stream, zipfile.ZipFile(stream) as archive:
        assert archive.testzip() is None
        names = archive.namelist()
        csv_names = [name for name in names if name.endswith(".csv")]
        assert len(csv_names) == 1, names
        with archive.open(csv_names[0]) as entry:
            rows = list(
                csv.reader(io.TextIOWrapper(entry, encoding="utf-8", newline=""), delimiter=delimiter)
            )
        others = {name: archive.read(name) for name in names if name != csv_names[0]}
    return rows, others


def insert_faces(engine: Any, account_id: uuid.UUID, faces: list[dict]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Face), [{"account_id": account_id, **face} for face in faces])


def insert_lists(engine: Any, account_id: uuid.UUID, links: dict[uuid.UUID, list[uuid.UUID]]) -> None:
    """Create lists and link faces, the links of a face one second apart in the given order."""
    list_ids = {list_id for lists in links.values() for list_id in lists}
    with engine.begin() as connection:
        connection.execute(insert(FaceList), [{"list_id": i, "account_id": account_id} for i in list_ids])
        connection.execute(
            insert(ListFace),
            [
                {"face_id": face_id, "list_id": list_id, "link_time": START + timedelta(seconds=order)}
                for face_id, lists in links.items()
                for order, list_id in enumerate(lists)
            ],
        )


def insert_events(engine: Any, account_id: uuid.UUID, events: list[dict]) -> None:
    with engine.begin() as connection:
        connection.execute(insert(Event), [{"account_id": account_id, **event} for event in events])


def insert_sample(
    engine: Any, store: ObjectStore, account_id: uuid.UUID, data: bytes | None, **owner: Any
) -> tuple[uuid.UUID, str]:
    """Insert a sample row; write its image to the store unless ``data`` is None (a lost file)."""
    sample_id = uuid.uuid4()
    key = f"samples/{account_id}/{sample_id}.jpg"
    if data is not None:
        with store.open(key, "wb") as stream:
            stream.write(data)
    with engine.begin() as connection:
        connection.execute(
            insert(Sample).values(
                sample_id=sample_id, account_id=account_id, storage_key=key, size=len(data or b""), **owner
            )
        )
    return sample_id, key


def quoted_list(items: list[str]) -> str:
    """Return the repr-style text of a list of strings, built by hand."""
    return "[" + ", ".join(f"'{item}'" for item in items) + "]"


def assert_time_cell(cell: str, expected: datetime) -> None:
    """A time cell is ISO 8601 with an explicit offset and names the same instant."""
    parsed = datetime.fromisoformat(cell)
    assert parsed.tzinfo is not None and parsed.utcoffset() is not None, cell
    assert "T" in cell and (cell.endswith("+00:00") or cell[-6] in "+-"), cell
    assert parsed == expected
