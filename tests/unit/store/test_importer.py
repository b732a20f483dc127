from __future__ import annotations

import base64
import json
import uuid

import numpy as np
from sqlalchemy import func, select

from luna_provider.compute.descriptors import DLIB_RESNET_V1
from luna_provider.importer import import_faces, read_lines
from luna_provider.store.models import Face, FaceDescriptor, FaceList, ListFace


def test_import_file_with_lists_and_bad_lines(engine, account_id, tmp_path) -> None:
    vector = np.linspace(-0.1, 0.1, 128).astype(np.float32)
    list_id = str(uuid.uuid4())
    lines = [
        {"descriptor": vector.tolist(), "external_id": "a", "user_data": "Ann", "list_ids": [list_id]},
        {"descriptor": base64.b64encode(vector.astype("<f4").tobytes()).decode(), "list_ids": [list_id]},
        {"descriptor": [1.0, 2.0]},
        {"descriptor": vector.tolist(), "colour": "red"},
        {"user_data": "no descriptor"},
    ]
    path = tmp_path / "faces.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n{broken\n")

    report = import_faces(engine, account_id, read_lines(str(path)), DLIB_RESNET_V1)

    assert (report.faces, report.lists_created) == (2, 1)
    assert [problem.split(":")[0] for problem in report.rejected] == ["line 3", "line 4", "line 5", "line 6"]
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(ListFace)) == 2
        assert connection.scalar(select(FaceList.account_id)) == account_id
        blobs = connection.scalars(select(FaceDescriptor.descriptor)).all()
        assert connection.scalar(select(Face.user_data).where(Face.external_id == "a")) == "Ann"
    for blob in blobs:
        np.testing.assert_array_equal(np.frombuffer(blob, dtype="<f4"), vector)


def test_faces_of_another_account_are_not_touched(engine, account_id) -> None:
    face_id = str(uuid.uuid4())
    record = {"face_id": face_id, "descriptor": [0.0] * 128, "user_data": "mine"}
    import_faces(engine, account_id, [(1, record)], DLIB_RESNET_V1)

    report = import_faces(engine, uuid.uuid4(), [(1, {**record, "user_data": "theirs"})], DLIB_RESNET_V1)

    assert report.faces == 0
    assert len(report.rejected) == 1
    with engine.connect() as connection:
        assert connection.scalar(select(Face.user_data)) == "mine"
