"""Saving what the estimator found: samples, faces, events, descriptors and list links.

Ids are derived from the task, the image name and the face's index in the image (UUID 5), and
rows are inserted with ``ON CONFLICT DO NOTHING``: a subtask that runs again after a crash finds
its rows already there instead of creating the faces twice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import literal, select
from sqlalchemy.dialects.postgresql import UUID
from sqlalchemy.dialects.postgresql import insert as pg_insert

from luna_provider.store.models import (
    Event,
    EventDescriptor,
    Face,
    FaceDescriptor,
    FaceList,
    ListFace,
    Sample,
)

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from luna_provider.compute.descriptors import DescriptorVersion
    from luna_provider.faces import BasicAttributes, BoundingBox
    from luna_provider.storage import ObjectStore

#: namespace of the ids the estimator derives
ESTIMATOR_NAMESPACE = uuid.UUID("5d7e4c36-0d55-4c43-9a3c-3f1d2f0a8b61")


def sample_key(account_id: uuid.UUID, sample_id: uuid.UUID) -> str:
    """Return the object-store key of a face sample."""
    return f"samples/{account_id}/{sample_id}.png"


@dataclass
class StoragePolicy:
    """What to save per face, from the estimator's ``storage_policy``."""

    store_face: bool = True
    list_ids: list[str] = field(default_factory=list)
    face_user_data: str = ""
    external_id: str | None = None
    store_event: bool = False
    tags: list[str] = field(default_factory=list)
    source: str | None = None
    event_user_data: str = ""

    @classmethod
    def from_policies(cls, policies: dict) -> StoragePolicy:
        storage = policies.get("storage_policy") or {}
        face = storage.get("face_policy") or {}
        event = storage.get("event_policy") or {}
        return cls(
            store_face=bool(face.get("store_face", 1)),
            list_ids=list(face.get("link_to_lists") or []),
            face_user_data=face.get("user_data") or "",
            external_id=face.get("external_id"),
            store_event=bool(event.get("store_event", 0)),
            tags=list(event.get("tags") or []),
            source=event.get("source"),
            event_user_data=event.get("user_data") or "",
        )

    @property
    def stores_anything(self) -> bool:
        return self.store_face or self.store_event


@dataclass
class FoundFace:
    """One face of an image with what was computed for it."""

    bbox: BoundingBox
    score: float
    sample_png: bytes
    descriptor: bytes | None
    attributes: BasicAttributes | None


class FaceRecorder:
    """Save the faces found in images for one estimator task.

    :param account_id: the task's account; every row is created for it.
    :param task_id: the task, part of every derived id.
    """

    def __init__(
        self,
        engine: Engine,
        store: ObjectStore,
        account_id: uuid.UUID,
        task_id: int,
        policy: StoragePolicy,
        version: DescriptorVersion,
    ) -> None:
        self.engine = engine
        self.store = store
        self.account_id = account_id
        self.task_id = task_id
        self.policy = policy
        self.version = version

    def _id(self, image: str, index: int, kind: str) -> uuid.UUID:
        return uuid.uuid5(ESTIMATOR_NAMESPACE, f"{self.task_id}\n{image}\n{index}\n{kind}")

    def save(self, image: str, faces: list[FoundFace], origin: str | None = None) -> list[dict[str, Any]]:
        """Save the faces of one image in one transaction; return their result entries."""
        entries = []
        face_rows, event_rows, sample_rows = [], [], []
        face_descriptors, event_descriptors, links = [], [], []
        written: list[str] = []
        now = datetime.now(UTC)
        policy = self.policy
        for index, found in enumerate(faces):
            face_id = self._id(image, index, "face") if policy.store_face else None
            event_id = self._id(image, index, "event") if policy.store_event else None
            sample_id = self._id(image, index, "sample") if policy.stores_anything else None
            age = found.attributes.age if found.attributes else None
            gender = found.attributes.gender if found.attributes else None
            if sample_id is not None:
                key = sample_key(self.account_id, sample_id)
                with self.store.open(key, "wb") as stream:
                    stream.write(found.sample_png)
                written.append(key)
                sample_rows.append(
                    {
                        "sample_id": sample_id,
                        "account_id": self.account_id,
                        "sample_type": "face",
                        "face_id": face_id,
                        "event_id": event_id,
                        "storage_key": key,
                        "size": len(found.sample_png),
                    }
                )
            if face_id is not None:
                face_rows.append(
                    {
                        "face_id": face_id,
                        "account_id": self.account_id,
                        "event_id": event_id,
                        "user_data": policy.face_user_data,
                        "external_id": policy.external_id,
                        "avatar": "",
                        "age": age,
                        "gender": gender,
                    }
                )
                if found.descriptor is not None:
                    face_descriptors.append(
                        {
                            "face_id": face_id,
                            "descriptor_version": self.version.version,
                            "descriptor": found.descriptor,
                        }
                    )
                links.extend((list_id, face_id) for list_id in policy.list_ids)
            if event_id is not None:
                event_rows.append(
                    {
                        "event_id": event_id,
                        "account_id": self.account_id,
                        "source": policy.source,
                        "user_data": policy.event_user_data,
                        "tags": policy.tags,
                        "meta": {},
                        "face_id": face_id,
                        "age": age,
                        "gender": gender,
                        "match_result": [],
                        "attach_result": [],
                        "face_detections": [
                            {
                                "sample_id": str(sample_id),
                                "rect": found.bbox.as_dict(),
                                "detect_time": now.isoformat(),
                                "image_origin": origin,
                                "image_name": image,
                            }
                        ],
                    }
                )
                if found.descriptor is not None:
                    event_descriptors.append(
                        {
                            "event_id": event_id,
                            "descriptor_type": "face",
                            "descriptor_version": self.version.version,
                            "descriptor": found.descriptor,
                        }
                    )
            entries.append(
                {
                    "face_id": str(face_id) if face_id else None,
                    "event_id": str(event_id) if event_id else None,
                    "sample_id": str(sample_id) if sample_id else None,
                    "bbox": found.bbox.as_dict(),
                    "detection_score": round(found.score, 4),
                    "age": age,
                    "gender": gender,
                }
            )
        try:
            self._insert(face_rows, event_rows, sample_rows, face_descriptors, event_descriptors, links)
        except Exception:
            for key in written:
                self.store.delete(key)
            raise
        return entries

    def _insert(
        self,
        face_rows: list[dict],
        event_rows: list[dict],
        sample_rows: list[dict],
        face_descriptors: list[dict],
        event_descriptors: list[dict],
        links: list[tuple[str, uuid.UUID]],
    ) -> None:
        with self.engine.begin() as connection:
            if face_rows:
                connection.execute(pg_insert(Face).on_conflict_do_nothing(), face_rows)
            if event_rows:
                connection.execute(pg_insert(Event).on_conflict_do_nothing(), event_rows)
            if sample_rows:
                connection.execute(pg_insert(Sample).on_conflict_do_nothing(), sample_rows)
            if face_descriptors:
                connection.execute(pg_insert(FaceDescriptor).on_conflict_do_nothing(), face_descriptors)
            if event_descriptors:
                connection.execute(pg_insert(EventDescriptor).on_conflict_do_nothing(), event_descriptors)
            for list_id, face_id in links:
                # only lists of the task's account; a list deleted since the task started is skipped
                connection.execute(
                    pg_insert(ListFace)
                    .from_select(
                        ["list_id", "face_id"],
                        select(FaceList.list_id, literal(face_id, type_=UUID(as_uuid=True))).where(
                            FaceList.list_id == list_id, FaceList.account_id == self.account_id
                        ),
                    )
                    .on_conflict_do_nothing()
                )


def missing_lists(engine: Engine, account_id: uuid.UUID, list_ids: list[str]) -> list[str]:
    """Return the ids of ``list_ids`` that are not lists of the account."""
    if not list_ids:
        return []
    with engine.connect() as connection:
        found = {
            str(list_id)
            for list_id in connection.scalars(
                select(FaceList.list_id).where(
                    FaceList.list_id.in_(list_ids), FaceList.account_id == account_id
                )
            )
        }
    return [list_id for list_id in list_ids if str(uuid.UUID(list_id)) not in found]
