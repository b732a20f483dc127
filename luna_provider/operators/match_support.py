"""Files and checks shared by the matching task types (cross-match, ROC); no Airflow imports.

Besides the descriptors, a matching task freezes per-object integer arrays next to its snapshots
(tie keys, labels, the candidate an object must not be matched with): raw little-endian int64 files
that subtasks read by row range, like the descriptor matrix.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING

from luna_provider.errors import (
    DESCRIPTOR_TYPE_UNAVAILABLE,
    LIST_NOT_FOUND,
    MARKUP_DUPLICATE_OBJECT,
    ROC_UNDEFINED,
)

if TYPE_CHECKING:
    from collections.abc import Iterable

    import numpy as np

    from luna_provider.operators.base import TaskRun
    from luna_provider.operators.snapshot import DescriptorSnapshot
    from luna_provider.storage import ObjectStore

#: bytes of one id line of a snapshot: a canonical UUID and a newline
_UUID_LINE = 37


def write_int64(store: ObjectStore, key: str, values: np.ndarray) -> None:
    """Write ``values`` as a raw little-endian int64 file."""
    import numpy as np

    with store.open(key, "wb") as stream:
        stream.write(np.ascontiguousarray(values, dtype="<i8").tobytes())


def read_int64(store: ObjectStore, key: str, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Read entries ``start .. stop`` (to the end when ``stop`` is None) of a raw int64 file."""
    import numpy as np

    with store.open(key, "rb") as stream:
        stream.seek(start * 8)
        data = stream.read() if stop is None else stream.read((stop - start) * 8)
    return np.frombuffer(data, dtype="<i8")


def read_ids(snapshot: DescriptorSnapshot, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Return ids ``start .. stop`` of the snapshot's objects as a fixed-width bytes array.

    Ids are canonical UUID strings (faces and events have UUID ids), so every line of the ids file
    has the same width, a range is read with one seek, and byte order is string order.
    """
    with snapshot.run.store.open(snapshot.ids_key, "rb") as stream:
        stream.seek(start * _UUID_LINE)
        data = stream.read() if stop is None else stream.read((stop - start) * _UUID_LINE)
    return _uuid_lines(data)


def read_ids_at(snapshot: DescriptorSnapshot, positions: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """Return the ids of the objects at ``positions``, reading the ids file once in chunks.

    Memory grows with the positions asked for, not with the snapshot.
    """
    import numpy as np

    wanted, inverse = np.unique(positions, return_inverse=True)
    found = np.empty(len(wanted), dtype="S36")
    done = 0
    with snapshot.run.store.open(snapshot.ids_key, "rb") as stream:
        start = 0
        while done < len(wanted):
            ids = _uuid_lines(stream.read(chunk * _UUID_LINE))
            if len(ids) == 0:
                raise ValueError(f"{snapshot.ids_key} has no object {wanted[done]}")
            inside = wanted[done:][wanted[done:] < start + len(ids)]
            found[done : done + len(inside)] = ids[inside - start]
            done += len(inside)
            start += len(ids)
    return found[inverse]


def _uuid_lines(data: bytes) -> np.ndarray:
    import numpy as np

    if len(data) % _UUID_LINE or data[_UUID_LINE - 1 :: _UUID_LINE].count(b"\n") * _UUID_LINE != len(data):
        raise ValueError("object ids must be canonical UUIDs, one per line")
    return np.frombuffer(data, dtype=[("id", "S36"), ("newline", "S1")])["id"].copy()


def id_ranks(ids: np.ndarray) -> np.ndarray:
    """Return each id's position in sorted order: the tie key that orders equal similarities by id."""
    import numpy as np

    order = np.argsort(ids, kind="stable")
    ranks = np.empty(len(ids), dtype=np.int64)
    ranks[order] = np.arange(len(ids), dtype=np.int64)
    return ranks


def positions_in(ids: np.ndarray, among: np.ndarray) -> np.ndarray:
    """Return, for each of ``ids``, its position in ``among`` (ids unique there), or ``-1``."""
    import numpy as np

    if len(among) == 0:
        return np.full(len(ids), -1, dtype=np.int64)
    order = np.argsort(among, kind="stable")
    sorted_among = among[order]
    slot = np.minimum(np.searchsorted(sorted_among, ids), len(among) - 1)
    found = sorted_among[slot] == ids
    return np.where(found, order[slot], -1).astype(np.int64)


def check_lists(run: TaskRun, filters: dict) -> None:
    """Raise 22003 when ``filters`` name a list the task's account does not have."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from luna_provider.store.models import FaceList

    list_id = filters.get("list_id")
    if not list_id:
        return
    with Session(run.engine) as session:
        found = session.scalar(
            select(FaceList.list_id).where(
                FaceList.list_id == uuid.UUID(str(list_id)), FaceList.account_id == run.task.account_id
            )
        )
    if found is None:
        raise LIST_NOT_FOUND(list_id)


def check_descriptor_type(content: dict, object_types: list[str]) -> None:
    """Refuse body descriptors for faces: only events have them."""
    descriptor_type = (content.get("descriptor") or {}).get("type", "face")
    if descriptor_type == "body" and "faces" in object_types:
        raise DESCRIPTOR_TYPE_UNAVAILABLE("body", "faces")


def object_type_of(filters: dict) -> str:
    """Return the object type (``faces`` or ``events``) a filter set selects."""
    return filters.get("object_type") or filters.get("objects_type") or "faces"


def subtask_ranges(total: int, size: int, max_subtasks: int) -> list[dict]:
    """Split rows ``0 .. total`` into subtask contents of about ``size`` rows, at most ``max_subtasks``."""
    import math

    size = max(size, math.ceil(total / max(max_subtasks, 1)), 1)
    return [
        {"start": start, "stop": min(start + size, total), "count_objects": min(start + size, total) - start}
        for start in range(0, total, size)
    ]


def markup_labels(content: dict) -> dict[str, str]:
    """Return the markup as ``{object id: label}``; refuse an object listed twice (28051)."""
    labels: dict[str, str] = {}
    for item in content["markup"]["items"]:
        object_id = str(uuid.UUID(str(item["object_id"])))
        if object_id in labels:
            raise MARKUP_DUPLICATE_OBJECT(object_id)
        labels[object_id] = item["label"]
    return labels


def check_markup(content: dict) -> None:
    """Check what the schema cannot: no object twice, some positive and some negative pairs."""
    from collections import Counter

    check_descriptor_type(content, [content["markup"].get("object_type", "faces")])
    check_pairs(Counter(markup_labels(content).values()).values())


def check_pairs(label_sizes: Iterable[int]) -> tuple[int, int]:
    """Return the positive and negative pair counts of labels of these sizes; 28052 when one is 0."""
    sizes = list(label_sizes)
    total = sum(sizes)
    positive = sum(size * (size - 1) // 2 for size in sizes)
    negative = total * (total - 1) // 2 - positive
    if positive == 0:
        raise ROC_UNDEFINED("no two markup objects share a label, so there are no positive pairs")
    if negative == 0:
        raise ROC_UNDEFINED("every markup object has the same label, so there are no negative pairs")
    return positive, negative
