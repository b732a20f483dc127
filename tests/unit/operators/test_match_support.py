from __future__ import annotations

import uuid
from types import SimpleNamespace

import numpy as np
import pytest

from luna_provider.operators.match_support import id_ranks, positions_in, read_ids, read_ids_at
from luna_provider.storage import ObjectStore


@pytest.fixture
def snapshot(tmp_path):
    store = ObjectStore(tmp_path.as_uri())
    ids = [str(uuid.uuid4()) for _ in range(11)]
    with store.open("work/ids", "wb") as stream:
        stream.write("".join(f"{i}\n" for i in ids).encode())
    return SimpleNamespace(run=SimpleNamespace(store=store), ids_key="work/ids"), ids


def test_ids_by_range_and_by_position(snapshot) -> None:
    snap, ids = snapshot

    assert [i.decode() for i in read_ids(snap)] == ids
    assert [i.decode() for i in read_ids(snap, 3, 7)] == ids[3:7]
    for chunk in (1, 3, 100):
        positions = np.array([10, 0, 4, 4, 9, 3])
        assert [i.decode() for i in read_ids_at(snap, positions, chunk=chunk)] == [ids[p] for p in positions]
    assert len(read_ids_at(snap, np.empty(0, dtype=np.int64))) == 0


def test_ids_must_be_uuids(tmp_path) -> None:
    store = ObjectStore(tmp_path.as_uri())
    with store.open("ids", "wb") as stream:
        stream.write(b"face-1\nface-2\n")
    with pytest.raises(ValueError, match="UUID"):
        read_ids(SimpleNamespace(run=SimpleNamespace(store=store), ids_key="ids"))


def test_ranks_and_positions() -> None:
    ids = np.array([b"c", b"a", b"d", b"b"])

    assert id_ranks(ids).tolist() == [2, 0, 3, 1]
    assert positions_in(np.array([b"d", b"x", b"a"]), ids).tolist() == [2, -1, 1]
    assert positions_in(np.array([b"a"]), np.array([], dtype="S1")).tolist() == [-1]
