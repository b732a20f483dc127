"""Object store for task results and samples, on any fsspec file system.

A local folder is the default (``file://``); ``s3://bucket/prefix`` works with the same code once
``s3fs`` is installed. Keys are relative paths such as ``results/<account>/<result_id>.json``.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterator
from typing import IO, Any

CHUNK_SIZE = 1 << 20


class ObjectStore:
    """Read and write objects under one root URL.

    :param url: fsspec URL of the root, e.g. ``file:///var/lib/luna/objects`` or ``s3://bucket/luna``.
    :param storage_options: extra options for the file system (credentials, endpoint).
    """

    def __init__(self, url: str, **storage_options: Any) -> None:
        from fsspec.core import url_to_fs

        self.url = url.rstrip("/")
        self.fs, self.root = url_to_fs(self.url, **storage_options)
        self.root = self.root.rstrip("/")
        if self.fs.protocol in ("file", "local") or "file" in self.fs.protocol:
            self.fs.makedirs(self.root, exist_ok=True)

    def path(self, key: str) -> str:
        """Return the file-system path of ``key``."""
        if not key or key.startswith("/") or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return f"{self.root}/{key}"

    def open(self, key: str, mode: str = "rb") -> IO:
        """Open the object ``key``; parent folders are created for writing."""
        path = self.path(key)
        if "w" in mode:
            self.fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        return self.fs.open(path, mode)

    def put_json(self, key: str, document: Any) -> int:
        """Write ``document`` as JSON to ``key`` and return its size in bytes."""
        data = json.dumps(document, separators=(",", ":"), default=str).encode()
        with self.open(key, "wb") as stream:
            stream.write(data)
        return len(data)

    def get_json(self, key: str) -> Any:
        """Read the JSON object ``key``."""
        with self.open(key, "rb") as stream:
            return json.load(stream)

    def iter_chunks(self, key: str, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the bytes of ``key`` in chunks, for streaming responses."""
        with self.open(key, "rb") as stream:
            while chunk := stream.read(chunk_size):
                yield chunk

    def exists(self, key: str) -> bool:
        """Tell whether ``key`` exists."""
        return self.fs.exists(self.path(key))

    def delete(self, key: str) -> None:
        """Delete ``key`` (a folder is deleted with its content); a missing key is no error."""
        path = self.path(key)
        if self.fs.exists(path):
            self.fs.rm(path, recursive=True)


@functools.cache
def get_object_store(url: str) -> ObjectStore:
    """Return the process-wide object store rooted at ``url``."""
    return ObjectStore(url)
