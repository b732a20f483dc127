"""Additional extract: add missing descriptors or basic attributes, re-extracted from stored samples."""

from __future__ import annotations

import math
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import Select, and_, exists, func, or_, select, true, update

from luna_provider.errors import FACE_ENGINE_FAILED, SAMPLE_UNREADABLE, LunaError
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun
from luna_provider.store.models import Event, EventDescriptor, Face, FaceDescriptor, Sample
from luna_provider.task_types import TaskType

if TYPE_CHECKING:
    from luna_provider.faces import FaceEngine
    from luna_provider.store.models import Subtask

#: objects read from the database per round trip in a subtask
FETCH_SIZE = 100


class LunaAdditionalExtractOperator(LunaTaskOperator):
    """Re-extract what faces or events miss from their stored samples, never replacing what exists.

    ``extraction_target`` ``face_descriptor`` adds the descriptor of ``options.descriptor_version``
    (default ``LUNA_DEFAULT_DESCRIPTOR_VERSION``) to objects that have a sample but no descriptor of
    that version; ``basic_attributes`` fills age and gender where either is missing. Samples are
    already aligned, so the engine runs on them directly. ``split`` cuts the selected objects into
    id ranges of ``LUNA_ADDITIONAL_EXTRACT_SUBTASK_SIZE`` objects.
    """

    task_type = TaskType.ADDITIONAL_EXTRACT

    # -- selection -----------------------------------------------------------------------------

    def version(self, run: TaskRun) -> int:
        requested = (run.task.content.get("options") or {}).get("descriptor_version")
        return int(requested or run.settings.default_descriptor_version)

    def selection(self, run: TaskRun, id_gte: str | None = None, id_lt: str | None = None) -> Select:
        """Return ``(object_id, sample_id, storage_key)`` of the objects to process, by id.

        Each object comes with its first stored sample; objects without a sample are not selected.
        """
        from luna_provider.store.objects import event_conditions, face_conditions

        content = run.task.content
        filters = content["filters"]
        account = run.task.account_id
        descriptors = content["extraction_target"] == "face_descriptor"
        version = self.version(run)
        if filters["objects_type"] == "faces":
            model, key, owner = Face, Face.face_id, Sample.face_id
            conditions = face_conditions(account, filters, run.task.create_time)
            if descriptors:
                conditions.append(
                    ~exists().where(
                        FaceDescriptor.face_id == Face.face_id,
                        FaceDescriptor.descriptor_version == version,
                    )
                )
        else:
            model, key, owner = Event, Event.event_id, Sample.event_id
            conditions = event_conditions(account, filters, run.task.create_time)
            if descriptors:
                conditions.append(
                    ~exists().where(
                        EventDescriptor.event_id == Event.event_id,
                        EventDescriptor.descriptor_type == "face",
                        EventDescriptor.descriptor_version == version,
                    )
                )
        if not descriptors:
            conditions.append(or_(model.age.is_(None), model.gender.is_(None)))
        if id_gte is not None:
            conditions.append(key >= uuid.UUID(id_gte))
        if id_lt is not None:
            conditions.append(key < uuid.UUID(id_lt))
        sample = (
            select(Sample.sample_id, Sample.storage_key)
            .where(owner == key, Sample.account_id == account, Sample.sample_type == "face")
            .order_by(Sample.create_time, Sample.sample_id)
            .limit(1)
            .lateral()
        )
        return (
            select(key, sample.c.sample_id, sample.c.storage_key)
            .join(sample, true())
            .where(and_(*conditions))
            .order_by(key)
        )

    # -- split ---------------------------------------------------------------------------------

    def split(self, run: TaskRun) -> list[dict]:
        from luna_provider.store.objects import stream_rows

        query = self.selection(run)
        with run.engine.connect() as connection:
            total = connection.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
        size = max(run.settings.additional_extract_subtask_size, math.ceil(total / run.settings.max_subtasks))
        self.log.info("task %s: %d objects to extract for, %d per subtask", run.task.task_id, total, size)
        starts: list[str] = []
        seen = 0
        for rows in stream_rows(run.engine, query, run.settings.match_block_size):
            for object_id, _, _ in rows:
                if seen % size == 0:
                    starts.append(str(object_id))
                seen += 1
        return [
            {
                # the first range is open below, the last open above: objects sorting in between
                # ranges cannot exist, and none is missed if the selection changed since counting
                "id_gte": start if index else None,
                "id_lt": starts[index + 1] if index + 1 < len(starts) else None,
                "count_objects": min(size, seen - index * size),
            }
            for index, start in enumerate(starts)
        ]

    # -- subtask -------------------------------------------------------------------------------

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        from luna_provider.faces import get_face_engine
        from luna_provider.operators.parts import PartWriter
        from luna_provider.store.objects import stream_rows

        engine = get_face_engine(self.version(run), run.settings.face_detect_max_side)
        query = self.selection(run, part.get("id_gte"), part.get("id_lt"))
        done = failed = 0
        with PartWriter(run, subtask.part_index) as writer:
            for rows in stream_rows(run.engine, query, FETCH_SIZE):
                for object_id, sample_id, storage_key in rows:
                    item = {"object_id": str(object_id), "samples": [str(sample_id)], "status": "extracted"}
                    try:
                        self.extract_one(run, engine, object_id, sample_id, storage_key)
                        done += 1
                    except LunaError as error:
                        run.add_error(error, subtask_id=subtask.subtask_id, object_id=str(object_id))
                        item.update(status="failed", error=error.body())
                        failed += 1
                    writer.write(item)
        self.log.info(
            "task %s: subtask %s: %d extracted, %d failed", run.task.task_id, subtask.subtask_id, done, failed
        )
        return writer.key

    def extract_one(
        self, run: TaskRun, engine: FaceEngine, object_id: uuid.UUID, sample_id: uuid.UUID, storage_key: str
    ) -> None:
        """Extract for one object from its sample and add the result where it is still missing."""
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        from luna_provider.faces.images import ImageDecodeError, decode_image

        what = f"{run.task.content['filters']['objects_type'][:-1]} {object_id}"
        try:
            with run.store.open(storage_key, "rb") as stream:
                sample = decode_image(stream.read())
        except (OSError, ValueError, ImageDecodeError) as error:
            raise SAMPLE_UNREADABLE(sample_id, what, f"{type(error).__name__}: {error}") from None
        faces = run.task.content["filters"]["objects_type"] == "faces"
        try:
            if run.task.content["extraction_target"] == "face_descriptor":
                vector = engine.extract(sample)
                values: dict[str, Any] = {
                    "descriptor_version": engine.descriptor_version.version,
                    "descriptor": engine.descriptor_version.to_bytes(vector),
                }
            else:
                attributes = engine.estimate(sample)
        except Exception as error:
            raise FACE_ENGINE_FAILED(what, f"{type(error).__name__}: {error}") from error
        with run.engine.begin() as connection:
            if run.task.content["extraction_target"] == "face_descriptor":
                if faces:
                    statement = pg_insert(FaceDescriptor).values(face_id=object_id, **values)
                else:
                    statement = pg_insert(EventDescriptor).values(
                        event_id=object_id, descriptor_type="face", **values
                    )
                connection.execute(statement.on_conflict_do_nothing())
                return
            model = Face if faces else Event
            key = Face.face_id if faces else Event.event_id
            connection.execute(
                update(model)
                .where(key == object_id, model.account_id == run.task.account_id)
                .values(
                    age=func.coalesce(model.age, attributes.age),
                    gender=func.coalesce(model.gender, attributes.gender),
                    **({"last_update_time": func.now()} if faces else {}),
                )
            )

    # -- collect -------------------------------------------------------------------------------

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        from luna_provider.operators.parts import merge_parts

        content = run.task.content
        totals: dict[str, Any] = {
            "objects_type": content["filters"]["objects_type"],
            "extraction_target": content["extraction_target"],
            "descriptor_version": (
                self.version(run) if content["extraction_target"] == "face_descriptor" else None
            ),
            "total_objects": 0,
            "extracted": 0,
            "failed": 0,
        }

        def count(item: dict[str, Any]) -> None:
            totals["total_objects"] += 1
            totals["extracted" if item["status"] == "extracted" else "failed"] += 1

        result = merge_parts(run, subtasks, "objects", count, lambda: totals)
        self.log.info("task %s: %s", run.task.task_id, totals)
        return result
