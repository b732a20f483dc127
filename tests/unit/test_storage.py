from __future__ import annotations

import pytest

from luna_provider.storage import ObjectStore


@pytest.fixture(scope="module")
def s3_url(tmp_path_factory: pytest.TempPathFactory):
    """A bucket on a local S3-compatible server (moto in server mode)."""
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id="k", aws_secret_access_key="s", region_name="us-east-1"
    ).create_bucket(Bucket="luna")
    yield endpoint
    server.stop()


def stores(tmp_path, endpoint: str) -> list[ObjectStore]:
    return [
        ObjectStore((tmp_path / "objects").as_uri()),
        ObjectStore(
            "s3://luna/prefix",
            key="k",
            secret="s",
            client_kwargs={"endpoint_url": endpoint},
            skip_instance_cache=True,
        ),
    ]


def test_same_code_on_a_folder_and_on_s3(tmp_path, s3_url) -> None:
    for store in stores(tmp_path, s3_url):
        store.put_json("results/a/task_1.json", {"result": [1, 2]})
        with store.open("work/task_1/objects.f32", "wb") as stream:
            stream.write(bytes(range(256)) * 4096)

        assert store.get_json("results/a/task_1.json") == {"result": [1, 2]}
        assert (
            b"".join(store.iter_chunks("work/task_1/objects.f32", chunk_size=1000))
            == bytes(range(256)) * 4096
        )
        with store.open("work/task_1/objects.f32", "rb") as stream:
            stream.seek(256 * 100 + 7)
            assert stream.read(3) == bytes([7, 8, 9])
        store.delete("work/task_1")
        assert not store.exists("work/task_1/objects.f32")
        assert store.exists("results/a/task_1.json")
        store.delete("missing/key")  # deleting what is not there is no error


@pytest.mark.parametrize("key", ["", "/abs", "a/../../etc/passwd", "../x"])
def test_keys_cannot_leave_the_root(tmp_path, key) -> None:
    with pytest.raises(ValueError):
        ObjectStore((tmp_path / "objects").as_uri()).path(key)
