from __future__ import annotations

from luna_provider import demo
from tests.sample_faces import collage_labels, require_sample_faces


def test_sample_folder_from_the_environment(monkeypatch, tmp_path) -> None:
    (tmp_path / "johns").mkdir()
    monkeypatch.setenv("LUNA_SAMPLE_FACES", str(tmp_path))
    assert demo.sample_faces_folder() == tmp_path.resolve()

    monkeypatch.setenv("LUNA_SAMPLE_FACES", str(tmp_path / "nowhere"))
    assert demo.sample_faces_folder() is None


def test_without_photos_the_demo_says_so_and_clusters_synthetic_faces(monkeypatch, capsys) -> None:
    monkeypatch.setattr(demo, "sample_faces_folder", lambda: None)
    monkeypatch.setattr(demo, "run_synthetic_demo", lambda settings: {"synthetic": settings})

    assert demo.run_demo("settings") == {"synthetic": "settings"}
    assert "no sample photos" in capsys.readouterr().out


def test_true_names_come_from_folders_and_labels() -> None:
    folder = require_sample_faces()
    labels = collage_labels(folder)
    collage = [
        {
            "face_id": f"c{index}",
            "bbox": {"x": b.left + 3, "y": b.top - 2, "width": b.right - b.left, "height": b.bottom - b.top},
        }
        for index, b in enumerate(labels)
    ]
    images = [
        {"image": "group/bald_guys.jpg", "faces": collage},
        {
            "image": "johns/John_Simm/1.jpg",
            "faces": [{"face_id": "j", "bbox": {"x": 0, "y": 0, "width": 9, "height": 9}}],
        },
        {
            "image": "group/2008_001322.jpg",
            "faces": [{"face_id": "p", "bbox": {"x": 0, "y": 0, "width": 9, "height": 9}}],
        },
        {"image": "group/dogs.jpg", "faces": []},
    ]

    names = demo.true_names(folder, images)

    assert names == {
        **{f"c{index}": label.identity for index, label in enumerate(labels)},
        "j": "John_Simm",
        "p": "unknown from 2008_001322.jpg",
    }
