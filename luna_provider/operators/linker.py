"""Linker: link faces to a list, or create faces from events and link those."""

from __future__ import annotations

import json
import uuid
from typing import TYPE_CHECKING, Any

from luna_provider.errors import LINKER_NO_FACE_DESCRIPTOR, LIST_NOT_FOUND
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun, task_error_bodies
from luna_provider.operators.batches import Batch, plan_id_ranges, progress_of, run_batches
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import InstrumentedAttribute

    from luna_provider.store.models import Subtask

#: namespace of the ids of lists a linker task creates (see :func:`target_list_id`)
CREATED_LIST_NAMESPACE = uuid.UUID("0d3c0c53-3f55-4c5c-9d7e-2b1c1b6e8a41")
#: counters of a subtask's progress that the result adds up
COUNTERS = ("linked_faces", "already_linked", "created_faces", "skipped_objects")


def target_list_id(run: TaskRun) -> uuid.UUID:
    """Return the id of the task's list: the given one, or the one the task creates.

    A created list's id is derived from the account, task id and creation time of the task, so
    creating it again (a retried ``split``) finds the same row instead of making a second list.
    """
    target = run.task.content.get("list") or {}
    if target.get("list_id"):
        return uuid.UUID(str(target["list_id"]))
    task = run.task
    return uuid.uuid5(
        CREATED_LIST_NAMESPACE, f"{task.account_id}/{task.task_id}/{task.create_time.isoformat()}"
    )


def selection(run: TaskRun) -> tuple[InstrumentedAttribute, list, bool]:
    """Return the id column, the WHERE conditions and whether the task links events."""
    from luna_provider.store.models import Event, Face
    from luna_provider.store.objects import event_conditions, face_conditions

    filters = run.task.content.get("filters") or {}
    task = run.task
    if filters.get("object_type") == "events":
        return Event.event_id, event_conditions(task.account_id, filters, task.create_time), True
    return Face.face_id, face_conditions(task.account_id, filters, task.create_time), False


class LunaLinkerOperator(LunaTaskOperator):
    """Link the faces selected by ``filters`` to a list, creating faces from events when asked.

    ``content.list`` names an existing list (``list_id``) or asks for a new one (``create_list``,
    ``user_data``), created once by ``split``. ``content.filters.object_type`` is ``faces`` (link
    them) or ``events``: an event that has a face (``events.face_id``) links that face; one without
    gets a new face (attributes and face descriptors of the event, its face samples) first. Each
    subtask handles an id range in transactions of ``LUNA_LINKER_SUBTASK_SIZE`` objects.
    """

    task_type = TaskType.LINKER

    def split(self, run: TaskRun) -> list[dict]:
        list_id = self.prepare_list(run)
        id_column, conditions, _ = selection(run)
        parts = plan_id_ranges(
            run.engine, id_column, conditions, run.settings.linker_subtask_size, run.settings.max_subtasks
        )
        total = sum(part["count_objects"] for part in parts)
        self.log.info("task %s: %d objects to link to list %s", run.task.task_id, total, list_id)
        return [{"list_id": str(list_id), **part} for part in parts]

    def prepare_list(self, run: TaskRun) -> uuid.UUID:
        """Check that the task's list exists in the account, or create it; return its id."""
        from sqlalchemy import select
        from sqlalchemy.dialects.postgresql import insert

        from luna_provider.store.models import FaceList

        task = run.task
        list_id = target_list_id(run)
        target = task.content.get("list") or {}
        with run.engine.begin() as connection:
            if target.get("create_list"):
                created = connection.execute(
                    insert(FaceList)
                    .values(
                        list_id=list_id, account_id=task.account_id, user_data=target.get("user_data", "")
                    )
                    .on_conflict_do_nothing()
                    .returning(FaceList.list_id)
                ).first()
                if created is not None:
                    self.log.info("task %s: created list %s", task.task_id, list_id)
            owner = connection.scalar(select(FaceList.account_id).where(FaceList.list_id == list_id))
        if owner != task.account_id:
            raise LIST_NOT_FOUND(list_id)
        return list_id

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        id_column, conditions, events = selection(run)
        list_id = uuid.UUID(part["list_id"])
        prefix = f"{run.work_prefix}/linker/part_{subtask.part_index}"

        def process(batch: Batch) -> dict[str, int]:
            _lock_list(batch.connection, list_id, run.task.account_id)
            if events:
                pairs, counts = self.faces_of_events(run, subtask, batch)
                entries: list[Any] = [{"event_id": str(e), "face_id": str(f)} for e, f in pairs]
                faces = list(dict.fromkeys(face for _, face in pairs))  # events may share a face
            else:
                faces, counts = list(batch.ids), {}
                entries = [str(face) for face in faces]
            linked = _link(batch.connection, list_id, run.task.account_id, faces)
            # written before the commit: a rolled-back batch is redone under the same number
            run.store.put_json(f"{prefix}/batch_{batch.number}.json", entries)
            return {**counts, "linked_faces": linked, "already_linked": len(faces) - linked}

        progress = run_batches(
            run,
            subtask,
            part,
            id_column=id_column,
            conditions=conditions,
            batch_size=run.settings.linker_subtask_size,
            process=process,
            lock="update" if events else "key_share",
            log=self.log,
        )
        key = f"{prefix}/summary.json"
        run.store.put_json(key, {name: progress.get(name, 0) for name in COUNTERS})
        self.log.info(
            "task %s: subtask %s linked %d faces (%d already linked, %d created)",
            run.task.task_id,
            subtask.subtask_id,
            progress.get("linked_faces", 0),
            progress.get("already_linked", 0),
            progress.get("created_faces", 0),
        )
        return key

    def faces_of_events(
        self, run: TaskRun, subtask: Subtask, batch: Batch
    ) -> tuple[list[tuple[uuid.UUID, uuid.UUID]], dict[str, int]]:
        """Return ``(event_id, face_id)`` for the events of the batch that have (or got) a face.

        An event whose face is gone (deleted, or of another account) counts as one without a face.
        An event without a face descriptor gets no face: it is recorded as a task error.
        """
        from sqlalchemy import insert, select, update, values
        from sqlalchemy.dialects.postgresql import UUID
        from sqlalchemy.sql import column

        from luna_provider import lifecycle
        from luna_provider.store.models import Event, EventDescriptor, Face, FaceDescriptor, Sample

        connection = batch.connection
        account = run.task.account_id
        events = connection.execute(
            select(Event.event_id, Event.face_id, Event.user_data, Event.external_id, Event.age, Event.gender)
            .where(Event.event_id.in_(batch.ids))
            .order_by(Event.event_id)
        ).all()
        referenced = [event.face_id for event in events if event.face_id is not None]
        existing = set()
        if referenced:
            existing = set(
                connection.scalars(
                    select(Face.face_id)
                    .where(Face.face_id.in_(referenced), Face.account_id == account)
                    .with_for_update(read=True, key_share=True)
                )
            )
        faceless = [event for event in events if event.face_id not in existing]
        described = set()
        if faceless:
            described = set(
                connection.scalars(
                    select(EventDescriptor.event_id)
                    .where(
                        EventDescriptor.event_id.in_([event.event_id for event in faceless]),
                        EventDescriptor.descriptor_type == "face",
                    )
                    .distinct()
                )
            )
        created = {event.event_id: uuid.uuid4() for event in faceless if event.event_id in described}
        if created:
            connection.execute(
                insert(Face),
                [
                    {
                        "face_id": created[event.event_id],
                        "account_id": account,
                        "event_id": event.event_id,
                        "user_data": event.user_data or "",
                        "external_id": event.external_id,
                        "age": event.age,
                        "gender": event.gender,
                    }
                    for event in faceless
                    if event.event_id in created
                ],
            )
            uuid_type = UUID(as_uuid=True)
            mapping = values(column("event_id", uuid_type), column("face_id", uuid_type), name="m").data(
                list(created.items())
            )
            connection.execute(
                insert(FaceDescriptor).from_select(
                    ["face_id", "descriptor_version", "descriptor"],
                    select(mapping.c.face_id, EventDescriptor.descriptor_version, EventDescriptor.descriptor)
                    .join(mapping, mapping.c.event_id == EventDescriptor.event_id)
                    .where(EventDescriptor.descriptor_type == "face"),
                )
            )
            # the face shares the event's face samples (one row, both owners), as Luna's face
            # attributes reference the event's sample ids
            connection.execute(
                update(Sample)
                .where(
                    Sample.event_id == mapping.c.event_id,
                    Sample.account_id == account,
                    Sample.sample_type == "face",
                    Sample.face_id.is_(None),
                )
                .values(face_id=mapping.c.face_id)
            )
            connection.execute(
                update(Event).where(Event.event_id == mapping.c.event_id).values(face_id=mapping.c.face_id)
            )
        skipped = [event.event_id for event in faceless if event.event_id not in created]
        for event_id in skipped:
            lifecycle.add_error(
                run.engine,
                run.task.task_id,
                LINKER_NO_FACE_DESCRIPTOR(event_id),
                subtask_id=subtask.subtask_id,
                additional_info=str(event_id),
                connection=connection,
            )
        pairs = [
            (event.event_id, created.get(event.event_id) or event.face_id)
            for event in events
            if event.event_id in created or event.face_id in existing
        ]
        return pairs, {"created_faces": len(created), "skipped_objects": len(skipped)}

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        """Write the result document in a stream: the linked ids are never all in memory.

        Faces give ``faces`` (the ids of the selected faces); events give ``events`` (each linked
        event with its face). Both are in object id order.
        """
        content = run.task.content
        totals = dict.fromkeys(COUNTERS, 0)
        key = f"{run.result_prefix}.json"
        object_type = (content.get("filters") or {}).get("object_type", "faces")
        head = {
            "list_id": str(target_list_id(run)),
            "created_list": bool((content.get("list") or {}).get("create_list")),
            "object_type": object_type,
        }
        with run.store.open(key, "wb") as out:
            out.write(b'{"result":' + json.dumps(head)[:-1].encode() + f',"{object_type}":['.encode())
            first = True
            for subtask in subtasks:
                progress = progress_of(subtask)
                for name in COUNTERS:
                    totals[name] += int(progress.get(name, 0))
                prefix = f"{run.work_prefix}/linker/part_{subtask.part_index}"
                for number in range(int(progress.get("batches", 0))):
                    for entry in run.store.get_json(f"{prefix}/batch_{number}.json"):
                        out.write((b"" if first else b",") + json.dumps(entry).encode())
                        first = False
            tail = json.dumps(totals)[1:-1].encode()
            errors = json.dumps(task_error_bodies(run)).encode()
            out.write(b"]," + tail + b'},"errors":' + errors + b"}")
        self.log.info(
            "task %s: linked %d faces, %d already linked, %d created, %d skipped",
            run.task.task_id,
            *(totals[name] for name in COUNTERS),
        )
        return TaskResult(key=key)


def _lock_list(connection: Connection, list_id: uuid.UUID, account_id: uuid.UUID) -> None:
    """Make sure the list is still the account's; keep it from being deleted until the commit."""
    from sqlalchemy import select

    from luna_provider.store.models import FaceList

    found = connection.scalar(
        select(FaceList.list_id)
        .where(FaceList.list_id == list_id, FaceList.account_id == account_id)
        .with_for_update(read=True, key_share=True)
    )
    if found is None:
        raise LIST_NOT_FOUND(list_id)


def _link(connection: Connection, list_id: uuid.UUID, account_id: uuid.UUID, faces: list[Any]) -> int:
    """Link ``faces`` to the list (existing links stay); return how many links are new."""
    from sqlalchemy import func, update
    from sqlalchemy.dialects.postgresql import insert

    from luna_provider.store.models import Face, FaceList, ListFace

    if not faces:
        return 0
    new = list(
        connection.scalars(
            insert(ListFace)
            .values([{"list_id": list_id, "face_id": face} for face in faces])
            .on_conflict_do_nothing()
            .returning(ListFace.face_id)
        )
    )
    if new:
        connection.execute(
            update(Face)
            .where(Face.face_id.in_(new), Face.account_id == account_id)
            .values(last_update_time=func.now())
        )
        # last, so the list's row lock (shared by every subtask of the task) is held only briefly
        connection.execute(
            update(FaceList).where(FaceList.list_id == list_id).values(last_update_time=func.now())
        )
    return len(new)
