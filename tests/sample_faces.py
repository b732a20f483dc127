"""The shared sample photos (``<repo>/../shared/data/faces``, or ``LUNA_SAMPLE_FACES``) and their truth.

Nothing of the photos is committed; the truth below comes from the folder's own files (folder
names, ``bald_guys_labels.csv``, ``SOURCE.md``) and, for the party photos, from counting by eye.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: faces turned to the camera in each party photo, counted by eye (backs, faces hidden behind others
#: and the tiny figures at the bar of 2008_002079 and in the picture frame of 2007_007763 excluded)
PARTY_FACES = {
    "2007_007763.jpg": 7,
    "2008_001009.jpg": 2,
    "2008_001322.jpg": 3,
    "2008_002079.jpg": 6,
    "2008_002470.jpg": 6,
    "2008_002506.jpg": 3,
}
COLLAGE = "group/bald_guys.jpg"
NO_FACE = "group/dogs.jpg"


def sample_faces_dir() -> Path | None:
    """Return the sample photos folder, or None when it is absent."""
    folder = Path(os.environ.get("LUNA_SAMPLE_FACES") or REPO.parent / "shared" / "data" / "faces")
    return folder if (folder / "johns").is_dir() and (folder / "group").is_dir() else None


def require_sample_faces() -> Path:
    """Return the sample photos folder; skip the test, saying so loudly, when it is absent.

    In CI (``CI`` set) the photos lie beside the clone, so their absence fails the test instead.
    """
    folder = sample_faces_dir()
    if folder is None:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(
            "SAMPLE PHOTOS MISSING: no <repo>/../shared/data/faces (set LUNA_SAMPLE_FACES); "
            "the real-face tests did not run"
        )
    return folder


@dataclass(frozen=True)
class LabelledBox:
    left: int
    top: int
    right: int
    bottom: int
    identity: str


def collage_labels(folder: Path) -> list[LabelledBox]:
    """Return the labelled faces of the collage."""
    with open(folder / "group" / "bald_guys_labels.csv", newline="") as stream:
        return [
            LabelledBox(
                int(row["left"]), int(row["top"]), int(row["right"]), int(row["bottom"]), row["identity"]
            )
            for row in csv.DictReader(stream)
            if row["file"] == COLLAGE
        ]


def chip_identities(folder: Path) -> dict[str, str]:
    """Return each chip's path relative to ``folder`` with its person (the folder name)."""
    return {
        path.relative_to(folder).as_posix(): path.parent.name
        for path in sorted((folder / "johns").glob("*/*.jpg"))
    }


def iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    """Return the intersection over union of two (left, top, right, bottom) boxes."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def match_labels(
    boxes: list[tuple[float, float, float, float]], labels: list[LabelledBox]
) -> list[int | None]:
    """Match detected boxes one-to-one to labels by best overlap (IoU >= 0.5); None when unmatched."""
    pairs = sorted(
        (
            (iou(box, (label.left, label.top, label.right, label.bottom)), box_index, label_index)
            for box_index, box in enumerate(boxes)
            for label_index, label in enumerate(labels)
        ),
        reverse=True,
    )
    matched: list[int | None] = [None] * len(boxes)
    used: set[int] = set()
    for overlap, box_index, label_index in pairs:
        if overlap < 0.5:
            break
        if matched[box_index] is None and label_index not in used:
            matched[box_index] = label_index
            used.add(label_index)
    return matched
