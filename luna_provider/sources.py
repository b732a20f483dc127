"""Image sources of the estimator task, read through fsspec and its implementations.

A source is the ``source`` object of an estimator task: a zip archive by URL (fsspec's zip file
system over an http(s) or local file), an S3 bucket (``s3fs``), a folder on the server
(``network_disk``, fsspec's local file system), an FTP server (fsspec's ftp, on :mod:`ftplib`) or a
Samba share (fsspec's smb, on ``smbprotocol``). No protocol is spoken by this module itself.

Files are named by their path relative to the source's folder (for S3: the object key). Listing
streams: names are yielded one directory (S3: one page of 1000 keys) at a time.

``prefix`` and ``postfix`` match the file's base name (S3: ``prefix`` is the key prefix, as Luna
defines it); only names ending with one of ``LUNA_ESTIMATOR_EXTENSIONS`` (any case) are images.
``recursive`` also reads nested folders.
"""

from __future__ import annotations

import os
import posixpath
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.util import find_spec
from typing import IO, TYPE_CHECKING, Any

from luna_provider.errors import (
    BAD_INPUT,
    IMAGE_TOO_LARGE,
    SOURCE_NOT_ALLOWED,
    SOURCE_UNREACHABLE,
    SOURCE_UNSUPPORTED,
)

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

    from luna_provider.settings import Settings
    from luna_provider.storage import ObjectStore

#: source type -> (module it needs, pip package that provides it)
_PACKAGES = {"s3": ("s3fs", "s3fs"), "samba": ("smbprotocol", "smbprotocol")}
_ZIP_SCHEMES = ("http", "https", "file")
_COPY_CHUNK = 1 << 20


def _label(source: dict) -> str:
    """Describe a source for error messages, without credentials."""
    from luna_provider.settings import mask_url

    kind = source["source_type"]
    if kind == "zip":
        return f"zip archive {mask_url(source['url'])}"
    if kind == "s3":
        endpoint = source.get("endpoint") or "AWS"
        return f"S3 bucket '{source['bucket_name']}' at {endpoint}"
    if kind == "network_disk":
        return f"folder {source['path']}"
    if kind == "ftp":
        return f"ftp://{source['host']}:{source.get('port', 21)}{source.get('path') or '/'}"
    return f"smb://{source['host']}:{source.get('port', 445)}/{source['path']}"


def allowed_local_path(path: str, roots: tuple[str, ...]) -> bool:
    """Tell whether a local path lies inside one of ``roots`` (symbolic links resolved); any when none."""
    if not roots:
        return True
    real = os.path.realpath(path)
    for root in roots:
        top = os.path.realpath(root)
        if real == top or real.startswith(top.rstrip("/") + "/"):
            return True
    return False


def _local_zip_path(url: str) -> str | None:
    from urllib.parse import unquote, urlparse

    parsed = urlparse(url)
    return unquote(parsed.path) if parsed.scheme == "file" else None


def check_source(source: dict, settings: Settings) -> None:
    """Check what the schema cannot (at creation): schemes, local paths, installed clients."""
    from urllib.parse import urlparse

    kind = source["source_type"]
    if kind in _PACKAGES:
        module, package = _PACKAGES[kind]
        if find_spec(module) is None:
            raise SOURCE_UNSUPPORTED(kind, module, package)
    if kind == "zip":
        scheme = urlparse(source["url"]).scheme
        if scheme not in _ZIP_SCHEMES:
            raise BAD_INPUT(f"source.url: scheme '{scheme}' is not one of {', '.join(_ZIP_SCHEMES)}")
        if scheme in ("http", "https") and find_spec("aiohttp") is None:
            raise SOURCE_UNSUPPORTED("zip over http", "aiohttp", "aiohttp")
        local = _local_zip_path(source["url"])
        if local is not None and not allowed_local_path(local, settings.estimator_local_root_list):
            raise SOURCE_NOT_ALLOWED(local)
    if kind == "network_disk":
        if not os.path.isabs(source["path"]):
            raise BAD_INPUT(f"source.path '{source['path']}' must be an absolute path")
        if not allowed_local_path(source["path"], settings.estimator_local_root_list):
            raise SOURCE_NOT_ALLOWED(source["path"])


def needs_staging(source: dict) -> bool:
    """Tell whether the source is a remote archive to copy into the object store before reading."""
    return source["source_type"] == "zip" and _local_zip_path(source["url"]) is None


def stage_archive(source: dict, settings: Settings, store: ObjectStore, key: str) -> int:
    """Copy a remote zip archive into the object store (streamed); return its size in bytes."""
    import fsspec

    options: dict[str, Any] = {}
    if source["url"].startswith(("http://", "https://")):
        import aiohttp

        timeout = settings.estimator_source_timeout
        # block_size 0: a plain streamed GET, so servers without range requests work too
        options = {
            "block_size": 0,
            "client_kwargs": {"timeout": aiohttp.ClientTimeout(connect=timeout, sock_read=timeout)},
        }
    size = 0
    try:
        with fsspec.open(source["url"], "rb", **options) as remote, store.open(key, "wb") as local:
            while chunk := remote.read(_COPY_CHUNK):
                local.write(chunk)
                size += len(chunk)
    except Exception as error:
        raise SOURCE_UNREACHABLE(f"{_label(source)}: {_reason(error)}") from error
    return size


def _reason(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return f"{type(error).__name__}: {text}" if type(error).__name__ not in text else text


@dataclass
class NameFilter:
    """Which files of a listing are images to read."""

    prefix: str = ""
    postfix: str = ""
    extensions: tuple[str, ...] = ()

    def __call__(self, name: str) -> bool:
        base = posixpath.basename(name)
        return (
            base.startswith(self.prefix)
            and base.endswith(self.postfix)
            and (not self.extensions or base.lower().endswith(self.extensions))
        )


class ImageSource:
    """An opened source: list its image files and read them.

    :param fs: the fsspec file system.
    :param root: the folder (or bucket) inside ``fs`` that names are relative to.
    :param label: description for errors (no credentials).
    :param local_roots: for a local folder, the folders every file read must resolve into.
    """

    def __init__(
        self,
        fs: AbstractFileSystem,
        root: str,
        label: str,
        source: dict,
        closer: Callable[[], None] | None = None,
        local_roots: tuple[str, ...] = (),
    ) -> None:
        self.fs = fs
        self.root = root.rstrip("/")
        self.label = label
        self.source = source
        self.local_roots = local_roots
        self._closer = closer

    def __enter__(self) -> ImageSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the connection or archive."""
        if self._closer is not None:
            self._closer()
            self._closer = None

    def _path(self, name: str) -> str:
        return f"{self.root}/{name}" if self.root else name

    def names(self, name_filter: NameFilter, on_error: Callable[[str, BaseException], None]) -> Iterator[str]:
        """Yield the names of the source's image files, in a stable order within each folder.

        :param on_error: called with a folder and the error when a nested folder cannot be listed;
            the listing goes on. A root that cannot be listed raises 28080.
        """
        recursive = bool(self.source.get("recursive"))
        if self.source["source_type"] == "s3":
            yield from self._s3_names(name_filter, recursive)
            return
        try:
            if self.root and not self.fs.isdir(self.root):
                raise FileNotFoundError(f"no folder {self.root}")
        except Exception as error:
            raise SOURCE_UNREACHABLE(f"{self.label}: {_reason(error)}") from error
        walk = self.fs.walk(
            self.root or "",
            maxdepth=None if recursive else 1,
            on_error=lambda error: on_error(getattr(error, "filename", None) or self.root, error),
        )
        for folder, dirs, files in walk:
            dirs.sort()  # walk descends in this order
            yield from self._matching(folder, files, name_filter)

    def _matching(self, folder: str, files: list[str], name_filter: NameFilter) -> Iterator[str]:
        base = folder.strip("/")
        root = self.root.strip("/")
        relative = base[len(root) :].strip("/") if base.startswith(root) else base
        for file_name in sorted(files):
            name = f"{relative}/{file_name}" if relative else file_name
            if name_filter(name):
                yield name

    def _s3_names(self, name_filter: NameFilter, recursive: bool) -> Iterator[str]:
        # s3fs lists through ``_iterdir`` page by page; its public ``find``/``walk`` build whole
        # listings in memory, which a bucket of millions of keys does not fit.
        # TODO: ``_iterdir`` is s3fs's private API (tested against s3fs 2026.9): switch to a public
        # paged listing once s3fs has one.
        from fsspec.asyn import sync

        bucket = self.root
        prefix = self.source.get("prefix") or ""
        prefixes = [(prefix, "" if recursive else "/")]
        while prefixes:
            key_prefix, delimiter = prefixes.pop(0)
            pages = self.fs._iterdir(bucket, prefix=key_prefix, delimiter=delimiter)
            while True:
                try:
                    entry = sync(self.fs.loop, pages.__anext__)
                except StopAsyncIteration:
                    break
                except Exception as error:
                    raise SOURCE_UNREACHABLE(f"{self.label}: {_reason(error)}") from error
                key = entry["name"][len(bucket) + 1 :]
                if entry["type"] == "directory":
                    # a prefix naming a folder ("2022/January") reads that folder's files
                    if key_prefix and not key_prefix.endswith("/") and key == key_prefix:
                        prefixes.append((key_prefix + "/", "/"))
                    continue
                if name_filter(key):
                    yield key

    def open(self, name: str) -> IO[bytes]:
        """Open one file of the source for reading."""
        return self.fs.open(self._path(name), "rb")

    def read(self, name: str, limit: int) -> bytes:
        """Read one file; refuse (28085) one larger than ``limit`` bytes without reading it all."""
        if self.local_roots and not allowed_local_path(self._path(name), self.local_roots):
            # a symbolic link inside an allowed folder must not lead outside the allowed folders
            raise SOURCE_NOT_ALLOWED(name)
        with self.open(name) as stream:
            size = getattr(stream, "size", None)
            if size is not None and size > limit:
                raise IMAGE_TOO_LARGE(name, size, limit)
            data = stream.read(limit + 1)
        if len(data) > limit:
            raise IMAGE_TOO_LARGE(name, f"more than {limit}", limit)
        return data


def open_source(
    source: dict, settings: Settings, store: ObjectStore | None = None, staged_key: str | None = None
) -> ImageSource:
    """Connect to a source; a source that cannot be reached raises 28080.

    :param staged_key: object-store key of the copy of a remote zip archive (see :func:`stage_archive`).
    """
    label = _label(source)
    try:
        return _open(source, settings, store, staged_key, label)
    except Exception as error:
        if getattr(error, "error_code", None) is not None:
            raise
        raise SOURCE_UNREACHABLE(f"{label}: {_reason(error)}") from error


def _open(
    source: dict, settings: Settings, store: ObjectStore | None, staged_key: str | None, label: str
) -> ImageSource:
    kind = source["source_type"]
    timeout = settings.estimator_source_timeout
    common = {"skip_instance_cache": True, "use_listings_cache": False}
    if kind == "network_disk":
        from fsspec.implementations.local import LocalFileSystem

        if not allowed_local_path(source["path"], settings.estimator_local_root_list):
            raise SOURCE_NOT_ALLOWED(source["path"])
        return ImageSource(
            LocalFileSystem(**common),
            source["path"],
            label,
            source,
            local_roots=settings.estimator_local_root_list,
        )
    if kind == "zip":
        from fsspec.implementations.zip import ZipFileSystem

        local = _local_zip_path(source["url"])
        if local is not None:
            if not allowed_local_path(local, settings.estimator_local_root_list):
                raise SOURCE_NOT_ALLOWED(local)
            archive: Any = local
        else:
            if store is None or staged_key is None:
                raise ValueError("a remote archive must be staged into the object store first")
            archive = store.open(staged_key, "rb")
        # TODO: zipfile reads the whole central directory (one entry per member) into memory, and a
        # remote archive is copied whole into the object store first (no size cap): fine for
        # archives of thousands of images, not for millions.
        fs = ZipFileSystem(fo=archive)
        password = (source.get("authorization") or {}).get("password")
        if password:
            fs.zip.setpassword(password.encode())
        return ImageSource(fs, "", label, source, closer=fs.close)
    if kind == "s3":
        import s3fs

        auth = source["authorization"]
        client_kwargs: dict[str, Any] = {}
        if source.get("endpoint"):
            client_kwargs["endpoint_url"] = source["endpoint"]
        if source.get("region"):
            client_kwargs["region_name"] = source["region"]
        signature = "s3" if auth.get("signature_version") == "s3v2" else "s3v4"
        fs = s3fs.S3FileSystem(
            key=auth["s3_key_id"],
            secret=auth["s3_key"],
            client_kwargs=client_kwargs,
            config_kwargs={
                "signature_version": signature,
                "connect_timeout": timeout,
                "read_timeout": timeout,
                "retries": {"max_attempts": 2, "mode": "standard"},
            },
            **common,
        )
        fs.retries = 2  # s3fs's own retries on top of botocore's; an unreachable endpoint fails soon
        return ImageSource(fs, source["bucket_name"], label, source)
    if kind == "ftp":
        from fsspec.implementations.ftp import FTPFileSystem

        # TODO: max_sessions is not enforced across subtasks: each subtask holds one FTP session and
        # as many subtasks run at once as Airflow's parallelism allows.
        fs = FTPFileSystem(
            source["host"],
            port=source.get("port", 21),
            username=source.get("user"),
            password=source.get("password"),
            timeout=timeout,
            **common,
        )
        root = "/" + (source.get("path") or "/").strip("/")
        return ImageSource(fs, root if root != "/" else "", label, source, closer=_quitter(fs))
    if kind == "samba":
        from fsspec.implementations.smb import SMBFileSystem

        fs = SMBFileSystem(
            source["host"],
            port=source.get("port", 445),
            username=source.get("user"),
            password=source.get("password"),
            timeout=timeout,
            register_session_retries=1,
            **common,
        )
        return ImageSource(fs, "/" + source["path"].strip("/"), label, source)
    raise BAD_INPUT(f"unknown source_type '{kind}'")


def _quitter(fs: Any) -> Callable[[], None]:
    def close() -> None:
        try:
            fs.ftp.quit()
        except Exception:  # the session is gone already; nothing to release
            fs.ftp.close()

    return close


def copy_stream(source: IO[bytes], target: IO[bytes]) -> None:
    """Copy a file object to another in chunks."""
    shutil.copyfileobj(source, target, _COPY_CHUNK)
