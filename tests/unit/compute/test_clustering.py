from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import DBSCAN
from sklearn.metrics import pairwise_distances

from luna_provider.compute.clustering import (
    clusters_from_labels,
    component_labels,
    group_edges,
    spanning_forest,
    threshold_forest,
)
from luna_provider.compute.descriptors import DLIB_RESNET_V1


def clustered_descriptors(people: int, per_person: int, spread: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(people, 128))
    centres *= 0.6 / np.linalg.norm(centres, axis=1, keepdims=True)
    points = np.repeat(centres, per_person, axis=0) + rng.normal(
        scale=spread, size=(people * per_person, 128)
    )
    return rng.permutation(points).astype(np.float32)


def blocked_clusters(
    descriptors: np.ndarray, threshold: float, rows_per_part: int, block: int
) -> list[list[int]]:
    """Cluster the way the operator does: parts of rows, each against all later rows in blocks."""
    count = len(descriptors)

    def blocks(start: int):
        for offset in range(start, count, block):
            yield offset, descriptors[offset : offset + block]

    forests = [np.empty((2, 0), dtype=np.int64)]
    for part_start in range(0, count, rows_per_part):
        part_stop = min(part_start + rows_per_part, count)
        for row_offset in range(part_start, part_stop, block):
            rows = descriptors[row_offset : min(row_offset + block, part_stop)]
            forests.append(
                np.stack(
                    threshold_forest(rows, row_offset, blocks(row_offset), threshold, DLIB_RESNET_V1.linked)
                )
            )
    src, dst = np.concatenate(forests, axis=1)
    return clusters_from_labels(component_labels(count, src, dst))


def dbscan_clusters(descriptors: np.ndarray, threshold: float) -> list[list[int]]:
    """The reference: DBSCAN with one sample per core on the same euclidean distances."""
    distances = pairwise_distances(descriptors.astype(np.float64))
    # similarity > t  <=>  distance < (1 - t) * scale; DBSCAN links distance <= eps
    eps = np.nextafter(DLIB_RESNET_V1.threshold_distance(threshold), 0)
    labels = DBSCAN(eps=eps, min_samples=1, metric="precomputed").fit_predict(distances)
    return clusters_from_labels(labels)


@pytest.mark.parametrize(("rows_per_part", "block"), [(1000, 1000), (37, 16), (64, 7), (5, 64)])
@pytest.mark.parametrize("threshold", [0.45, 0.5, 0.52])
def test_blocked_clustering_matches_dbscan(rows_per_part: int, block: int, threshold: float) -> None:
    descriptors = clustered_descriptors(people=12, per_person=15, spread=0.04, seed=3)

    expected = dbscan_clusters(descriptors, threshold)

    assert blocked_clusters(descriptors, threshold, rows_per_part, block) == expected


def test_chained_objects_join_one_cluster() -> None:
    # a chain where only neighbours are closer than the threshold: one component, not pairs
    step = np.zeros((6, 128), dtype=np.float32)
    step[:, 0] = np.arange(6) * 0.5  # distance 0.5 between neighbours, 1.0 between next-but-one
    threshold = 0.5  # distance cut 0.6

    clusters = blocked_clusters(step, threshold, rows_per_part=2, block=2)

    assert clusters == [[0, 1, 2, 3, 4, 5]]
    assert dbscan_clusters(step, threshold) == clusters


def test_similarity_is_strictly_above_threshold() -> None:
    pair = np.zeros((2, 128), dtype=np.float32)
    pair[1, 0] = 0.6  # similarity exactly 0.5 with the dlib scale of 1.2

    assert blocked_clusters(pair, 0.5, 2, 2) == [[0], [1]]
    assert blocked_clusters(pair, 0.49, 2, 2) == [[0, 1]]


def test_spanning_forest_keeps_components_with_fewer_edges() -> None:
    rng = np.random.default_rng(1)
    src = rng.integers(0, 200, size=3000)
    dst = rng.integers(0, 200, size=3000)

    forest_src, forest_dst = spanning_forest(src, dst)

    nodes = len(np.unique(np.concatenate([src, dst])))
    assert len(forest_src) < nodes
    full = component_labels(200, src, dst)
    reduced = component_labels(200, forest_src, forest_dst)
    assert clusters_from_labels(full) == clusters_from_labels(reduced)


def test_clusters_order_biggest_first() -> None:
    assert clusters_from_labels(np.array([2, 0, 2, 1, 1, 2, 3])) == [[0, 2, 5], [3, 4], [1], [6]]
    assert clusters_from_labels(np.array([], dtype=np.int64)) == []


def test_group_edges_join_shared_keys_only() -> None:
    src, dst = group_edges(["a", None, "b", "a", "", "b", "a"])

    assert sorted(zip(src.tolist(), dst.tolist(), strict=True)) == [(0, 3), (0, 6), (2, 5)]


def test_similarity_matches_euclidean_distance() -> None:
    rng = np.random.default_rng(5)
    a = rng.normal(scale=0.1, size=(7, 128)).astype(np.float32)
    b = rng.normal(scale=0.1, size=(9, 128)).astype(np.float32)

    expected = np.clip(1 - pairwise_distances(a.astype(np.float64), b.astype(np.float64)) / 1.2, 0, 1)

    np.testing.assert_allclose(DLIB_RESNET_V1.similarity(a, b), expected, atol=1e-9)


def test_linked_agrees_with_similarity() -> None:
    rng = np.random.default_rng(8)
    a = rng.normal(scale=0.05, size=(40, 128)).astype(np.float32)
    b = rng.normal(scale=0.05, size=(50, 128)).astype(np.float32)

    for threshold in (0.0, 0.3, 0.5, 0.9, 1.0):
        np.testing.assert_array_equal(
            DLIB_RESNET_V1.linked(a, b, threshold), DLIB_RESNET_V1.similarity(a, b) > threshold
        )
