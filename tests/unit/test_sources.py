"""Image sources: the same listing and bytes from a folder, a zip (file and http), S3 and FTP."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from luna_provider.errors import LunaError
from luna_provider.settings import load
from luna_provider.sources import NameFilter, check_source, open_source, stage_archive
from luna_provider.storage import ObjectStore
from tests.servers import closed_port, ftp_server, http_server, put_s3_objects, s3_server

FILES = {
    "a.jpg": b"A" * 10,
    "b.PNG": b"B" * 20,
    "notes.txt": b"not an image",
    "cam1_x.jpg": b"X" * 30,
    "sub/c.jpeg": b"C" * 40,
    "sub/cam1_y.jpg": b"Y" * 50,
    "sub/deep/d.bmp": b"D" * 60,
}
EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")


def expected(recursive: bool, prefix: str = "", postfix: str = "") -> set[str]:
    """The names a source must list, worked out from FILES directly."""
    names = set()
    for name in FILES:
        base = name.rsplit("/", 1)[-1]
        if not recursive and "/" in name:
            continue
        if base.startswith(prefix) and base.endswith(postfix) and base.lower().endswith(EXTENSIONS):
            names.add(name)
    return names


@pytest.fixture
def settings(monkeypatch, tmp_path):
    monkeypatch.setenv("LUNA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LUNA_ESTIMATOR_EXTENSIONS", ",".join(EXTENSIONS))
    monkeypatch.setenv("LUNA_ESTIMATOR_SOURCE_TIMEOUT", "5")
    monkeypatch.delenv("LUNA_ESTIMATOR_LOCAL_ROOTS", raising=False)
    return load()


@pytest.fixture
def tree(tmp_path) -> Path:
    root = tmp_path / "images"
    for name, data in FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


@pytest.fixture
def archive(tree, tmp_path) -> Path:
    path = tmp_path / "served" / "images.zip"
    path.parent.mkdir()
    with zipfile.ZipFile(path, "w") as zipped:
        for name, data in FILES.items():
            zipped.writestr(name, data)
    return path


def listed(source: dict, settings, store=None, staged=None, errors=None) -> list[str]:
    name_filter = NameFilter(
        prefix=source.get("prefix", "") if source["source_type"] != "s3" else "",
        postfix=source.get("postfix", ""),
        extensions=settings.estimator_extension_list,
    )
    with open_source(source, settings, store, staged) as images:
        return list(images.names(name_filter, lambda folder, error: (errors or []).append(folder)))


def read_all(source: dict, settings, names: list[str], store=None, staged=None) -> dict[str, bytes]:
    with open_source(source, settings, store, staged) as images:
        return {name: images.read(name, 1000) for name in names}


def assert_luna(error: pytest.ExceptionInfo, code: int) -> str:
    assert isinstance(error.value, LunaError)
    assert error.value.error_code == code
    return error.value.detail


@pytest.mark.parametrize(
    ("recursive", "prefix", "postfix"),
    [(False, "", ""), (True, "", ""), (True, "cam1", ""), (True, "", ".jpg"), (False, "cam", ".jpg")],
)
def test_folder_and_zip_list_the_same_images(settings, tree, archive, recursive, prefix, postfix) -> None:
    options = {"recursive": recursive, "prefix": prefix, "postfix": postfix}
    folder = {"source_type": "network_disk", "path": str(tree), **options}
    zipped = {"source_type": "zip", "url": archive.as_uri(), **options}

    assert set(listed(folder, settings)) == expected(recursive, prefix, postfix)
    assert set(listed(zipped, settings)) == expected(recursive, prefix, postfix)
    names = sorted(expected(recursive, prefix, postfix))
    assert (
        read_all(folder, settings, names) == read_all(zipped, settings, names) == {n: FILES[n] for n in names}
    )


def test_listing_is_sorted_within_each_folder(settings, tree) -> None:
    names = listed({"source_type": "network_disk", "path": str(tree), "recursive": True}, settings)

    assert names == ["a.jpg", "b.PNG", "cam1_x.jpg", "sub/c.jpeg", "sub/cam1_y.jpg", "sub/deep/d.bmp"]


def test_too_large_file_is_refused_without_reading_it(settings, tree) -> None:
    source = {"source_type": "network_disk", "path": str(tree)}
    with open_source(source, settings) as images, pytest.raises(LunaError) as error:
        images.read("cam1_x.jpg", 29)

    assert "cam1_x.jpg" in assert_luna(error, 28085)


def test_missing_folder_cannot_be_reached(settings, tmp_path) -> None:
    source = {"source_type": "network_disk", "path": str(tmp_path / "nowhere")}

    with pytest.raises(LunaError) as error:
        listed(source, settings)

    assert "nowhere" in assert_luna(error, 28080)


@pytest.mark.skipif(shutil.which("zip") is None, reason="needs the zip command to write an encrypted archive")
def test_password_protected_zip(settings, tree, tmp_path) -> None:
    path = tmp_path / "locked.zip"
    subprocess.run(["zip", "-q", "-r", "-P", "s3cret", str(path), "."], cwd=tree, check=True)
    source = {"source_type": "zip", "url": path.as_uri(), "recursive": True}

    with open_source(source, settings) as images, pytest.raises(RuntimeError, match="password"):
        images.read("a.jpg", 1000)
    unlocked = {**source, "authorization": {"password": "s3cret"}}
    assert read_all(unlocked, settings, ["a.jpg", "sub/c.jpeg"]) == {
        "a.jpg": b"A" * 10,
        "sub/c.jpeg": b"C" * 40,
    }


def test_zip_over_http_is_staged_once_then_read(settings, archive, tmp_path) -> None:
    store = ObjectStore((tmp_path / "objects").as_uri())
    with http_server(archive.parent) as base:
        source = {"source_type": "zip", "url": f"{base}/images.zip", "recursive": True}
        size = stage_archive(source, settings, store, "work/task_1/source.zip")
    # the server is gone: everything now comes from the staged copy
    assert size == archive.stat().st_size
    names = listed(source, settings, store, "work/task_1/source.zip")
    assert set(names) == expected(True)
    assert read_all(source, settings, names, store, "work/task_1/source.zip") == {n: FILES[n] for n in names}


def test_unreachable_http_archive_fails_clearly(settings, tmp_path) -> None:
    store = ObjectStore((tmp_path / "objects").as_uri())
    source = {"source_type": "zip", "url": f"http://127.0.0.1:{closed_port()}/images.zip"}

    with pytest.raises(LunaError) as error:
        stage_archive(source, settings, store, "work/task_1/source.zip")

    assert "zip archive http://127.0.0.1" in assert_luna(error, 28080)


def test_s3_bucket_by_key_prefix(settings) -> None:
    with s3_server() as endpoint:
        put_s3_objects(endpoint, "photos", {f"2022/January/{name}": data for name, data in FILES.items()})
        base = {
            "source_type": "s3",
            "bucket_name": "photos",
            "endpoint": endpoint,
            "region": "us-east-1",
            "authorization": {"s3_key_id": "k", "s3_key": "s"},
        }

        flat = listed({**base, "prefix": "2022/January"}, settings)
        deep = listed({**base, "prefix": "2022/January", "recursive": True}, settings)
        stem = listed({**base, "prefix": "2022/January/sub/cam", "recursive": True}, settings)
        data = read_all(base, settings, deep)

    assert set(flat) == {f"2022/January/{name}" for name in expected(False)}
    assert set(deep) == {f"2022/January/{name}" for name in expected(True)}
    assert stem == ["2022/January/sub/cam1_y.jpg"]
    assert data == {f"2022/January/{name}": FILES[name] for name in expected(True)}


def test_unreachable_s3_fails_clearly_and_soon(settings) -> None:
    source = {
        "source_type": "s3",
        "bucket_name": "photos",
        "endpoint": f"http://127.0.0.1:{closed_port()}",
        "authorization": {"s3_key_id": "k", "s3_key": "s"},
    }
    started = time.monotonic()

    with pytest.raises(LunaError) as error:
        listed(source, settings)

    assert "S3 bucket 'photos'" in assert_luna(error, 28080)
    assert time.monotonic() - started < 30


def test_ftp_server(settings, tree) -> None:
    with ftp_server(tree) as port:
        base = {"source_type": "ftp", "host": "127.0.0.1", "port": port, "user": "luna", "password": "secret"}
        top = listed(base, settings)
        deep = listed({**base, "recursive": True, "path": "/"}, settings)
        sub = listed({**base, "path": "/sub", "prefix": "cam"}, settings)
        data = read_all(base, settings, deep)
        with pytest.raises(LunaError) as denied:
            listed({**base, "password": "wrong"}, settings)

    assert set(top) == expected(False)
    assert set(deep) == expected(True)
    assert sub == ["cam1_y.jpg"]
    assert data == {name: FILES[name] for name in expected(True)}
    assert "ftp://127.0.0.1" in assert_luna(denied, 28080)


@pytest.mark.parametrize("kind", ["ftp", "samba"])
def test_unreachable_servers_fail_clearly(settings, kind) -> None:
    source = {"source_type": kind, "host": "127.0.0.1", "port": closed_port(), "path": "share/images"}

    with pytest.raises(LunaError) as error:
        listed(source, settings)

    assert assert_luna(error, 28080).startswith("Image source cannot be read: ")


def test_creation_checks(settings, tree, monkeypatch) -> None:
    def refused(source: dict) -> int:
        with pytest.raises(LunaError) as error:
            check_source(source, load())
        return error.value.error_code

    assert refused({"source_type": "network_disk", "path": "relative/images"}) == 12031
    assert refused({"source_type": "zip", "url": "ftp://host/images.zip"}) == 12031
    check_source({"source_type": "network_disk", "path": str(tree)}, load())

    monkeypatch.setenv("LUNA_ESTIMATOR_LOCAL_ROOTS", f"{tree / 'sub'}, /srv/images")
    check_source({"source_type": "network_disk", "path": str(tree / "sub" / "deep")}, load())
    assert refused({"source_type": "network_disk", "path": str(tree)}) == 28086
    assert refused({"source_type": "network_disk", "path": str(tree / "sub" / ".." / "..")}) == 28086
    assert refused({"source_type": "zip", "url": (tree / "images.zip").as_uri()}) == 28086
    os.symlink(tree, tree / "sub" / "escape")
    assert refused({"source_type": "network_disk", "path": str(tree / "sub" / "escape")}) == 28086
    # a link inside an allowed folder to a file outside it is listed, but not read
    os.symlink(tree / "a.jpg", tree / "sub" / "linked.jpg")
    with open_source({"source_type": "network_disk", "path": str(tree / "sub")}, load()) as images:
        assert images.read("c.jpeg", 1000) == FILES["sub/c.jpeg"]
        with pytest.raises(LunaError) as error:
            images.read("linked.jpg", 1000)
    assert error.value.error_code == 28086
