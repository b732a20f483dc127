from __future__ import annotations

import io
import json
import zipfile
from typing import IO

import pytest
from fsspec.spec import AbstractBufferedFile

from luna_provider.export.archive import csv_line, image_name, write_archive
from luna_provider.storage import ObjectStore


class UploadFile(AbstractBufferedFile):
    """A write-only file like an S3 multipart upload: buffered blocks, no seeking back."""

    def __init__(self, sink: io.BytesIO, block_size: int) -> None:
        super().__init__(fs=None, path="upload", mode="wb", block_size=block_size)
        self.sink = sink
        self.uploads = 0

    def _initiate_upload(self) -> None:
        return None

    def _upload_chunk(self, final: bool = False) -> bool:
        self.sink.write(self.buffer.getvalue())
        self.uploads += 1
        return True


class UploadStore(ObjectStore):
    """A local store whose result objects are written the way an S3 store writes them."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.uploaded: dict[str, io.BytesIO] = {}
        self.files: list[UploadFile] = []

    def open(self, key: str, mode: str = "rb") -> IO:
        if key.startswith("results/") and "w" in mode:
            self.uploaded[key] = io.BytesIO()
            self.files.append(UploadFile(self.uploaded[key], block_size=5 * 2**20))
            return self.files[-1]
        return super().open(key, mode)


def write_parts(store: ObjectStore) -> tuple[bytes, dict[str, bytes]]:
    """Write two CSV parts, two images (one lost), and the image lists; return what the zip must hold."""
    rows = [b"a,1\r\n" * 200_000, b'"x,y",2\r\n' * 3]
    for index, data in enumerate(rows):
        with store.open(f"work/part_{index}.csv", "wb") as stream:
            stream.write(data)
    images = {"images/o1/s1.jpg": bytes(range(256)) * 5000, "images/o2/s2.png": b"\x89PNG" * 10}
    listing = [
        ["images/o1/s1.jpg", "samples/s1.jpg", "s1", "o1"],
        ["images/o3/s3.jpg", "samples/lost.jpg", "s3", "o3"],
        ["images/o2/s2.png", "samples/s2.png", "s2", "o2"],
    ]
    for name, key, *_ in listing:
        if name in images:
            with store.open(key, "wb") as stream:
                stream.write(images[name])
    with store.open("work/part_1.images.jsonl", "wb") as stream:
        stream.write("".join(json.dumps(line) + "\n" for line in listing).encode())
    return b"h1,h2\r\n" + b"".join(rows), images


def check_archive(data: bytes, csv_bytes: bytes, images: dict[str, bytes]) -> list[zipfile.ZipInfo]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["report.csv", *images]
        assert archive.read("report.csv") == csv_bytes
        for name, content in images.items():
            assert archive.read(name) == content
        return archive.infolist()


@pytest.mark.parametrize("unseekable", [False, True], ids=["local-file", "upload-stream"])
def test_archive_streams_parts_and_images(tmp_path, unseekable) -> None:
    store = UploadStore(tmp_path.as_uri()) if unseekable else ObjectStore(tmp_path.as_uri())
    csv_bytes, images = write_parts(store)
    missing: list[tuple[str, str, str]] = []

    stats = write_archive(
        store,
        "results/a/task_1.zip",
        csv_name="report.csv",
        header=csv_line(["h1", "h2"], ","),
        parts=[("work/part_0.csv", None), ("work/part_1.csv", "work/part_1.images.jsonl")],
        on_missing_image=lambda *args: missing.append(args),
    )

    if unseekable:
        upload = store.files[0]
        assert not upload.seekable() and upload.closed
        data = store.uploaded["results/a/task_1.zip"].getvalue()
    else:
        data = (tmp_path / "results/a/task_1.zip").read_bytes()
    infos = check_archive(data, csv_bytes, images)
    # on a stream that cannot seek, sizes and CRCs follow each entry (data descriptors)
    assert all(bool(info.flag_bits & 0x08) is unseekable for info in infos)
    assert infos[0].compress_type == zipfile.ZIP_DEFLATED and infos[0].compress_size < len(csv_bytes) / 20
    assert {info.compress_type for info in infos[1:]} == {zipfile.ZIP_STORED}
    assert missing == [("s3", "o3", "samples/lost.jpg")]
    assert (stats.csv_bytes, stats.images, stats.missing_images) == (len(csv_bytes), 2, 1)
    assert stats.image_bytes == sum(map(len, images.values()))


def test_image_names_keep_only_plain_extensions() -> None:
    assert image_name("", "o", "s", "samples/a/s.jpg") == "images/o/s.jpg"
    assert image_name("3/", "o", "s", "samples/a/s") == "images/3/o/s"
    assert image_name("", "o", "s", "samples/a/s.j p/g") == "images/o/s"


def test_csv_line_quotes_what_needs_it() -> None:
    assert csv_line(["a;b", 'say "hi"', "", "x"], ";") == b'"a;b";"say ""hi""";;x\r\n'
