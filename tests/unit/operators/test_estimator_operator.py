"""The estimator's phases on the shared sample photos, checked against their labels and against dlib.

One run over the whole folder is shared by the tests of this module (see ``sample_run``); the
sources are compared on a few photos each.
"""

from __future__ import annotations

import shutil
import uuid
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import delete, func, select

from luna_provider import lifecycle
from luna_provider.operators.clustering import LunaClusteringOperator
from luna_provider.operators.estimator import LunaEstimatorOperator
from luna_provider.store.models import (
    Event,
    EventDescriptor,
    Face,
    FaceDescriptor,
    FaceList,
    ListFace,
    Sample,
    TaskError,
)
from luna_provider.task_types import TaskType
from tests.sample_faces import (
    COLLAGE,
    NO_FACE,
    PARTY_FACES,
    chip_identities,
    collage_labels,
    match_labels,
    require_sample_faces,
)
from tests.servers import closed_port, ftp_server, http_server, put_s3_objects, s3_server
from tests.unit.operators.face_tasks import Stack, module_stack  # noqa: F401  (the stack fixture)

#: a few photos for comparing the sources: two people's chips, a party photo, the negative
SUBSET = [
    "johns/John_Salley/000179_02159509.jpg",
    "johns/John_Simm/000288_00470387.jpg",
    "group/2008_001322.jpg",
    NO_FACE,
]


def policies(**face_policy: Any) -> dict:
    return {"policies": {"storage_policy": {"face_policy": face_policy}}}


@pytest.fixture(scope="module")
def faces_dir() -> Path:
    return require_sample_faces()


@pytest.fixture(scope="module")
def sample_run(stack: Stack, faces_dir: Path) -> dict[str, Any]:
    """Run one estimator task over the whole sample folder, saving faces (in a list) and events."""
    account = uuid.uuid4()
    list_id = stack.new_list(account)
    content = {
        "source": {"source_type": "network_disk", "path": str(faces_dir), "recursive": True},
        "handler": {
            "policies": {
                "storage_policy": {
                    "face_policy": {"link_to_lists": [list_id], "user_data": "sample photos"},
                    "event_policy": {"store_event": 1, "tags": ["samples"], "source": "shared"},
                }
            }
        },
    }
    task_id = stack.create(TaskType.ESTIMATOR, account, content)
    parts = stack.run(LunaEstimatorOperator, task_id, LUNA_ESTIMATOR_SUBTASK_SIZE="16")
    result = stack.result(task_id)
    return {"account": account, "list_id": list_id, "task_id": task_id, "parts": parts, "result": result}


def by_image(result: dict) -> dict[str, dict]:
    return {entry["image"]: entry for entry in result["result"]["images"]}


def corners(face: dict) -> tuple[int, int, int, int]:
    box = face["bbox"]
    return box["x"], box["y"], box["x"] + box["width"], box["y"] + box["height"]


def test_every_visible_face_is_saved(stack, faces_dir, sample_run) -> None:
    images = by_image(sample_run["result"])
    chips = chip_identities(faces_dir)
    party = {f"group/{name}": count for name, count in PARTY_FACES.items()}

    # every image file and nothing else (SOURCE.md and the labels CSV are not images)
    assert set(images) == set(chips) | set(party) | {COLLAGE, NO_FACE}
    assert len(sample_run["parts"]) == -(-len(images) // 16)
    for name in chips:
        assert len(images[name]["faces"]) == 1, name
    for name, count in party.items():
        assert len(images[name]["faces"]) == count, name
    labels = collage_labels(faces_dir)
    matched = match_labels([corners(face) for face in images[COLLAGE]["faces"]], labels)
    assert len(images[COLLAGE]["faces"]) == 24 and None not in matched and len(set(matched)) == 24

    # the negative is the only error, recorded with its file name
    assert images[NO_FACE]["faces"] == [] and images[NO_FACE]["error"]["error_code"] == 28082
    assert [entry["image"] for entry in images.values() if entry["error"]] == [NO_FACE]
    with stack.engine.connect() as connection:
        errors = connection.execute(
            select(TaskError.error_code, TaskError.additional_info).where(
                TaskError.task_id == sample_run["task_id"]
            )
        ).all()
    assert errors == [(28082, NO_FACE)]
    assert sample_run["result"]["errors"][0]["error_code"] == 28082

    total = 55 + 24 + sum(PARTY_FACES.values())
    summary = sample_run["result"]["result"]
    assert (summary["total_images"], summary["total_faces"], summary["failed_images"]) == (
        len(images),
        total,
        1,
    )


def test_each_face_has_descriptor_attributes_sample_and_event(stack, sample_run) -> None:
    account = sample_run["account"]
    entries = [face for entry in sample_run["result"]["result"]["images"] for face in entry["faces"]]
    with stack.engine.connect() as connection:
        faces = connection.execute(
            select(Face.face_id, Face.age, Face.gender, Face.event_id, Face.user_data).where(
                Face.account_id == account
            )
        ).all()
        descriptors = connection.execute(
            select(FaceDescriptor.face_id, FaceDescriptor.descriptor)
            .join(Face, Face.face_id == FaceDescriptor.face_id)
            .where(Face.account_id == account, FaceDescriptor.descriptor_version == 201)
        ).all()
        samples = connection.execute(
            select(Sample.sample_id, Sample.face_id, Sample.event_id, Sample.storage_key).where(
                Sample.account_id == account
            )
        ).all()
        links = connection.scalar(
            select(func.count()).where(ListFace.list_id == uuid.UUID(sample_run["list_id"]))
        )
        events = connection.execute(
            select(Event.event_id, Event.face_id, Event.source, Event.tags, Event.face_detections).where(
                Event.account_id == account
            )
        ).all()
        event_descriptors = connection.scalar(
            select(func.count())
            .select_from(EventDescriptor)
            .join(Event, Event.event_id == EventDescriptor.event_id)
            .where(Event.account_id == account, EventDescriptor.descriptor_type == "face")
        )

    assert len(faces) == len(entries) == len(descriptors) == len(samples) == links == len(events)
    assert event_descriptors == len(events)
    assert {str(row.face_id) for row in faces} == {entry["face_id"] for entry in entries}
    for row in faces:
        assert row.gender in (0, 1) and 0 < row.age <= 100 and row.user_data == "sample photos"
    for _, blob in descriptors:
        vector = np.frombuffer(blob, dtype="<f4")
        assert vector.shape == (128,) and np.isfinite(vector).all() and np.linalg.norm(vector) > 0.1
    for sample in samples:
        assert stack.store.exists(sample.storage_key)
        assert sample.face_id is not None and sample.event_id is not None
    faces_of = {row.face_id: row.event_id for row in faces}
    for event in events:
        assert faces_of[event.face_id] == event.event_id
        assert (event.source, event.tags) == ("shared", ["samples"])
        assert event.face_detections[0]["image_name"]
    # the stored sample is the engine's 150 px aligned chip
    from PIL import Image

    with stack.store.open(samples[0].storage_key, "rb") as stream, Image.open(stream) as image:
        assert image.size == (150, 150)


def test_faces_cluster_into_the_people(stack, faces_dir, sample_run) -> None:
    images = by_image(sample_run["result"])
    person: dict[str, str] = {}
    for name, identity in chip_identities(faces_dir).items():
        person[images[name]["faces"][0]["face_id"]] = identity
    labels = collage_labels(faces_dir)
    collage = images[COLLAGE]["faces"]
    for face, label in zip(collage, match_labels([corners(f) for f in collage], labels), strict=True):
        person[face["face_id"]] = labels[label].identity
    task_id = stack.create(
        TaskType.CLUSTERING,
        sample_run["account"],
        {"filters": {"object_type": "faces", "list_id": sample_run["list_id"]}},
    )

    stack.run(LunaClusteringOperator, task_id)

    clusters = stack.result(task_id)["result"]["clusters"]
    assert sum(len(cluster) for cluster in clusters) == len(person) + sum(PARTY_FACES.values())
    named = [[person[face] for face in cluster if face in person] for cluster in clusters]
    named = [names for names in named if names]
    chip_people = set(chip_identities(faces_dir).values())
    chip_clusters = [names for names in named if set(names) & chip_people]
    collage_clusters = [names for names in named if set(names) - chip_people]
    # 5 chip clusters of 11, 4 collage clusters of 6, each one person's faces and all of them
    assert sorted(Counter(names).most_common() for names in chip_clusters) == sorted(
        [[(identity, 11)] for identity in chip_people]
    )
    assert sorted(Counter(names).most_common() for names in collage_clusters) == sorted(
        [[(identity, 6)] for identity in {label.identity for label in labels}]
    )


@pytest.fixture(scope="module")
def subset_folder(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The subset's photos in a folder of their own, with their relative paths."""
    folder = tmp_path_factory.mktemp("subset")
    for name in SUBSET:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(faces_dir / name, folder / name)
    (folder / "README.txt").write_text("not an image")
    return folder


@pytest.fixture(scope="module")
def subset_reference(stack: Stack, subset_folder: Path) -> dict[str, list[dict]]:
    """The subset estimated from a folder: image -> faces with their descriptors."""
    return run_subset(stack, {"source_type": "network_disk", "path": str(subset_folder), "recursive": True})


def faces_with_descriptors(stack: Stack, task_id: int, account: uuid.UUID) -> dict[str, list[dict]]:
    result = stack.result(task_id)
    with stack.engine.connect() as connection:
        vectors = {
            str(face_id): np.frombuffer(blob, dtype="<f4")
            for face_id, blob in connection.execute(
                select(FaceDescriptor.face_id, FaceDescriptor.descriptor)
                .join(Face, Face.face_id == FaceDescriptor.face_id)
                .where(Face.account_id == account)
            )
        }
    return {
        Path(entry["image"]).name: [
            {**face, "descriptor": vectors[face["face_id"]]} for face in entry["faces"]
        ]
        for entry in result["result"]["images"]
    }


def assert_same_faces(got: dict[str, list[dict]], reference: dict[str, list[dict]]) -> None:
    assert set(got) == {Path(name).name for name in SUBSET}
    for name, faces in reference.items():
        assert [face["bbox"] for face in got[name]] == [face["bbox"] for face in faces], name
        for mine, theirs in zip(got[name], faces, strict=True):
            np.testing.assert_allclose(mine["descriptor"], theirs["descriptor"], atol=1e-5)
            assert (mine["age"], mine["gender"]) == (theirs["age"], theirs["gender"])


@pytest.fixture(scope="module")
def subset_zip(faces_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("served") / "subset.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in SUBSET:
            archive.write(faces_dir / name, name)
        archive.writestr("README.txt", "not an image")
    return path


def run_subset(stack: Stack, source: dict) -> dict[str, list[dict]]:
    account = uuid.uuid4()
    task_id = stack.create(TaskType.ESTIMATOR, account, {"source": source, "handler": policies()})
    stack.run(LunaEstimatorOperator, task_id)
    return faces_with_descriptors(stack, task_id, account)


def test_zip_by_file_url(stack, subset_zip, subset_reference) -> None:
    got = run_subset(stack, {"source_type": "zip", "url": subset_zip.as_uri(), "recursive": True})

    assert_same_faces(got, subset_reference)


def test_zip_over_http(stack, subset_zip, subset_reference) -> None:
    with http_server(subset_zip.parent) as base:
        source = {"source_type": "zip", "url": f"{base}/{subset_zip.name}", "recursive": True}
        got = run_subset(stack, source)

    assert_same_faces(got, subset_reference)


def test_s3_bucket(stack, faces_dir, subset_reference) -> None:
    with s3_server() as endpoint:
        put_s3_objects(endpoint, "images", {f"in/{name}": (faces_dir / name).read_bytes() for name in SUBSET})
        source = {
            "source_type": "s3",
            "bucket_name": "images",
            "endpoint": endpoint,
            "prefix": "in/",
            "recursive": True,
            "save_origin": True,
            "authorization": {"s3_key_id": "k", "s3_key": "s"},
        }
        got = run_subset(stack, source)

    assert_same_faces(got, subset_reference)
    assert len(list(stack.store.fs.find(stack.store.path("images")))) == len(SUBSET)


def test_ftp_server(stack, subset_folder, subset_reference) -> None:
    with ftp_server(subset_folder) as port:
        source = {
            "source_type": "ftp",
            "host": "127.0.0.1",
            "port": port,
            "user": "luna",
            "password": "secret",
            "recursive": True,
        }
        got = run_subset(stack, source)

    assert_same_faces(got, subset_reference)


@pytest.mark.parametrize(
    "source",
    [
        {"source_type": "ftp", "host": "127.0.0.1", "port": 0},
        {"source_type": "zip", "url": "http://127.0.0.1:0/images.zip"},
        {"source_type": "network_disk", "path": "/nowhere/images"},
    ],
    ids=["ftp", "http-zip", "folder"],
)
def test_unreachable_source_fails_the_task(stack, source) -> None:
    source = dict(source)
    if source.get("port") == 0:
        source["port"] = closed_port()
    if "url" in source:
        source["url"] = source["url"].replace(":0/", f":{closed_port()}/")
    account = uuid.uuid4()
    task_id = stack.create(TaskType.ESTIMATOR, account, {"source": source, "handler": policies()})

    with pytest.raises(Exception, match="Image source cannot be read"):
        stack.run(LunaEstimatorOperator, task_id)

    assert lifecycle.get_task(stack.engine, task_id).task_status == 3
    with stack.engine.connect() as connection:
        code, detail = connection.execute(
            select(TaskError.error_code, TaskError.detail).where(TaskError.task_id == task_id)
        ).one()
    assert code == 28080 and detail.startswith("Image source cannot be read: ")


def test_bad_images_are_errors_and_the_rest_goes_on(stack, faces_dir, tmp_path) -> None:
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(faces_dir / SUBSET[0], folder / "good.jpg")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (folder / "huge.png").write_bytes((faces_dir / SUBSET[2]).read_bytes())
    account = uuid.uuid4()
    source = {"source_type": "network_disk", "path": str(folder)}
    task_id = stack.create(TaskType.ESTIMATOR, account, {"source": source, "handler": policies()})
    limit = str((faces_dir / SUBSET[2]).stat().st_size - 1)

    stack.run(LunaEstimatorOperator, task_id, LUNA_ESTIMATOR_MAX_IMAGE_SIZE=limit)

    images = by_image(stack.result(task_id))
    assert len(images["good.jpg"]["faces"]) == 1 and images["good.jpg"]["error"] is None
    assert images["broken.jpg"]["error"]["error_code"] == 28081
    assert images["huge.png"]["error"]["error_code"] == 28085
    with stack.engine.connect() as connection:
        errors = set(
            connection.execute(
                select(TaskError.error_code, TaskError.additional_info).where(TaskError.task_id == task_id)
            ).all()
        )
    assert errors == {(28081, "broken.jpg"), (28085, "huge.png")}
    stack.settings(LUNA_ESTIMATOR_MAX_IMAGE_SIZE="52428800")


def test_face_warps_skip_detection(stack, faces_dir, tmp_path) -> None:
    import dlib
    from PIL import Image

    from luna_provider.faces.dlib_engine import model_folder

    network = dlib.face_recognition_model_v1(
        str(model_folder() / "dlib_face_recognition_resnet_model_v1.dat")
    )
    folder = faces_dir / "johns" / "John_Shimkus"
    account = uuid.uuid4()
    content = {
        "source": {"source_type": "network_disk", "path": str(folder)},
        "handler": {"policies": {"detect_policy": {"detect_face": 0}}},
        "image_type": 1,
    }
    task_id = stack.create(TaskType.ESTIMATOR, account, content)

    stack.run(LunaEstimatorOperator, task_id)

    got = faces_with_descriptors(stack, task_id, account)
    assert len(got) == 11
    for name, faces in got.items():
        chip = np.asarray(Image.open(folder / name).convert("RGB"))
        expected = np.asarray(network.compute_face_descriptor(chip), dtype=np.float32)
        assert len(faces) == 1 and faces[0]["bbox"] == {"x": 0, "y": 0, "width": 150, "height": 150}
        np.testing.assert_allclose(faces[0]["descriptor"], expected, atol=1e-5)


def test_policies_choose_what_is_saved(stack, faces_dir) -> None:
    account = uuid.uuid4()
    content = {
        "source": {"source_type": "network_disk", "path": str(faces_dir / "johns" / "John_Simm")},
        "handler": {
            "policies": {
                "detect_policy": {"extract_face_descriptor": 0, "estimate_basic_attributes": 0},
                "storage_policy": {
                    "face_policy": {"store_face": 0},
                    "event_policy": {"store_event": 1, "user_data": "door"},
                },
            }
        },
    }
    task_id = stack.create(TaskType.ESTIMATOR, account, content)

    stack.run(LunaEstimatorOperator, task_id)

    faces = [face for entry in stack.result(task_id)["result"]["images"] for face in entry["faces"]]
    assert len(faces) == 11
    assert all(f["face_id"] is None and f["event_id"] and f["age"] is None for f in faces)
    with stack.engine.connect() as connection:
        assert connection.scalar(select(func.count()).where(Face.account_id == account)) == 0
        events = connection.execute(
            select(Event.user_data, Event.age).where(Event.account_id == account)
        ).all()
        assert events == [("door", None)] * 11
        assert (
            connection.scalar(
                select(func.count())
                .select_from(EventDescriptor)
                .join(Event, Event.event_id == EventDescriptor.event_id)
                .where(Event.account_id == account)
            )
            == 0
        )


def test_rerun_of_a_subtask_creates_no_duplicates(stack, faces_dir) -> None:
    account = uuid.uuid4()
    source = {"source_type": "network_disk", "path": str(faces_dir / "johns" / "John_Savage")}
    task_id = stack.create(TaskType.ESTIMATOR, account, {"source": source, "handler": policies()})
    settings = stack.settings()
    kwargs = {"engine": stack.engine, "store": stack.store, "settings": settings}
    (part,) = LunaEstimatorOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    operator = LunaEstimatorOperator(task_id="subtask", phase="subtask", part=part)
    run = operator_run(stack, task_id, settings)
    subtask = lifecycle.start_subtask(stack.engine, part["subtask_id"])

    operator.run_part(run, subtask, part)  # a worker that crashed after saving
    operator.run_part(run, subtask, part)  # and its retry

    with stack.engine.connect() as connection:
        assert connection.scalar(select(func.count()).where(Face.account_id == account)) == 11
        assert connection.scalar(select(func.count()).where(Sample.account_id == account)) == 11


def operator_run(stack: Stack, task_id: int, settings: Any) -> Any:
    from luna_provider.operators.base import TaskRun

    return TaskRun(
        task=lifecycle.get_task(stack.engine, task_id),
        engine=stack.engine,
        store=stack.store,
        settings=settings,
    )


def test_list_deleted_before_the_run_fails_it(stack, faces_dir) -> None:
    account = uuid.uuid4()
    list_id = stack.new_list(account)
    source = {"source_type": "network_disk", "path": str(faces_dir / "johns" / "John_Savage")}
    task_id = stack.create(
        TaskType.ESTIMATOR, account, {"source": source, "handler": policies(link_to_lists=[list_id])}
    )
    with stack.engine.begin() as connection:
        connection.execute(delete(FaceList).where(FaceList.list_id == uuid.UUID(list_id)))

    with pytest.raises(Exception, match=list_id):
        stack.run(LunaEstimatorOperator, task_id)

    with stack.engine.connect() as connection:
        assert connection.scalar(select(TaskError.error_code).where(TaskError.task_id == task_id)) == 22003


def test_cancel_stops_a_running_subtask(stack, faces_dir) -> None:
    from airflow.sdk.exceptions import AirflowSkipException

    account = uuid.uuid4()
    source = {"source_type": "network_disk", "path": str(faces_dir / "johns" / "John_Schneider")}
    task_id = stack.create(TaskType.ESTIMATOR, account, {"source": source, "handler": policies()})
    settings = stack.settings()
    kwargs = {"engine": stack.engine, "store": stack.store, "settings": settings}
    (part,) = LunaEstimatorOperator(task_id="split", phase="split").run_phase(task_id, **kwargs)
    subtask = lifecycle.start_subtask(stack.engine, part["subtask_id"])
    lifecycle.cancel_task(stack.engine, task_id)

    with pytest.raises(AirflowSkipException):
        LunaEstimatorOperator(task_id="subtask", phase="subtask", part=part).run_part(
            operator_run(stack, task_id, settings), subtask, part
        )

    with stack.engine.connect() as connection:
        # it stopped at the first check, before the last of the 11 images
        assert connection.scalar(select(func.count()).where(Face.account_id == account)) == 10
    assert lifecycle.get_task(stack.engine, task_id).task_status == 2


def test_roc_of_the_labelled_sample_faces_matches_scikit_learn(stack, faces_dir, sample_run) -> None:
    from sklearn.metrics import roc_auc_score

    from luna_provider.compute.descriptors import DLIB_RESNET_V1
    from luna_provider.operators.roc import LunaRocOperator

    images = by_image(sample_run["result"])
    items = [
        {"object_id": images[name]["faces"][0]["face_id"], "label": identity}
        for name, identity in sorted(chip_identities(faces_dir).items())
    ]
    labels = collage_labels(faces_dir)
    collage = images[COLLAGE]["faces"]
    for face, label in zip(collage, match_labels([corners(f) for f in collage], labels), strict=True):
        items.append({"object_id": face["face_id"], "label": labels[label].identity})
    task_id = stack.create(TaskType.ROC, sample_run["account"], {"markup": {"items": items}})

    stack.run(LunaRocOperator, task_id)

    result = stack.result(task_id)["result"]
    # the reference: every unordered pair, similarity from the stored descriptors in float64, on the
    # task's documented score grid (2**-20), labelled by whether the two people are the same
    with stack.engine.connect() as connection:
        blobs = dict(
            connection.execute(
                select(FaceDescriptor.face_id, FaceDescriptor.descriptor).where(
                    FaceDescriptor.face_id.in_([uuid.UUID(item["object_id"]) for item in items])
                )
            ).all()
        )
    vectors = DLIB_RESNET_V1.from_bytes([blobs[uuid.UUID(item["object_id"])] for item in items])
    similarity = DLIB_RESNET_V1.similarity(vectors, vectors)
    upper = np.triu_indices(len(items), k=1)
    scores = np.round(similarity[upper] * 2**20) / 2**20
    names = np.array([item["label"] for item in items])
    same = names[upper[0]] == names[upper[1]]
    assert len(items) == 55 + 24
    assert abs(result["auc"] - roc_auc_score(same, scores)) < 1e-9
    assert result["auc"] > 0.99


def test_cross_match_of_the_sample_chips_matches_brute_force(stack, faces_dir, sample_run) -> None:
    from luna_provider.compute.descriptors import DLIB_RESNET_V1
    from luna_provider.operators.cross_match import LunaCrossMatchOperator

    images = by_image(sample_run["result"])
    person = {images[name]["faces"][0]["face_id"]: who for name, who in chip_identities(faces_dir).items()}
    side = {"filters": {"object_type": "faces", "face_ids": sorted(person)}}
    content = {"references": side, "candidates": side, "threshold": 0.0, "limit": 10}
    task_id = stack.create(TaskType.CROSS_MATCH, sample_run["account"], content)

    stack.run(LunaCrossMatchOperator, task_id)

    got = {entry["reference_id"]: entry["candidates"] for entry in stack.result(task_id)["result"]}
    ids = sorted(person)
    with stack.engine.connect() as connection:
        blobs = dict(
            connection.execute(
                select(FaceDescriptor.face_id, FaceDescriptor.descriptor).where(
                    FaceDescriptor.face_id.in_([uuid.UUID(face) for face in ids])
                )
            ).all()
        )
    vectors = DLIB_RESNET_V1.from_bytes([blobs[uuid.UUID(face)] for face in ids])
    similarity = DLIB_RESNET_V1.similarity(vectors, vectors)
    for row, reference in enumerate(ids):
        # brute force: every other chip, most similar first, ties by id, the best 10
        ranked = sorted((-similarity[row, col], ids[col]) for col in range(len(ids)) if col != row)[:10]
        assert [c["candidate_id"] for c in got[reference]] == [face for _, face in ranked]
        np.testing.assert_allclose(
            [c["similarity"] for c in got[reference]], [-s for s, _ in ranked], atol=1e-9
        )
        # real faces: a chip's 10 nearest chips are the other 10 photos of the same person
        assert {person[face] for _, face in ranked} == {person[reference]}
