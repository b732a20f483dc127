from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import brentq
from sklearn.metrics import pairwise_distances, roc_auc_score, roc_curve

from luna_provider.compute.roc import (
    GRID_STEPS,
    PairCounts,
    first_hit_counts,
    plot_png,
    summarise,
    thin_curve,
)


def labelled_pairs(seed: int, count: int, labels: int, spread: float) -> tuple[np.ndarray, np.ndarray]:
    """Return similarities and same-label flags of all pairs i < j of synthetic labelled faces."""
    rng = np.random.default_rng(seed)
    # people close to each other, each photo with its own amount of noise: the classes overlap
    offsets = rng.normal(size=(labels, 128))
    centres = rng.normal(size=128) * 0.05 + offsets * 0.35 / np.linalg.norm(offsets, axis=1, keepdims=True)
    label = rng.integers(0, labels, size=count)
    noise = rng.normal(size=(count, 128)) * rng.uniform(0.2, 1.8, size=(count, 1)) * spread
    vectors = (centres[label] + noise).astype(np.float32)
    similarity = np.clip(1.0 - pairwise_distances(vectors.astype(np.float64)) / 1.2, 0.0, 1.0)
    upper = np.triu_indices(count, k=1)
    return similarity[upper], label[upper[0]] == label[upper[1]]


def grid(similarity: np.ndarray) -> np.ndarray:
    """The documented pair score: similarity rounded to the nearest multiple of 2**-20."""
    return np.round(similarity * 2.0**20) / 2.0**20


def counts_of(similarity: np.ndarray, same: np.ndarray, chunks: int = 1) -> PairCounts:
    counts = PairCounts.empty(5)
    for part_sim, part_same in zip(
        np.array_split(similarity, chunks), np.array_split(same, chunks), strict=True
    ):
        piece = PairCounts.empty(5)
        piece.add_pairs(part_sim, part_same)
        counts.merge(piece)
    return counts


@pytest.mark.parametrize(("seed", "spread"), [(1, 0.015), (2, 0.025), (3, 0.05)])
def test_summary_equals_scikit_learn_on_the_pairs(seed: int, spread: float) -> None:
    similarity, same = labelled_pairs(seed, 400, 40, spread)
    scores = grid(similarity)
    truth = same.astype(int)

    summary = summarise(counts_of(similarity, same, chunks=7), [1e-4, 1e-3, 0.01, 0.1, 0.5])

    assert summary.positive_pairs == int(same.sum())
    assert summary.negative_pairs == int((~same).sum())
    assert abs(summary.auc - roc_auc_score(truth, scores)) < 1e-9
    fpr, tpr, thresholds = roc_curve(truth, scores)
    np.testing.assert_allclose(summary.fpr, fpr, rtol=0, atol=1e-12)
    np.testing.assert_allclose(summary.tpr, tpr, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(summary.thresholds, thresholds)
    points = summary.curve_points(10**6)
    assert [p["threshold"] for p in points] == [None, *thresholds[1:].tolist()]
    # the rounding to the grid costs less than a millionth of AUC
    assert abs(summary.auc - roc_auc_score(truth, similarity)) < 1e-5


@pytest.mark.parametrize("seed", [4, 5])
def test_eer_is_where_the_curve_crosses_fpr_equals_fnr(seed: int) -> None:
    similarity, same = labelled_pairs(seed, 300, 30, 0.025)
    fpr, tpr, _ = roc_curve(same.astype(int), grid(similarity))
    expected = brentq(lambda x: 1.0 - x - np.interp(x, fpr, tpr), 0.0, 1.0, xtol=1e-14)

    summary = summarise(counts_of(similarity, same), [])

    assert 0 < summary.eer < 0.5
    assert abs(summary.eer - expected) < 1e-9
    assert summary.eer_threshold is not None
    scores = grid(similarity)
    # at the EER threshold false negatives have just fallen to the false positives or below
    threshold = summary.eer_threshold
    assert np.mean(scores[same] < threshold) <= np.mean(scores[~same] >= threshold)


def test_key_fprs_give_the_best_tpr_within_each_fpr() -> None:
    similarity, same = labelled_pairs(6, 300, 25, 0.02)
    scores = grid(similarity)
    positives, negatives = scores[same], scores[~same]
    keys = [1e-5, 1e-3, 0.01, 0.05, 0.3]

    summary = summarise(counts_of(similarity, same), keys)

    for key, point in zip(keys, summary.key_fprs, strict=True):
        # brute force over every distinct score as the threshold (accept pairs scoring at or above it)
        allowed = [t for t in np.unique(scores) if np.count_nonzero(negatives >= t) / len(negatives) <= key]
        assert point["key_fpr"] == key
        if not allowed:
            assert (point["tpr"], point["fpr"], point["threshold"]) == (0.0, 0.0, None)
            continue
        best = min(allowed)
        assert point["threshold"] == best
        assert point["tpr"] == pytest.approx(np.count_nonzero(positives >= best) / len(positives), abs=1e-12)
        assert point["fpr"] == pytest.approx(np.count_nonzero(negatives >= best) / len(negatives), abs=1e-12)


def test_hand_checked_pairs() -> None:
    counts = PairCounts.empty(1)
    counts.add_pairs(np.array([0.9, 0.8, 0.4, 0.7, 0.3, 0.2, 0.1]), np.array([1, 1, 1, 0, 0, 0, 0], bool))

    summary = summarise(counts, [0.25])

    # 11 of the 12 positive-negative pairs are ordered right (0.4 < 0.7)
    assert summary.auc == pytest.approx(11 / 12, abs=1e-12)
    # accepting >= 0.8 gives TPR 2/3 at FPR 0; >= 0.7 adds a false positive (FPR 1/4), >= 0.4 the
    # last positive (TPR 1) and no negative: the most permissive threshold within FPR 1/4
    assert summary.key_fprs == [
        {"key_fpr": 0.25, "fpr": 0.25, "tpr": 1.0, "threshold": pytest.approx(0.4, abs=1e-6)}
    ]
    # the curve (0,0) (0,2/3) (1/4,2/3) (1/4,1) crosses FPR = 1 - TPR on the vertical segment at 1/4
    assert summary.eer == pytest.approx(0.25)
    assert summary.eer_threshold == pytest.approx(0.4, abs=1e-6)
    assert summary.positive_pairs == 3 and summary.negative_pairs == 4


def test_scores_are_rounded_to_the_grid() -> None:
    counts = PairCounts.empty(1)
    step = 1 / GRID_STEPS
    counts.add_pairs(np.array([0.0, 1.0, 0.4 * step, 0.6 * step, 1.5 * step]), np.ones(5, bool))

    assert np.flatnonzero(counts.positive).tolist() == [0, 1, 2, GRID_STEPS]
    assert counts.positive[[0, 1, 2, GRID_STEPS]].tolist() == [2, 1, 1, 1]


def test_counts_survive_storage() -> None:
    similarity, same = labelled_pairs(7, 80, 8, 0.03)
    counts = counts_of(similarity, same)
    counts.first_hits += np.array([3, 1, 0, 0, 2])
    counts.with_mates = 9

    again = PairCounts.from_arrays(counts.to_arrays())

    assert (again.positive == counts.positive).all() and (again.negative == counts.negative).all()
    assert again.first_hits.tolist() == [3, 1, 0, 0, 2] and again.with_mates == 9


def test_first_hits_by_rank() -> None:
    labels = np.array([0, 1, 2, 3])
    candidate_labels = np.array([[0, 0, 1], [2, 1, 1], [0, 1, 2], [0, 1, 2]])
    candidate_similarity = np.array([[0.9, 0.8, 0.7], [0.9, 0.4, 0.3], [0.9, 0.8, 0.7], [0.9, 0.8, 0.7]])
    valid = np.array([[1, 1, 1], [1, 1, 1], [1, 1, 0], [1, 1, 1]], bool)

    counts = first_hit_counts(candidate_labels, candidate_similarity, valid, labels, threshold=0.35)

    # reference 0 hits at rank 1, 1 at rank 2 (0.4 >= 0.35), 2 only in an empty slot, 3 never
    assert counts.tolist() == [1, 1, 0]


def test_thin_curve_keeps_ends_and_bounds_points() -> None:
    rng = np.random.default_rng(0)
    fpr = np.r_[0.0, np.sort(rng.random(5000)), 1.0]
    tpr = np.r_[0.0, np.sort(rng.random(5000)), 1.0]

    chosen = thin_curve(fpr, tpr, 100)

    assert len(chosen) <= 100
    assert chosen[0] == 0 and chosen[-1] == len(fpr) - 1
    assert (np.diff(chosen) > 0).all()
    assert thin_curve(fpr[:50], tpr[:50], 100).tolist() == list(range(50))


def test_plot_is_a_png() -> None:
    similarity, same = labelled_pairs(8, 120, 12, 0.02)
    png = plot_png(summarise(counts_of(similarity, same), [0.01]), "test")
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(png) > 5000
