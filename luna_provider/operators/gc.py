"""Garbage collection: delete faces, events, or descriptors of one version, in bounded batches.

Every batch is one transaction: a face goes together with its descriptors and list links (foreign
keys cascade) and, with ``remove_samples``, its sample rows; an event with its descriptors and
samples. A subtask killed midway leaves each object either fully there or fully gone.

Sample *files* live in the object store, outside the transaction: they are deleted after the
commit. Before committing, a batch writes the keys it is about to orphan to an intent file; a rerun
of the subtask first deletes the files of rows that are gone. A crash between commit and file
deletion therefore leaves at worst an orphan file (no row points to it) until the subtask is rerun,
never a sample row whose file is gone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from luna_provider.errors import SAMPLE_FILE_NOT_DELETED
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun, task_error_bodies
from luna_provider.operators.batches import Batch, plan_id_ranges, progress_of, run_batches
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import InstrumentedAttribute

    from luna_provider.store.models import Subtask


#: object-store folders of the service itself: a sample row pointing there is broken, and deleting
#: the file would destroy a task's result or work file
PROTECTED_FOLDERS = ("results", "work")


@dataclass(frozen=True)
class GcTarget:
    """What one ``target`` of the content deletes: its id column, selection, lock and counters."""

    name: str
    counters: tuple[str, ...]
    #: lock on the selected rows: ``update`` when they are deleted, ``key_share`` when rows that
    #: hang off them are
    lock: str


TARGETS = {
    "faces": GcTarget("faces", ("removed_faces", "removed_samples"), "update"),
    "events": GcTarget("events", ("removed_events", "removed_samples"), "update"),
    "face_descriptors": GcTarget("face_descriptors", ("removed_descriptors",), "key_share"),
    "event_descriptors": GcTarget("event_descriptors", ("removed_descriptors",), "key_share"),
}


def selection(run: TaskRun) -> tuple[InstrumentedAttribute, list]:
    """Return the id column and the WHERE conditions of the objects the task works on.

    Without ``create_time__lt`` only objects created before the task are selected.
    """
    from sqlalchemy import and_, exists

    from luna_provider.store.models import Event, EventDescriptor, Face, FaceDescriptor
    from luna_provider.store.objects import event_conditions, face_conditions

    content = run.task.content
    filters = content.get("filters") or {}
    account, upper = run.task.account_id, run.task.create_time
    target = content["target"]
    if target == "faces":
        return Face.face_id, face_conditions(account, filters, upper)
    if target == "events":
        return Event.event_id, event_conditions(account, filters, upper)
    version = int(content["descriptor_version"])
    if target == "face_descriptors":
        having = exists().where(
            and_(FaceDescriptor.face_id == Face.face_id, FaceDescriptor.descriptor_version == version)
        )
        return Face.face_id, [*face_conditions(account, filters, upper), having]
    having = exists().where(
        and_(
            EventDescriptor.event_id == Event.event_id,
            EventDescriptor.descriptor_version == version,
            EventDescriptor.descriptor_type == content.get("descriptor_type", "face"),
        )
    )
    return Event.event_id, [*event_conditions(account, filters, upper), having]


class LunaGcOperator(LunaTaskOperator):
    """Delete the faces, events, face descriptors or event descriptors the content selects.

    ``split`` cuts the selection into id ranges of ``LUNA_GC_SUBTASK_SIZE`` objects; each subtask
    deletes its range in transactions of ``LUNA_GC_BATCH_SIZE`` objects, waiting
    ``LUNA_GC_BATCH_PAUSE`` seconds between them, and resumes after its last committed batch when
    it is run again.
    """

    task_type = TaskType.GC

    def split(self, run: TaskRun) -> list[dict]:
        id_column, conditions = selection(run)
        parts = plan_id_ranges(
            run.engine, id_column, conditions, run.settings.gc_subtask_size, run.settings.max_subtasks
        )
        self.log.info(
            "task %s: %d objects for target %s",
            run.task.task_id,
            sum(part["count_objects"] for part in parts),
            run.task.content["target"],
        )
        return parts

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        content = run.task.content
        target = TARGETS[content["target"]]
        id_column, conditions = selection(run)
        intent_key = f"{run.work_prefix}/gc/part_{subtask.part_index}.intent.json"
        self.finish_file_deletions(run, subtask, intent_key)
        if content.get("remove_image_origins"):
            # TODO: events do not store the address of their source image yet, so there is nothing
            # to send Luna's HTTP DELETE to; the flag is accepted and has no effect until they do.
            self.log.info("task %s: remove_image_origins has no effect: no origins stored", run.task.task_id)

        def process(batch: Batch) -> dict[str, int]:
            return self.delete_batch(run, batch, intent_key)

        progress = run_batches(
            run,
            subtask,
            part,
            id_column=id_column,
            conditions=conditions,
            batch_size=run.settings.gc_batch_size,
            process=process,
            lock=target.lock,
            pause=run.settings.gc_batch_pause,
            log=self.log,
        )
        key = f"{run.work_prefix}/gc/part_{subtask.part_index}.json"
        run.store.put_json(key, {name: progress.get(name, 0) for name in target.counters})
        self.log.info(
            "task %s: subtask %s removed %s",
            run.task.task_id,
            subtask.subtask_id,
            {name: progress.get(name, 0) for name in target.counters},
        )
        return key

    def delete_batch(self, run: TaskRun, batch: Batch, intent_key: str) -> dict[str, int]:
        """Delete the objects of one batch inside its transaction; return the counters."""
        from sqlalchemy import delete

        from luna_provider.store.models import Event, EventDescriptor, Face, FaceDescriptor

        content = run.task.content
        connection, ids, account = batch.connection, batch.ids, run.task.account_id
        target = content["target"]
        if target == "face_descriptors":
            removed = connection.execute(
                delete(FaceDescriptor).where(
                    FaceDescriptor.face_id.in_(ids),
                    FaceDescriptor.descriptor_version == int(content["descriptor_version"]),
                )
            ).rowcount
            return {"removed_descriptors": removed}
        if target == "event_descriptors":
            removed = connection.execute(
                delete(EventDescriptor).where(
                    EventDescriptor.event_id.in_(ids),
                    EventDescriptor.descriptor_version == int(content["descriptor_version"]),
                    EventDescriptor.descriptor_type == content.get("descriptor_type", "face"),
                )
            ).rowcount
            return {"removed_descriptors": removed}
        samples: list[tuple[str, str]] = []
        if content.get("remove_samples"):
            samples = _delete_samples(connection, account, ids, faces=target == "faces")
        if samples:
            # before the commit: if the process dies after it, a rerun still finds these files
            run.store.put_json(intent_key, samples)
            batch.after_commit.append(lambda: self.delete_files(run, samples, intent_key))
        if target == "faces":
            lists = _lists_of(connection, ids)
            removed = connection.execute(
                delete(Face).where(Face.face_id.in_(ids), Face.account_id == account)
            ).rowcount
            _touch_lists(connection, lists)
            return {"removed_faces": removed, "removed_samples": len(samples)}
        removed = connection.execute(
            delete(Event).where(Event.event_id.in_(ids), Event.account_id == account)
        ).rowcount
        return {"removed_events": removed, "removed_samples": len(samples)}

    def delete_files(self, run: TaskRun, samples: list[tuple[str, str]], intent_key: str) -> None:
        """Delete the files of removed samples; a file that cannot be deleted is a task error."""
        for sample_id, storage_key in samples:
            try:
                if storage_key.split("/", 1)[0] in PROTECTED_FOLDERS:
                    raise ValueError("the key is in a folder of the service, not a sample")
                run.store.delete(storage_key)
            except (OSError, ValueError) as error:
                run.add_error(SAMPLE_FILE_NOT_DELETED(storage_key, sample_id, error), object_id=sample_id)
        run.store.delete(intent_key)

    def finish_file_deletions(self, run: TaskRun, subtask: Subtask, intent_key: str) -> None:
        """Delete the files an interrupted run of this subtask left behind after its last commit."""
        from sqlalchemy import select

        from luna_provider.store.models import Sample

        if not run.store.exists(intent_key):
            return
        samples = [tuple(item) for item in run.store.get_json(intent_key)]
        with run.engine.connect() as connection:
            kept = {
                str(sample_id)
                for sample_id in connection.scalars(
                    select(Sample.sample_id).where(
                        Sample.sample_id.in_([uuid.UUID(sample_id) for sample_id, _ in samples])
                    )
                )
            }
        # rows still there belong to a batch that was rolled back: their files stay
        gone = [(sample_id, key) for sample_id, key in samples if sample_id not in kept]
        self.log.info(
            "task %s: subtask %s deletes %d files left by an interrupted run",
            run.task.task_id,
            subtask.subtask_id,
            len(gone),
        )
        self.delete_files(run, gone, intent_key)

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        content = run.task.content
        target = TARGETS[content["target"]]
        totals = dict.fromkeys(target.counters, 0)
        for subtask in subtasks:
            progress = progress_of(subtask)
            for name in target.counters:
                totals[name] += int(progress.get(name, 0))
        result: dict[str, Any] = {"target": target.name}
        if "descriptor_version" in content:
            result["descriptor_version"] = content["descriptor_version"]
        if target.name == "event_descriptors":
            result["descriptor_type"] = content.get("descriptor_type", "face")
        result.update(totals)
        self.log.info("task %s: removed %s", run.task.task_id, totals)
        return TaskResult(document={"result": result, "errors": task_error_bodies(run)})


def _delete_samples(
    connection: Connection, account_id: uuid.UUID, ids: list[uuid.UUID], *, faces: bool
) -> list[tuple[str, str]]:
    """Delete the sample rows of the batch's faces (or events); return ``(sample_id, key)`` pairs.

    A sample shared with an object that stays (an event's sample its face was created from) is
    kept: the foreign key only detaches it from the deleted object.
    """
    from sqlalchemy import delete

    from luna_provider.store.models import Sample

    owner, other = (Sample.face_id, Sample.event_id) if faces else (Sample.event_id, Sample.face_id)
    rows = connection.execute(
        delete(Sample)
        .where(owner.in_(ids), other.is_(None), Sample.account_id == account_id)
        .returning(Sample.sample_id, Sample.storage_key)
    ).all()
    return [(str(sample_id), key) for sample_id, key in rows]


def _lists_of(connection: Connection, face_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    from sqlalchemy import select

    from luna_provider.store.models import ListFace

    return list(connection.scalars(select(ListFace.list_id).where(ListFace.face_id.in_(face_ids)).distinct()))


def _touch_lists(connection: Connection, list_ids: list[uuid.UUID]) -> None:
    """Update ``last_update_time`` of lists that lost faces, locking them in id order.

    A fixed lock order keeps two subtasks that touch the same lists from deadlocking.
    """
    from sqlalchemy import func, select, update

    from luna_provider.store.models import FaceList

    if not list_ids:
        return
    locked = list(
        connection.scalars(
            select(FaceList.list_id)
            .where(FaceList.list_id.in_(list_ids))
            .order_by(FaceList.list_id)
            .with_for_update(key_share=True)
        )
    )
    connection.execute(
        update(FaceList).where(FaceList.list_id.in_(locked)).values(last_update_time=func.now())
    )
