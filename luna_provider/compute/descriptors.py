"""Descriptor versions, their byte layout and how similarity in [0, 1] is derived from them.

Descriptors are stored as little-endian float32 bytes. Each version names its length and its
similarity function, so a new model is added as a new version without touching the tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class DescriptorVersion:
    """A descriptor version: its length and its distance-to-similarity mapping.

    :param version: the integer version, as in Luna.
    :param length: number of float32 components.
    :param name: the model that produces it.
    :param scale: euclidean distance at which similarity reaches 0; similarity is
        ``max(0, 1 - distance / scale)``.
    """

    version: int
    length: int
    name: str
    scale: float

    def similarity(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Return the similarity matrix of the rows of ``a`` against the rows of ``b``."""
        import numpy as np

        a64 = a.astype(np.float64, copy=False)
        b64 = b.astype(np.float64, copy=False)
        squared = (a64 * a64).sum(1)[:, None] + (b64 * b64).sum(1)[None, :] - 2.0 * (a64 @ b64.T)
        np.maximum(squared, 0.0, out=squared)
        distance = np.sqrt(squared, out=squared)
        return np.clip(1.0 - distance / self.scale, 0.0, 1.0, out=distance)

    def linked(self, a: np.ndarray, b: np.ndarray, threshold: float) -> np.ndarray:
        """Return which pairs of rows of ``a`` and ``b`` have a similarity above ``threshold``.

        Same answer as ``similarity(a, b) > threshold``, compared on squared distances so no square
        root or clipping is spent on pairs that are far apart.
        """
        import numpy as np

        cut = self.threshold_distance(threshold)
        if cut <= 0:
            return np.zeros((len(a), len(b)), dtype=bool)
        a64 = a.astype(np.float64, copy=False)
        b64 = b.astype(np.float64, copy=False)
        squared = a64 @ b64.T
        squared *= -2.0
        squared += (a64 * a64).sum(1)[:, None]
        squared += (b64 * b64).sum(1)[None, :]
        return squared < cut * cut

    def threshold_distance(self, threshold: float) -> float:
        """Return the euclidean distance that corresponds to a similarity ``threshold``."""
        return (1.0 - threshold) * self.scale

    def to_bytes(self, vector: np.ndarray) -> bytes:
        """Serialise one descriptor."""
        import numpy as np

        return np.asarray(vector, dtype="<f4").reshape(self.length).tobytes()

    def from_bytes(self, blobs: list[bytes]) -> np.ndarray:
        """Deserialise descriptors into an ``(n, length)`` float32 matrix."""
        import numpy as np

        if not blobs:
            return np.empty((0, self.length), dtype=np.float32)
        return np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), self.length)


#: dlib's ResNet face model gives 128-d descriptors compared by euclidean distance, with 0.6 as the
#: usual same-person cut. A scale of 1.2 maps that cut to similarity 0.5, the default threshold.
DLIB_RESNET_V1 = DescriptorVersion(version=201, length=128, name="dlib_face_recognition_resnet_v1", scale=1.2)

DESCRIPTOR_VERSIONS: dict[int, DescriptorVersion] = {DLIB_RESNET_V1.version: DLIB_RESNET_V1}


class UnknownDescriptorVersion(KeyError):
    """The requested descriptor version is not registered."""


def get_descriptor_version(version: int) -> DescriptorVersion:
    """Return the registered descriptor version ``version``."""
    try:
        return DESCRIPTOR_VERSIONS[version]
    except KeyError:
        raise UnknownDescriptorVersion(version) from None
