"""Selecting the faces and events a task works on, and streaming their descriptors.

Filters arrive as the task content gives them (see the ``*_filters`` schemas of the spec). Every
query is scoped to the task's account whatever the filters say.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, Select, Text, and_, exists, false, select
from sqlalchemy.dialects.postgresql import array
from sqlalchemy.sql.elements import ColumnElement

from luna_provider.store.models import Event, EventDescriptor, Face, FaceDescriptor, FaceList, ListFace

#: event filters over plain columns: filter name -> (column, operator)
_EVENT_COLUMNS: dict[str, tuple[str, str]] = {
    "create_time__gte": ("create_time", "gte"),
    "create_time__lt": ("create_time", "lt"),
    "end_time__gte": ("end_time", "gte"),
    "end_time__lt": ("end_time", "lt"),
    "event_ids": ("event_id", "in"),
    "handler_ids": ("handler_id", "in"),
    "sources": ("source", "in"),
    "external_ids": ("external_id", "in"),
    "face_ids": ("face_id", "in"),
    "user_data": ("user_data", "eq"),
    "track_ids": ("track_id", "in"),
    "stream_ids": ("stream_id", "in"),
    "age__gte": ("age", "gte"),
    "age__lt": ("age", "lt"),
    "gender": ("gender", "eq"),
    "emotions": ("emotion", "in"),
    "ethnic_groups": ("ethnic_group", "in"),
    "cities": ("city", "in"),
    "areas": ("area", "in"),
    "districts": ("district", "in"),
    "streets": ("street", "in"),
    "house_numbers": ("house_number", "in"),
}

_FACE_COLUMNS: dict[str, tuple[str, str]] = {
    "create_time__gte": ("create_time", "gte"),
    "create_time__lt": ("create_time", "lt"),
    "face_ids": ("face_id", "in"),
    "external_ids": ("external_id", "in"),
    "user_data": ("user_data", "eq"),
    "face_id__gte": ("face_id", "gte"),
    "face_id__lt": ("face_id", "lt"),
}


def _condition(column: Any, operator: str, value: Any) -> ColumnElement[bool]:
    if operator == "gte":
        return column >= value
    if operator == "lt":
        return column < value
    if operator == "in":
        return column.in_(value)
    return column == value


def _conditions(model: type, mapping: dict[str, tuple[str, str]], filters: dict) -> list:
    conditions = []
    for name, value in filters.items():
        if name in mapping and value is not None:
            column_name, operator = mapping[name]
            conditions.append(_condition(getattr(model, column_name), operator, value))
    return conditions


def names_other_account(account_id: uuid.UUID, filters: dict | None) -> bool:
    """Tell whether the filters name an account other than the task's (then nothing is selected)."""
    named = (filters or {}).get("account_id")
    return named is not None and str(named).lower() != str(account_id).lower()


def _nested(meta: dict) -> dict | None:
    """Turn ``{"a.b": v}`` (dot-separated paths) into ``{"a": {"b": v}}`` for JSONB containment.

    Return None when two paths contradict each other (``a`` equal to a value and ``a.b`` to another):
    no event can match both.
    """
    nested: dict = {}
    for path, value in meta.items():
        *parents, leaf = path.split(".")
        node = nested
        for key in parents:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                return None
        if leaf in node and node[leaf] != value:
            return None
        node[leaf] = value
    return nested


def face_conditions(account_id: uuid.UUID, filters: dict, default_upper: datetime | None) -> list:
    """Return the WHERE conditions selecting an account's faces by ``filters``."""
    conditions = [Face.account_id == account_id, *_conditions(Face, _FACE_COLUMNS, filters)]
    if names_other_account(account_id, filters):
        conditions.append(false())
    if "create_time__lt" not in filters and default_upper is not None:
        conditions.append(Face.create_time < default_upper)
    if filters.get("list_id"):
        conditions.append(
            exists().where(and_(ListFace.face_id == Face.face_id, ListFace.list_id == filters["list_id"]))
        )
    return conditions


def event_conditions(account_id: uuid.UUID, filters: dict, default_upper: datetime | None) -> list:
    """Return the WHERE conditions selecting an account's events by ``filters``."""
    conditions = [Event.account_id == account_id, *_conditions(Event, _EVENT_COLUMNS, filters)]
    if names_other_account(account_id, filters):
        conditions.append(false())
    if "create_time__lt" not in filters and default_upper is not None:
        conditions.append(Event.create_time < default_upper)
    if filters.get("tags"):
        # ?| takes a text[]: a plain list parameter would be bound as jsonb and fail
        conditions.append(Event.tags.has_any(array([str(tag) for tag in filters["tags"]], type_=Text)))
    if filters.get("meta"):
        nested = _nested(filters["meta"])
        conditions.append(false() if nested is None else Event.meta.contains(nested))
    return conditions


def descriptor_select(
    account_id: uuid.UUID,
    filters: dict,
    *,
    descriptor_version: int,
    descriptor_type: str = "face",
    default_upper: datetime | None = None,
    limit: int | None = None,
) -> Select:
    """Return a query of ``(object_id, track_id, descriptor)`` rows in a stable order.

    ``filters["object_type"]`` (or ``objects_type``) picks faces or events; only objects that have a
    descriptor of ``descriptor_version`` are selected.
    """
    object_type = filters.get("object_type") or filters.get("objects_type") or "faces"
    if object_type == "faces":
        query = (
            select(Face.face_id, None, FaceDescriptor.descriptor)
            .join(FaceDescriptor, FaceDescriptor.face_id == Face.face_id)
            .where(FaceDescriptor.descriptor_version == descriptor_version)
            .where(*face_conditions(account_id, filters, default_upper))
            .order_by(Face.create_time, Face.face_id)
        )
    else:
        query = (
            select(Event.event_id, Event.track_id, EventDescriptor.descriptor)
            .join(EventDescriptor, EventDescriptor.event_id == Event.event_id)
            .where(EventDescriptor.descriptor_version == descriptor_version)
            .where(EventDescriptor.descriptor_type == descriptor_type)
            .where(*event_conditions(account_id, filters, default_upper))
            .order_by(Event.create_time, Event.event_id)
        )
    if limit is not None:
        query = query.limit(limit)
    return query


def list_exists(engine: Engine, account_id: uuid.UUID, list_id: uuid.UUID | str) -> bool:
    """Tell whether the list ``list_id`` exists and belongs to the account."""
    with engine.connect() as connection:
        found = connection.scalar(
            select(FaceList.list_id).where(
                FaceList.list_id == uuid.UUID(str(list_id)), FaceList.account_id == account_id
            )
        )
    return found is not None


def stream_rows(engine: Engine, query: Select, batch_size: int) -> Iterator[list[tuple]]:
    """Yield the rows of ``query`` in batches through a server-side cursor."""
    with engine.connect() as connection:
        result = connection.execution_options(stream_results=True, yield_per=batch_size).execute(query)
        for partition in result.partitions(batch_size):
            yield [tuple(row) for row in partition]
