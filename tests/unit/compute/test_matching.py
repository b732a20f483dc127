from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from luna_provider.compute.matching import TopK, block_top, cross_match

SCALE = 1.2


def similarities(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Similarity matrix computed independently of the kernel: SciPy's direct float64 distances."""
    distance = cdist(a.astype(np.float64), b.astype(np.float64))
    return np.clip(1.0 - distance / SCALE, 0.0, 1.0)


def brute_force(
    refs: np.ndarray,
    cands: np.ndarray,
    limit: int,
    threshold: float,
    keys: np.ndarray,
    exclude: np.ndarray | None = None,
) -> list[list[tuple[int, float]]]:
    """Each reference's candidates at or above the threshold, by similarity then key; cut at limit."""
    matrix = similarities(refs, cands)
    result = []
    for i, row in enumerate(matrix):
        kept = [j for j in range(len(cands)) if row[j] >= threshold and (exclude is None or exclude[i] != j)]
        kept.sort(key=lambda j: (-row[j], keys[j]))
        result.append([(j, row[j]) for j in kept[:limit]])
    return result


def as_lists(index: np.ndarray, similarity: np.ndarray) -> list[list[tuple[int, float]]]:
    return [
        [(int(j), float(s)) for j, s in zip(row_index, row_sim, strict=True) if j >= 0]
        for row_index, row_sim in zip(index, similarity, strict=True)
    ]


def assert_same(found: list, expected: list) -> None:
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert [j for j, _ in got] == [j for j, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], rtol=0, atol=1e-12)


def faces(rng: np.random.Generator, count: int, centres: np.ndarray, spread: float) -> np.ndarray:
    picked = centres[rng.integers(0, len(centres), size=count)]
    return (picked + rng.normal(scale=spread, size=(count, centres.shape[1]))).astype(np.float32)


def people(rng: np.random.Generator, count: int) -> np.ndarray:
    centres = rng.normal(size=(count, 128))
    return centres * 0.7 / np.linalg.norm(centres, axis=1, keepdims=True)


@pytest.mark.parametrize("limit", [1, 3, 20])
@pytest.mark.parametrize("threshold", [0.0, 0.45, 0.8])
def test_cross_match_equals_brute_force(limit: int, threshold: float) -> None:
    rng = np.random.default_rng(limit * 10 + int(threshold * 100))
    centres = people(rng, 12)
    refs = faces(rng, 90, centres, 0.04)
    cands = faces(rng, 230, centres, 0.04)
    keys = rng.permutation(len(cands)).astype(np.int64)
    expected = brute_force(refs, cands, limit, threshold, keys)

    for block in (3, 16, 100, 4096):
        index, similarity = cross_match(
            refs, cands, limit=limit, threshold=threshold, scale=SCALE, block=block, keys=keys
        )

        assert index.shape == similarity.shape == (90, limit)
        assert_same(as_lists(index, similarity), expected)


def test_far_candidates_tie_at_zero_and_go_by_key() -> None:
    rng = np.random.default_rng(5)
    refs = faces(rng, 30, people(rng, 3), 0.05)
    # half of the candidates are further than SCALE from everything: similarity 0 for all of them
    cands = np.concatenate([faces(rng, 40, people(rng, 3), 0.05), rng.normal(size=(60, 128)) * 3])
    cands = cands.astype(np.float32)
    keys = rng.permutation(len(cands)).astype(np.int64)

    for block in (8, 100):
        index, similarity = cross_match(
            refs, cands, limit=50, threshold=0.0, scale=SCALE, block=block, keys=keys
        )
        assert_same(as_lists(index, similarity), brute_force(refs, cands, 50, 0.0, keys))
    assert (similarity[:, -1] == 0).all()


def test_equal_similarities_are_ordered_and_cut_by_key() -> None:
    rng = np.random.default_rng(9)
    refs = faces(rng, 4, people(rng, 2), 0.05)
    base = refs[0] + np.float32(0.01)
    cands = np.repeat(base[None, :], 10, axis=0)  # ten candidates identical to each other
    keys = np.asarray([9, 3, 7, 1, 8, 0, 6, 2, 5, 4], dtype=np.int64)

    index, similarity = cross_match(refs, cands, limit=4, threshold=0.0, scale=SCALE, block=3, keys=keys)

    assert index[0].tolist() == [5, 3, 7, 1]  # keys 0, 1, 2, 3
    assert len(set(similarity[0].tolist())) == 1


def test_threshold_is_inclusive() -> None:
    # |r - c| = 0.75 exactly in float32 and float64, so the pair's similarity is 1 - 0.75 / 1.2
    refs = np.zeros((1, 128), dtype=np.float32)
    cands = np.zeros((3, 128), dtype=np.float32)
    cands[0, 0] = 0.75
    cands[1, 1] = 0.5  # more similar
    cands[2, 2] = 1.0  # less similar
    exact = 1.0 - 0.75 / SCALE

    index, similarity = cross_match(refs, cands, limit=3, threshold=exact, scale=SCALE)
    assert index[0].tolist() == [1, 0, -1]
    assert similarity[0, 1] == exact

    index, _ = cross_match(refs, cands, limit=3, threshold=float(np.nextafter(exact, 1.0)), scale=SCALE)
    assert index[0].tolist() == [1, -1, -1]


def test_excluded_candidate_is_never_kept() -> None:
    rng = np.random.default_rng(3)
    objects = faces(rng, 60, people(rng, 6), 0.03)
    keys = np.arange(60, dtype=np.int64)
    exclude = np.arange(60, dtype=np.int64)  # every object is on both sides

    for block in (5, 64):
        index, similarity = cross_match(
            objects, objects, limit=4, threshold=0.3, scale=SCALE, block=block, keys=keys, exclude=exclude
        )
        assert not (index == np.arange(60)[:, None]).any()
        assert_same(as_lists(index, similarity), brute_force(objects, objects, 4, 0.3, keys, exclude))


def test_empty_candidates_keep_nothing() -> None:
    refs = np.ones((3, 128), dtype=np.float32)
    index, similarity = cross_match(refs, np.empty((0, 128), np.float32), limit=2, threshold=0.5, scale=SCALE)
    assert (index == -1).all()
    assert np.isneginf(similarity).all()


@pytest.mark.parametrize("k", [1, 4, 40])
@pytest.mark.parametrize("with_floor", [False, True])
def test_block_top_with_ties_keeps_smallest_keys(k: int, with_floor: bool) -> None:
    rng = np.random.default_rng(k)
    values = rng.integers(0, 5, size=(30, 40)).astype(np.float64)  # many ties
    values[rng.random(values.shape) < 0.05] = -np.inf
    keys = rng.permutation(40).astype(np.int64)
    floor = rng.choice([-np.inf, 1.0, 2.0, 4.0], size=30) if with_floor else np.full(30, -np.inf)

    rows, cols = block_top(values, keys, k, floor=floor if with_floor else None)

    for row in range(30):
        allowed = [j for j in range(40) if values[row, j] > -np.inf and values[row, j] >= floor[row]]
        expected = sorted(allowed, key=lambda j: (-values[row, j], keys[j]))[:k]
        assert sorted(cols[rows == row].tolist()) == sorted(expected)


def test_topk_merge_keeps_order_across_offers() -> None:
    top = TopK(2, 3)
    top.merge(np.array([0, 0, 1]), np.array([10, 11, 12]), np.array([0.5, 0.7, 0.1]), np.array([10, 11, 12]))
    top.merge(np.array([0, 0]), np.array([13, 14]), np.array([0.7, 0.2]), np.array([1, 14]))

    assert top.index.tolist() == [[13, 11, 10], [12, -1, -1]]
    assert top.floor()[0] == 0.5
    assert np.isneginf(top.floor()[1])
