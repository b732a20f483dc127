"""SQLAlchemy models of the service database.

Two groups of tables live here: the task service's own state (tasks, subtasks, task errors,
schedules) and the data the tasks work on (lists, faces, events, descriptors, samples). Every row of
both groups carries an ``account_id`` or hangs off a row that does, so every query can be scoped.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    """Declarative base of every table of the service database."""


def _now_column(**kwargs: object) -> Mapped[datetime]:
    return mapped_column(DateTime(timezone=True), server_default=func.now(), **kwargs)


# -- task service -----------------------------------------------------------------------------------


class Schedule(Base):
    """A task schedule: a task template plus a cron trigger."""

    __tablename__ = "schedules"

    schedule_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    task_type: Mapped[int] = mapped_column(Integer)
    task: Mapped[dict] = mapped_column(JSONB)
    trigger: Mapped[dict] = mapped_column(JSONB)
    behaviour: Mapped[dict] = mapped_column(JSONB, default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    next_run_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    create_time: Mapped[datetime] = _now_column(index=True)
    last_update_time: Mapped[datetime] = _now_column()


class Task(Base):
    """A task and its lifecycle state."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_account_create", "account_id", "create_time"),)

    task_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    task_type: Mapped[int] = mapped_column(Integer, index=True)
    task_status: Mapped[int] = mapped_column(Integer, default=0, index=True)
    description: Mapped[str] = mapped_column(String(128), default="")
    content: Mapped[dict] = mapped_column(JSONB)
    notification_policy: Mapped[dict] = mapped_column(JSONB, default=dict)
    result_storage_policy: Mapped[dict] = mapped_column(JSONB, default=dict)
    #: the schedule that created the task; kept after the schedule is deleted, so history stays linked
    schedule_id: Mapped[int | None] = mapped_column(Integer, index=True)
    result_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True), index=True)
    #: object-store key and media type of the stored result
    result_key: Mapped[str | None] = mapped_column(Text)
    result_content_type: Mapped[str | None] = mapped_column(String(64))
    result_expire_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    count_task_parts_done: Mapped[int] = mapped_column(Integer, default=0)
    count_task_parts_all: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[datetime] = _now_column()
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True)
    last_update_time: Mapped[datetime] = _now_column()


class Subtask(Base):
    """One part of a task, run by one mapped Airflow task instance."""

    __tablename__ = "subtasks"
    __table_args__ = (UniqueConstraint("task_id", "part_index"),)

    subtask_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"), index=True)
    part_index: Mapped[int] = mapped_column(Integer)
    subtask_status: Mapped[int] = mapped_column(Integer, default=0)
    content: Mapped[dict] = mapped_column(JSONB, default=dict)
    count_objects: Mapped[int] = mapped_column(Integer, default=0)
    result_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    result_key: Mapped[str | None] = mapped_column(Text)
    create_time: Mapped[datetime] = _now_column()
    end_time: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_update_time: Mapped[datetime] = _now_column()


class TaskError(Base):
    """A problem met while running a task: a failed object, a failed subtask or the task's failure."""

    __tablename__ = "task_errors"

    error_id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("tasks.task_id", ondelete="CASCADE"), index=True)
    subtask_id: Mapped[int | None] = mapped_column(ForeignKey("subtasks.subtask_id", ondelete="SET NULL"))
    error_code: Mapped[int] = mapped_column(Integer, index=True)
    status_code: Mapped[int] = mapped_column(Integer, default=500)
    description: Mapped[str] = mapped_column(Text)
    detail: Mapped[str] = mapped_column(Text)
    link: Mapped[str] = mapped_column(Text, default="")
    additional_info: Mapped[str | None] = mapped_column(Text)
    error_time: Mapped[datetime] = _now_column(index=True)


class Notification(Base):
    """A callback waiting to be delivered (an outbox, so no status change waits on a receiver)."""

    __tablename__ = "notifications"

    notification_id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_id: Mapped[int] = mapped_column(Integer, index=True)
    callback: Mapped[dict] = mapped_column(JSONB)
    payload: Mapped[dict] = mapped_column(JSONB)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_time: Mapped[datetime] = _now_column(index=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    create_time: Mapped[datetime] = _now_column()


# -- data the tasks work on -------------------------------------------------------------------------


class FaceList(Base):
    """A list of faces."""

    __tablename__ = "lists"

    list_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    user_data: Mapped[str] = mapped_column(String(128), default="")
    create_time: Mapped[datetime] = _now_column()
    last_update_time: Mapped[datetime] = _now_column()


class Face(Base):
    """A face: a person's descriptors, basic attributes and metadata."""

    __tablename__ = "faces"
    __table_args__ = (Index("ix_faces_account_create", "account_id", "create_time"),)

    face_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    event_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    user_data: Mapped[str] = mapped_column(String(128), default="")
    external_id: Mapped[str | None] = mapped_column(String(36), index=True)
    avatar: Mapped[str] = mapped_column(Text, default="")
    age: Mapped[float | None] = mapped_column(Float)
    gender: Mapped[int | None] = mapped_column(Integer)
    create_time: Mapped[datetime] = _now_column()
    last_update_time: Mapped[datetime] = _now_column()


class ListFace(Base):
    """Membership of a face in a list."""

    __tablename__ = "list_faces"

    list_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lists.list_id", ondelete="CASCADE"), primary_key=True
    )
    face_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("faces.face_id", ondelete="CASCADE"), primary_key=True, index=True
    )
    link_time: Mapped[datetime] = _now_column()


class Event(Base):
    """An event: one detection of a face (or body) by a handler, with its attributes."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_account_create", "account_id", "create_time"),)

    event_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True))
    create_time: Mapped[datetime] = _now_column()
    end_time: Mapped[datetime] = _now_column()
    handler_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    source: Mapped[str | None] = mapped_column(String(128))
    stream_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    track_id: Mapped[str | None] = mapped_column(String(36))
    external_id: Mapped[str | None] = mapped_column(String(36))
    user_data: Mapped[str] = mapped_column(String(128), default="")
    tags: Mapped[list] = mapped_column(JSONB, default=list)
    meta: Mapped[dict] = mapped_column(JSONB, default=dict)
    face_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    age: Mapped[float | None] = mapped_column(Float)
    gender: Mapped[int | None] = mapped_column(Integer)
    emotion: Mapped[int | None] = mapped_column(Integer)
    ethnic_group: Mapped[int | None] = mapped_column(Integer)
    mask: Mapped[int | None] = mapped_column(Integer)
    liveness: Mapped[int | None] = mapped_column(Integer)
    city: Mapped[str | None] = mapped_column(String(36))
    area: Mapped[str | None] = mapped_column(String(36))
    district: Mapped[str | None] = mapped_column(String(36))
    street: Mapped[str | None] = mapped_column(String(36))
    house_number: Mapped[str | None] = mapped_column(String(36))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    top_match: Mapped[dict | None] = mapped_column(JSONB)
    match_result: Mapped[list] = mapped_column(JSONB, default=list)
    attach_result: Mapped[list] = mapped_column(JSONB, default=list)
    face_detections: Mapped[list] = mapped_column(JSONB, default=list)


class FaceDescriptor(Base):
    """A face's descriptor of one descriptor version, stored as little-endian float32 bytes."""

    __tablename__ = "face_descriptors"

    face_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("faces.face_id", ondelete="CASCADE"), primary_key=True
    )
    descriptor_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = _now_column()


class EventDescriptor(Base):
    """An event's face or body descriptor of one descriptor version."""

    __tablename__ = "event_descriptors"

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("events.event_id", ondelete="CASCADE"), primary_key=True
    )
    descriptor_type: Mapped[str] = mapped_column(String(8), primary_key=True, default="face")
    descriptor_version: Mapped[int] = mapped_column(Integer, primary_key=True)
    descriptor: Mapped[bytes] = mapped_column(LargeBinary)
    create_time: Mapped[datetime] = _now_column()


class Sample(Base):
    """An aligned face (or body) image kept in the object store."""

    __tablename__ = "samples"

    sample_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), primary_key=True, default=uuid.uuid4)
    account_id: Mapped[uuid.UUID] = mapped_column(UUID(as_uuid=True), index=True)
    sample_type: Mapped[str] = mapped_column(String(8), default="face")
    face_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("faces.face_id", ondelete="SET NULL"), index=True
    )
    event_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("events.event_id", ondelete="SET NULL"), index=True
    )
    storage_key: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[datetime] = _now_column()
