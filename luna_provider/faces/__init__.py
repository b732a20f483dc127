"""The face engine: detect faces, align them into samples, extract descriptors, estimate attributes.

Tasks talk to a :class:`FaceEngine` only, found by descriptor version with :func:`get_face_engine`,
so another model is added as a new descriptor version (a new engine class registered in
:data:`ENGINES` and its :class:`~luna_provider.compute.descriptors.DescriptorVersion`) without
touching the tasks.

A *sample* is what an engine keeps of a face: an aligned, square RGB ``uint8`` image (a "face
warp"). Samples are stored losslessly (PNG), so a descriptor extracted again from a stored sample
equals the one extracted when the face was found.
"""

from __future__ import annotations

import abc
import functools
import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    import numpy as np

    from luna_provider.compute.descriptors import DescriptorVersion

#: descriptor version -> "module:class" of the engine that extracts it
ENGINES: dict[int, str] = {201: "luna_provider.faces.dlib_engine:DlibFaceEngine"}

#: Luna's gender coding of basic attributes
FEMALE, MALE = 0, 1


@dataclass(frozen=True)
class BoundingBox:
    """A face's box in the image, in pixels, as Luna's ``rect``: left, top, width, height."""

    x: int
    y: int
    width: int
    height: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "width": self.width, "height": self.height}


@dataclass(frozen=True)
class FaceDetection:
    """One detected face.

    :ivar bbox: the detector's box, clipped to the image.
    :ivar score: the detector's confidence (engine-specific scale; higher is surer).
    :ivar landmarks: ``(n, 2)`` float array of landmark points (x, y) in image coordinates.
    """

    bbox: BoundingBox
    score: float
    landmarks: np.ndarray


@dataclass(frozen=True)
class BasicAttributes:
    """Age in years and gender (0 female, 1 male, as Luna codes it), with the model's confidences."""

    age: float
    gender: int
    age_confidence: float
    gender_confidence: float


class FaceEngine(abc.ABC):
    """Detect, align, extract and estimate; one engine per descriptor version.

    Engines are built once per process (:func:`get_face_engine`) and used from one thread.
    """

    #: the descriptor version this engine extracts
    descriptor_version: ClassVar[DescriptorVersion]
    #: edge in pixels of the square samples the engine produces and reads
    sample_size: ClassVar[int]

    @abc.abstractmethod
    def detect(self, image: np.ndarray) -> list[FaceDetection]:
        """Return the faces in an RGB ``uint8`` image, most confident first."""

    @abc.abstractmethod
    def align(self, image: np.ndarray, detection: FaceDetection) -> np.ndarray:
        """Return the sample of a detected face: aligned, ``sample_size`` square, RGB ``uint8``."""

    @abc.abstractmethod
    def to_sample(self, warp: np.ndarray) -> np.ndarray:
        """Return the sample of an image that already is an aligned face (a "face warp")."""

    @abc.abstractmethod
    def extract(self, sample: np.ndarray) -> np.ndarray:
        """Return the descriptor of a sample as a float32 vector of the version's length."""

    @abc.abstractmethod
    def estimate(self, sample: np.ndarray) -> BasicAttributes:
        """Return the basic attributes (age, gender) of a sample."""


class UnknownFaceEngine(LookupError):
    """No engine extracts the requested descriptor version."""


def has_face_engine(version: int) -> bool:
    """Tell whether some engine extracts descriptor version ``version``."""
    return version in ENGINES


@functools.cache
def get_face_engine(version: int, detect_max_side: int = 2048) -> FaceEngine:
    """Return this process's engine for descriptor version ``version`` (built on first use).

    :param detect_max_side: images with a longer side are scaled down for detection.
    """
    try:
        module_name, class_name = ENGINES[version].split(":")
    except KeyError:
        raise UnknownFaceEngine(version) from None
    engine_class = getattr(importlib.import_module(module_name), class_name)
    return engine_class(detect_max_side=detect_max_side)
