"""The CSV columns of faces and events, and reading their cells from the database in batches.

Values are written as the Luna exporter and reporter write them: an empty value is an empty
string, a list or a dict is its Python repr (``"['a', 'b']"``, ``top_match`` as
``"{'face_id': ..., 'label': ..., 'similarity': 0.6, 'external_id': ...}"``), a time is ISO 8601
with its offset, and ``lists`` of a face is the list of its list ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from luna_provider.store.models import Event, Face, FaceList, ListFace, Sample

if TYPE_CHECKING:
    from sqlalchemy import Engine
    from sqlalchemy.sql.elements import ColumnElement

#: columns of a face export, in their default order
FACE_EXPORT_COLUMNS = (
    "face_id",
    "account_id",
    "event_id",
    "user_data",
    "create_time",
    "external_id",
    "avatar",
    "lists",
    "age",
    "gender",
)
#: columns of an event export, in their default order (the Luna exporter's CSV header)
EVENT_EXPORT_COLUMNS = (
    "event_id",
    "create_time",
    "external_id",
    "handler_id",
    "source",
    "top_match",
    "face_id",
    "gender",
    "age",
    "emotion",
    "ethnic_group",
    "user_data",
    "mask",
    "track_id",
    "city",
    "area",
    "district",
    "street",
    "house_number",
    "geo_position",
    "headwear_apparent_color",
    "lower_garment_type",
    "lower_garment_colors",
    "shoes_apparent_color",
)
#: columns a report on faces may have after ``cluster`` and ``face_id``, in their default order
FACE_REPORT_COLUMNS = ("user_data", "create_time", "lists", "external_id", "avatar", "event_id")
#: columns a report on events may have after ``cluster`` and ``event_id``, in their default order
EVENT_REPORT_COLUMNS = (
    "create_time",
    "external_id",
    "handler_id",
    "source",
    "top_match",
    "match_result",
    "face_detections",
    "face_id",
    "attach_result",
    "gender",
    "age",
    "emotion",
    "ethnic_group",
    "tags",
    "user_data",
    "city",
    "area",
    "district",
    "street",
    "house_number",
    "latitude",
    "longitude",
    "mask",
    "track_id",
    "liveness",
    "headwear_apparent_color",
    "lower_garment_type",
    "lower_garment_colors",
    "shoes_apparent_color",
)
# TODO: body attributes are not stored (the events table has no column for them), so these
# columns are always empty; filling them needs body attribute columns on events.
UNSTORED_COLUMNS = frozenset(
    {"headwear_apparent_color", "lower_garment_type", "lower_garment_colors", "shoes_apparent_color"}
)
#: key order of ``top_match`` in the Luna CSV example; JSONB does not keep the stored order
_TOP_MATCH_KEYS = ("face_id", "event_id", "label", "similarity", "external_id")


def id_column_name(object_type: str) -> str:
    """Return the id column of ``faces`` or ``events``."""
    return "face_id" if object_type == "faces" else "event_id"


def _plain(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    return value


def format_value(value: Any) -> str:
    """Return the CSV text of one value."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | tuple | dict):
        return repr(_plain(value))
    return str(value)


def _top_match(value: dict | None) -> str:
    if not value:
        return ""
    ordered = {key: value[key] for key in _TOP_MATCH_KEYS if key in value}
    ordered.update((key, item) for key, item in value.items() if key not in ordered)
    return format_value(ordered)


def cell(column: str, row: dict[str, Any]) -> str:
    """Return the CSV text of ``column`` for one object's database row."""
    if column in UNSTORED_COLUMNS:
        return ""
    if column == "top_match":
        return _top_match(row.get("top_match"))
    if column == "geo_position":
        latitude, longitude = row.get("latitude"), row.get("longitude")
        if latitude is None and longitude is None:
            return ""
        return format_value({"latitude": latitude, "longitude": longitude})
    value = row.get(column)
    if column == "age" and isinstance(value, float) and value.is_integer():
        # Luna ages are whole years; a float column must not turn 28 into "28.0"
        return str(int(value))
    return format_value(value)


@dataclass
class ObjectCells:
    """One object's CSV cells, and its samples (``(sample_id, storage_key)``) when asked for."""

    object_id: str
    cells: list[str]
    samples: list[tuple[str, str]] = field(default_factory=list)


class ObjectReader:
    """Read the CSV cells of an account's faces or events, a batch at a time.

    :param engine: the service database.
    :param account_id: every query is scoped to this account.
    :param object_type: ``faces`` or ``events``.
    :param columns: the CSV columns to fill.
    :param with_samples: also read each object's samples.
    """

    def __init__(
        self,
        engine: Engine,
        account_id: uuid.UUID,
        object_type: str,
        columns: Sequence[str],
        *,
        with_samples: bool = False,
    ) -> None:
        self.engine = engine
        self.account_id = account_id
        self.object_type = object_type
        self.columns = list(columns)
        self.with_samples = with_samples
        self.model = Face if object_type == "faces" else Event
        self.id_column = getattr(self.model, id_column_name(object_type))
        names = {id_column_name(object_type)}
        for column in self.columns:
            if column == "geo_position":
                names |= {"latitude", "longitude"}
            elif column not in UNSTORED_COLUMNS and column != "lists":
                names.add(column)
        self._selected = [getattr(self.model, name) for name in sorted(names)]

    def select_range(self, conditions: Iterable[ColumnElement[bool]]) -> Any:
        """Return the query of the objects matching ``conditions`` (the account is added), by id."""
        return (
            select(*self._selected)
            .where(self.model.account_id == self.account_id, *conditions)
            .order_by(self.id_column)
        )

    def stream(self, query: Any, batch_size: int) -> Iterator[list[ObjectCells]]:
        """Yield the objects of ``query`` (from :meth:`select_range`) in batches, in query order."""
        with self.engine.connect() as connection:
            result = connection.execution_options(stream_results=True, yield_per=batch_size).execute(query)
            for partition in result.mappings().partitions(batch_size):
                yield self._complete([dict(row) for row in partition])

    def by_ids(self, object_ids: Sequence[uuid.UUID]) -> dict[str, ObjectCells]:
        """Return the objects of ``object_ids`` that exist in the account, by id text."""
        if not object_ids:
            return {}
        with self.engine.connect() as connection:
            rows = connection.execute(
                select(*self._selected).where(
                    self.model.account_id == self.account_id, self.id_column.in_(list(object_ids))
                )
            ).mappings()
            found = self._complete([dict(row) for row in rows])
        return {item.object_id: item for item in found}

    def _complete(self, rows: list[dict[str, Any]]) -> list[ObjectCells]:
        id_name = id_column_name(self.object_type)
        ids = [row[id_name] for row in rows]
        lists = self._lists(ids) if "lists" in self.columns and ids else {}
        samples = self._samples(ids) if self.with_samples and ids else {}
        objects = []
        for row in rows:
            object_id = row[id_name]
            if "lists" in self.columns:
                row["lists"] = lists.get(object_id, [])
            objects.append(
                ObjectCells(
                    object_id=str(object_id),
                    cells=[cell(column, row) for column in self.columns],
                    samples=samples.get(object_id, []),
                )
            )
        return objects

    def _lists(self, face_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[str]]:
        query = (
            select(ListFace.face_id, ListFace.list_id)
            .join(FaceList, FaceList.list_id == ListFace.list_id)
            .where(FaceList.account_id == self.account_id, ListFace.face_id.in_(face_ids))
            .order_by(ListFace.face_id, ListFace.link_time, ListFace.list_id)
        )
        found: dict[uuid.UUID, list[str]] = {}
        with self.engine.connect() as connection:
            for face_id, list_id in connection.execute(query):
                found.setdefault(face_id, []).append(str(list_id))
        return found

    def _samples(self, object_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[tuple[str, str]]]:
        owner = Sample.face_id if self.object_type == "faces" else Sample.event_id
        query = (
            select(owner, Sample.sample_id, Sample.storage_key)
            .where(Sample.account_id == self.account_id, owner.in_(object_ids))
            .order_by(owner, Sample.create_time, Sample.sample_id)
        )
        found: dict[uuid.UUID, list[tuple[str, str]]] = {}
        with self.engine.connect() as connection:
            for object_id, sample_id, storage_key in connection.execute(query):
                found.setdefault(object_id, []).append((str(sample_id), storage_key))
        return found
