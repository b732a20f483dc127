"""Estimator: find the faces in the images of a source, save them as faces and/or events."""

from __future__ import annotations

import json
import math
import time
from typing import TYPE_CHECKING, Any

from luna_provider import lifecycle
from luna_provider.errors import (
    FACE_ENGINE_FAILED,
    IMAGE_UNREADABLE,
    LIST_NOT_FOUND,
    NO_FACES_FOUND,
    SOURCE_FILE_FAILED,
    LunaError,
)
from luna_provider.face_tasks import detect_policy
from luna_provider.operators.base import LunaTaskOperator, TaskResult, TaskRun
from luna_provider.task_types import TaskStatus, TaskType

if TYPE_CHECKING:
    from luna_provider.faces import FaceEngine
    from luna_provider.sources import ImageSource
    from luna_provider.store.face_records import FaceRecorder
    from luna_provider.store.models import Subtask

#: images between two checks whether the task was cancelled meanwhile
CANCEL_CHECK_EVERY = 10


class LunaEstimatorOperator(LunaTaskOperator):
    """Estimate the faces of a source's images: detect, store samples, extract, estimate, save.

    ``split`` lists the source's image files (streamed) into a manifest in the object store and
    plans subtasks of ``LUNA_ESTIMATOR_SUBTASK_SIZE`` images; a remote zip archive is copied into
    the object store first, so the source is fetched once. Each ``subtask`` reads its images one
    by one; ``collect`` streams the per-image entries into the result.
    """

    task_type = TaskType.ESTIMATOR

    # -- split ---------------------------------------------------------------------------------

    def split(self, run: TaskRun) -> list[dict]:
        from luna_provider.sources import NameFilter, needs_staging, open_source, stage_archive
        from luna_provider.store.face_records import StoragePolicy, missing_lists

        content = run.task.content
        source = content["source"]
        policy = StoragePolicy.from_policies(content["handler"]["policies"])
        missing = missing_lists(run.engine, run.task.account_id, policy.list_ids)
        if missing:
            raise LIST_NOT_FOUND(missing[0])
        staged = None
        if needs_staging(source):
            staged = self.staged_key(run)
            size = stage_archive(source, run.settings, run.store, staged)
            self.log.info(
                "task %s: copied the archive (%d bytes) into the object store", run.task.task_id, size
            )
        name_filter = NameFilter(
            prefix=source.get("prefix", "") if source["source_type"] != "s3" else "",
            postfix=source.get("postfix", ""),
            extensions=run.settings.estimator_extension_list,
        )

        def on_error(folder: str, error: BaseException) -> None:
            run.add_error(SOURCE_FILE_FAILED(folder, f"{type(error).__name__}: {error}"), object_id=folder)

        base = run.settings.estimator_subtask_size
        offsets = []  # byte offset of every base-th name, to cut subtasks without a second pass
        total = position = 0
        with (
            open_source(source, run.settings, run.store, staged) as images,
            run.store.open(self.manifest_key(run), "wb") as manifest,
        ):
            for name in images.names(name_filter, on_error):
                if total % base == 0:
                    offsets.append(position)
                line = json.dumps(name).encode() + b"\n"
                manifest.write(line)
                position += len(line)
                total += 1
        self.log.info("task %s: %d images in %s", run.task.task_id, total, images.label)
        step = max(1, math.ceil(math.ceil(total / run.settings.max_subtasks) / base))
        size = base * step
        return [
            {
                "offset": offsets[index],
                "start": index * base,
                "count_objects": min(size, total - index * base),
            }
            for index in range(0, len(offsets), step)
        ]

    @staticmethod
    def manifest_key(run: TaskRun) -> str:
        return f"{run.work_prefix}/files.jsonl"

    @staticmethod
    def staged_key(run: TaskRun) -> str:
        return f"{run.work_prefix}/source.zip"

    # -- subtask -------------------------------------------------------------------------------

    def run_part(self, run: TaskRun, subtask: Subtask, part: dict) -> str | None:
        from luna_provider.faces import get_face_engine
        from luna_provider.operators.parts import PartWriter
        from luna_provider.sources import needs_staging, open_source
        from luna_provider.store.face_records import FaceRecorder, StoragePolicy

        content = run.task.content
        source = content["source"]
        version = run.settings.default_descriptor_version
        engine = get_face_engine(version, run.settings.face_detect_max_side)
        recorder = FaceRecorder(
            run.engine,
            run.store,
            run.task.account_id,
            run.task.task_id,
            StoragePolicy.from_policies(content["handler"]["policies"]),
            engine.descriptor_version,
        )
        staged = self.staged_key(run) if needs_staging(source) else None
        started = time.monotonic()
        faces = 0
        with (
            open_source(source, run.settings, run.store, staged) as images,
            PartWriter(run, subtask.part_index) as writer,
        ):
            for number, name in enumerate(self.names(run, part)):
                if number and number % CANCEL_CHECK_EVERY == 0:
                    self.stop_if_final(run)
                entry = self.process(run, subtask, images, engine, recorder, name)
                faces += len(entry["faces"])
                writer.write(entry)
        elapsed = time.monotonic() - started
        self.log.info(
            "task %s: subtask %s: %d images, %d faces in %.1f s",
            run.task.task_id,
            subtask.subtask_id,
            writer.count,
            faces,
            elapsed,
        )
        return writer.key

    def names(self, run: TaskRun, part: dict) -> list[str]:
        """Read the subtask's image names from the manifest."""
        names = []
        with run.store.open(self.manifest_key(run), "rb") as manifest:
            manifest.seek(part["offset"])
            for _ in range(part["count_objects"]):
                line = manifest.readline()
                if not line:
                    break
                names.append(json.loads(line))
        return names

    @staticmethod
    def stop_if_final(run: TaskRun) -> None:
        """Stop a subtask whose task was cancelled or failed meanwhile."""
        from airflow.sdk.exceptions import AirflowSkipException

        task = lifecycle.get_task(run.engine, run.task.task_id)
        if task is None or TaskStatus(task.task_status).is_final:
            raise AirflowSkipException(f"task {run.task.task_id} is final; subtask stopped")

    def process(
        self,
        run: TaskRun,
        subtask: Subtask,
        images: ImageSource,
        engine: FaceEngine,
        recorder: FaceRecorder,
        name: str,
    ) -> dict[str, Any]:
        """Process one image; record its problem as a task error and return its result entry."""
        entry: dict[str, Any] = {"image": name, "faces": [], "error": None}
        try:
            entry["faces"] = self.faces_of(run, images, engine, recorder, name)
        except LunaError as error:
            run.add_error(error, subtask_id=subtask.subtask_id, object_id=name)
            entry["error"] = error.body()
        return entry

    def faces_of(
        self, run: TaskRun, images: ImageSource, engine: FaceEngine, recorder: FaceRecorder, name: str
    ) -> list[dict[str, Any]]:
        """Find, estimate and save the faces of one image; raise a LunaError for a bad image."""
        from luna_provider.faces import BoundingBox
        from luna_provider.faces.images import ImageDecodeError, decode_image, encode_png
        from luna_provider.store.face_records import FoundFace

        content = run.task.content
        policy = detect_policy(content)
        try:
            data = images.read(name, run.settings.estimator_max_image_size)
        except LunaError:
            raise
        except Exception as error:
            raise SOURCE_FILE_FAILED(name, f"{type(error).__name__}: {error}") from error
        try:
            image = decode_image(data)
        except ImageDecodeError as error:
            raise IMAGE_UNREADABLE(name, error) from None
        origin = self.save_origin(run, name, data) if content["source"].get("save_origin") else None
        del data
        try:
            if content.get("image_type", 0) == 1:
                height, width = image.shape[:2]
                found = [(BoundingBox(0, 0, width, height), 1.0, engine.to_sample(image))]
            else:
                found = [
                    (detection.bbox, detection.score, engine.align(image, detection))
                    for detection in engine.detect(image)
                ]
            if not found:
                raise NO_FACES_FOUND(name)
            faces = [
                FoundFace(
                    bbox=bbox,
                    score=score,
                    sample_png=encode_png(sample),
                    descriptor=(
                        engine.descriptor_version.to_bytes(engine.extract(sample))
                        if policy["extract_face_descriptor"]
                        else None
                    ),
                    attributes=engine.estimate(sample) if policy["estimate_basic_attributes"] else None,
                )
                for bbox, score, sample in found
            ]
        except LunaError:
            raise
        except Exception as error:
            raise FACE_ENGINE_FAILED(name, f"{type(error).__name__}: {error}") from error
        return recorder.save(name, faces, origin)

    @staticmethod
    def save_origin(run: TaskRun, name: str, data: bytes) -> str:
        """Keep the source image in the object store (S3 ``save_origin``); return its key."""
        import posixpath
        import uuid

        from luna_provider.store.face_records import ESTIMATOR_NAMESPACE

        image_id = uuid.uuid5(ESTIMATOR_NAMESPACE, f"{run.task.task_id}\n{name}\norigin")
        extension = posixpath.splitext(name)[1].lower()[:8]
        key = f"images/{run.task.account_id}/{image_id}{extension}"
        with run.store.open(key, "wb") as stream:
            stream.write(data)
        return key

    # -- collect -------------------------------------------------------------------------------

    def collect(self, run: TaskRun, subtasks: list[Subtask]) -> TaskResult:
        from luna_provider.operators.parts import merge_parts

        totals = {"total_images": 0, "images_with_faces": 0, "failed_images": 0, "total_faces": 0}

        def count(entry: dict[str, Any]) -> None:
            totals["total_images"] += 1
            totals["images_with_faces"] += bool(entry["faces"])
            totals["failed_images"] += entry["error"] is not None
            totals["total_faces"] += len(entry["faces"])

        result = merge_parts(run, subtasks, "images", count, lambda: totals)
        self.log.info("task %s: %s", run.task.task_id, totals)
        return result
