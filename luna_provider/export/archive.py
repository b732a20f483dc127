"""CSV parts written by subtasks, and the zip archive ``collect`` streams them into.

Each subtask writes its rows (no header) to a work file, and the samples of its objects to a
second one, one JSON line per image. ``collect`` writes the archive straight into the object store:
the header, then every part copied chunk by chunk into one deflated CSV entry, then every image
copied from the store. No part and no image is ever held whole in memory, and the archive works
on output that cannot seek (an S3 upload), where ``zipfile`` writes data descriptors instead of
going back to patch the entry headers.
"""

from __future__ import annotations

import csv
import io
import json
import posixpath
import re
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from luna_provider.storage import ObjectStore

#: bytes copied at a time into the archive
COPY_CHUNK = 1 << 20
#: file-name extensions of samples kept in the archive names (anything else is dropped)
_EXTENSION = re.compile(r"^\.[A-Za-z0-9]{1,8}$")


def csv_writer(stream: IO[str], delimiter: str) -> Any:
    """Return the CSV writer every export uses (RFC 4180 quoting and line ends)."""
    return csv.writer(stream, delimiter=delimiter, lineterminator="\r\n")


def csv_line(cells: Sequence[str], delimiter: str) -> bytes:
    """Return one CSV line as UTF-8 bytes."""
    text = io.StringIO()
    csv_writer(text, delimiter).writerow(cells)
    return text.getvalue().encode()


def part_keys(work_prefix: str, part_index: int) -> tuple[str, str]:
    """Return the work-file keys of a subtask's CSV part and of its image list."""
    return f"{work_prefix}/part_{part_index}.csv", f"{work_prefix}/part_{part_index}.images.jsonl"


def image_name(folder: str, object_id: str, sample_id: str, storage_key: str) -> str:
    """Return the archive name of a sample: ``images/<folder><object_id>/<sample_id><.ext>``."""
    extension = posixpath.splitext(storage_key)[1]
    return f"images/{folder}{object_id}/{sample_id}{extension if _EXTENSION.match(extension) else ''}"


class PartWriter:
    """Write one subtask's CSV rows and image list to the object store.

    :param store: the object store.
    :param keys: the keys of the CSV part and of the image list (:func:`part_keys`).
    :param delimiter: CSV delimiter.
    :param with_images: write the image list (otherwise samples given to :meth:`write` are ignored).
    """

    def __init__(
        self, store: ObjectStore, keys: tuple[str, str], delimiter: str, *, with_images: bool
    ) -> None:
        self.store = store
        self.csv_key, self.images_key = keys
        self.delimiter = delimiter
        self.with_images = with_images
        self.rows = 0
        self.images = 0

    def __enter__(self) -> PartWriter:
        self._csv = io.TextIOWrapper(self.store.open(self.csv_key, "wb"), encoding="utf-8", newline="")
        self._writer = csv_writer(self._csv, self.delimiter)
        self._images = self.store.open(self.images_key, "wb") if self.with_images else None
        return self

    def __exit__(self, *exc: object) -> None:
        self._csv.close()
        if self._images is not None:
            self._images.close()

    def write(
        self,
        cells: Sequence[str],
        samples: Sequence[tuple[str, str]] = (),
        *,
        folder: str = "",
        object_id: str = "",
    ) -> None:
        """Write one row, and list the object's samples under ``images/<folder><object_id>/``."""
        self._writer.writerow(cells)
        self.rows += 1
        if self._images is None:
            return
        for sample_id, storage_key in samples:
            name = image_name(folder, object_id, sample_id, storage_key)
            self._images.write((json.dumps([name, storage_key, sample_id, object_id]) + "\n").encode())
            self.images += 1


@dataclass
class ArchiveStats:
    """What :func:`write_archive` wrote."""

    csv_bytes: int = 0
    images: int = 0
    image_bytes: int = 0
    missing_images: int = 0


class _Unseekable(io.RawIOBase):
    """Forward writes to a stream that cannot seek, and say so the way ``zipfile`` understands."""

    def __init__(self, raw: IO[bytes]) -> None:
        self.raw = raw
        self.position = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: Any) -> int:
        self.raw.write(data)
        self.position += len(data)
        return len(data)

    def tell(self) -> int:
        return self.position

    def seek(self, *args: object) -> int:
        raise io.UnsupportedOperation("seek")

    def flush(self) -> None:
        self.raw.flush()


def _entry(name: str, compress_type: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = compress_type
    info.external_attr = 0o644 << 16
    return info


def write_archive(
    store: ObjectStore,
    key: str,
    *,
    csv_name: str,
    header: bytes,
    parts: Sequence[tuple[str, str | None]],
    on_missing_image: Callable[[str, str, str], None],
) -> ArchiveStats:
    """Stream the header and the CSV parts, then the listed images, into the zip archive ``key``.

    :param parts: ``(csv part key, image list key or None)`` of every subtask, in row order.
    :param on_missing_image: called with ``(sample_id, object_id, storage_key)`` for each listed
        image the store no longer has; the archive goes on without it.
    """
    stats = ArchiveStats()
    # TODO: zipfile keeps one ZipInfo (about 0.5 KB) per entry until it writes the central
    # directory at close, so an export of millions of samples holds that much per image in memory;
    # a bounded footprint would need a central directory spilled to a work file.
    with store.open(key, "wb") as raw:
        output = raw if raw.seekable() else _Unseekable(raw)
        with zipfile.ZipFile(output, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            # the CSV size is unknown until written and may pass 4 GiB: zip64 from the start
            with archive.open(_entry(csv_name, zipfile.ZIP_DEFLATED), "w", force_zip64=True) as entry:
                entry.write(header)
                stats.csv_bytes += len(header)
                for csv_key, _ in parts:
                    with store.open(csv_key, "rb") as part:
                        while chunk := part.read(COPY_CHUNK):
                            entry.write(chunk)
                            stats.csv_bytes += len(chunk)
            for _, images_key in parts:
                if images_key is not None:
                    _copy_images(store, archive, images_key, stats, on_missing_image)
    return stats


def _copy_images(
    store: ObjectStore,
    archive: zipfile.ZipFile,
    images_key: str,
    stats: ArchiveStats,
    on_missing: Callable[[str, str, str], None],
) -> None:
    with store.open(images_key, "rb") as listing:
        for line in listing:
            name, storage_key, sample_id, object_id = json.loads(line)
            try:
                source = store.open(storage_key, "rb")
            except (FileNotFoundError, IsADirectoryError, ValueError):
                stats.missing_images += 1
                on_missing(sample_id, object_id, storage_key)
                continue
            # samples are JPEG or PNG already: deflating them again costs time and saves nothing
            with source, archive.open(_entry(name, zipfile.ZIP_STORED), "w") as entry:
                while chunk := source.read(COPY_CHUNK):
                    entry.write(chunk)
                    stats.image_bytes += len(chunk)
            stats.images += 1
