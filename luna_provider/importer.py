"""Load faces with descriptors from a JSON Lines file into the service database.

Each line is one face::

    {"descriptor": [0.01, ...], "face_id": "<uuid>", "external_id": "p1", "user_data": "Ann",
     "list_ids": ["<uuid>"], "create_time": "2024-05-01T10:00:00+00:00"}

Only ``descriptor`` is required (a list of floats, or base64 of little-endian float32 bytes).
Lists that do not exist yet are created for the account.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert

from luna_provider.store.models import Face, FaceDescriptor, FaceList, ListFace

if TYPE_CHECKING:
    from sqlalchemy import Connection, Engine

    from luna_provider.compute.descriptors import DescriptorVersion

_FIELDS = {"descriptor", "face_id", "external_id", "user_data", "list_ids", "create_time", "age", "gender"}


class ImportLineError(ValueError):
    """A line of the import file is not a valid face."""


@dataclass
class ImportReport:
    """What an import did."""

    faces: int = 0
    lists_created: int = 0
    rejected: list[str] = field(default_factory=list)


def _descriptor(value: Any, version: DescriptorVersion) -> bytes:
    import numpy as np

    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except ValueError:
            raise ImportLineError("descriptor is not valid base64") from None
        vector = np.frombuffer(data, dtype="<f4") if len(data) % 4 == 0 else np.empty(0)
    elif isinstance(value, list) and all(isinstance(item, int | float) for item in value):
        vector = np.asarray(value, dtype=np.float32)
    else:
        raise ImportLineError("descriptor must be a list of numbers or base64 float32 bytes")
    if vector.shape != (version.length,) or not np.isfinite(vector).all():
        raise ImportLineError(
            f"descriptor must hold {version.length} finite numbers for version {version.version}"
        )
    return version.to_bytes(vector)


def parse_record(record: Any, version: DescriptorVersion) -> dict[str, Any]:
    """Check one record and return the columns of its face, descriptor and list ids."""
    if not isinstance(record, dict):
        raise ImportLineError("a line must be a JSON object")
    unknown = set(record) - _FIELDS
    if unknown:
        raise ImportLineError(f"unknown fields {sorted(unknown)}")
    if "descriptor" not in record:
        raise ImportLineError("descriptor is required")
    try:
        face_id = uuid.UUID(record["face_id"]) if record.get("face_id") else uuid.uuid4()
        list_ids = [uuid.UUID(item) for item in record.get("list_ids") or []]
        create_time = datetime.fromisoformat(record["create_time"]) if record.get("create_time") else None
    except (ValueError, TypeError, AttributeError) as error:
        raise ImportLineError(f"bad id or time: {error}") from None
    user_data = record.get("user_data") or ""
    external_id = record.get("external_id")
    if not isinstance(user_data, str) or len(user_data) > 128:
        raise ImportLineError("user_data must be a string of at most 128 characters")
    if external_id is not None and (not isinstance(external_id, str) or len(external_id) > 36):
        raise ImportLineError("external_id must be a string of at most 36 characters")
    face = {
        "face_id": face_id,
        "user_data": user_data,
        "external_id": external_id,
        "age": record.get("age"),
        "gender": record.get("gender"),
    }
    if create_time is not None:
        face["create_time"] = face["last_update_time"] = create_time
    return {"face": face, "descriptor": _descriptor(record["descriptor"], version), "list_ids": list_ids}


def read_lines(path: str) -> Iterator[tuple[int, Any]]:
    """Yield ``(line number, parsed JSON)`` for each non-empty line of a file."""
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, 1):
            if line.strip():
                try:
                    yield number, json.loads(line)
                except json.JSONDecodeError as error:
                    yield number, ImportLineError(f"invalid JSON: {error.msg}")


def import_faces(
    engine: Engine,
    account_id: uuid.UUID,
    lines: Iterable[tuple[int, Any]],
    version: DescriptorVersion,
    batch_size: int = 1000,
) -> ImportReport:
    """Insert the faces of ``lines`` in batches; bad lines are reported, not inserted."""
    report = ImportReport()
    batch: list[dict[str, Any]] = []
    for number, record in lines:
        try:
            if isinstance(record, ImportLineError):
                raise record
            batch.append(parse_record(record, version))
        except ImportLineError as error:
            report.rejected.append(f"line {number}: {error}")
            continue
        if len(batch) >= batch_size:
            _insert_batch(engine, account_id, batch, version, report)
            batch = []
    if batch:
        _insert_batch(engine, account_id, batch, version, report)
    return report


def _ensure_lists(connection: Connection, account_id: uuid.UUID, list_ids: set[uuid.UUID]) -> int:
    existing = dict(
        connection.execute(
            select(FaceList.list_id, FaceList.account_id).where(FaceList.list_id.in_(list_ids))
        ).all()
    )
    foreign = [str(list_id) for list_id, owner in existing.items() if owner != account_id]
    if foreign:
        raise ImportLineError(f"lists {foreign} belong to another account")
    missing = list_ids - set(existing)
    if missing:
        connection.execute(
            insert(FaceList), [{"list_id": item, "account_id": account_id} for item in missing]
        )
    return len(missing)


def _insert_batch(
    engine: Engine,
    account_id: uuid.UUID,
    batch: list[dict[str, Any]],
    version: DescriptorVersion,
    report: ImportReport,
) -> None:
    with engine.begin() as connection:
        list_ids = {list_id for item in batch for list_id in item["list_ids"]}
        if list_ids:
            report.lists_created += _ensure_lists(connection, account_id, list_ids)
        connection.execute(
            pg_insert(Face).on_conflict_do_nothing(),
            [{**item["face"], "account_id": account_id, "avatar": ""} for item in batch],
        )
        owned = set(
            connection.scalars(
                select(Face.face_id).where(
                    Face.face_id.in_([item["face"]["face_id"] for item in batch]),
                    Face.account_id == account_id,
                )
            )
        )
        rows = [item for item in batch if item["face"]["face_id"] in owned]
        for item in batch:
            if item["face"]["face_id"] not in owned:
                report.rejected.append(f"face {item['face']['face_id']} belongs to another account")
        if rows:
            connection.execute(
                pg_insert(FaceDescriptor).on_conflict_do_nothing(),
                [
                    {
                        "face_id": item["face"]["face_id"],
                        "descriptor_version": version.version,
                        "descriptor": item["descriptor"],
                    }
                    for item in rows
                ],
            )
            links = [
                {"list_id": list_id, "face_id": item["face"]["face_id"]}
                for item in rows
                for list_id in item["list_ids"]
            ]
            if links:
                connection.execute(pg_insert(ListFace).on_conflict_do_nothing(), links)
        report.faces += len(rows)
