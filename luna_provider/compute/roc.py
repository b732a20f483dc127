"""ROC of a labelled markup: every object matched with every other, pairs of equal labels positive.

The pairs are never held: each block of pair similarities is folded into two histograms (positive
and negative pairs) over a fixed grid of :data:`GRID_STEPS` + 1 similarity values, so memory does
not depend on the markup size. A pair's *score* is its similarity rounded to the nearest multiple of
``1 / GRID_STEPS`` (2**-20, about 1e-6, half to even), and the ROC, AUC, EER and TPR at the key FPRs
are computed exactly for those scores with scikit-learn, weighting each distinct score by its count.

Top-N hits are counted per reference: its ``limit`` most similar other objects (ties by tie key),
and whether one of the first N has the reference's label and similarity >= ``threshold_hit_top``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

#: scores are multiples of 1 / GRID_STEPS in [0, 1]
GRID_STEPS = 1 << 20


@dataclass
class PairCounts:
    """Counts of positive and negative pairs per score, plus the top-N hit tallies of references."""

    positive: np.ndarray
    negative: np.ndarray
    #: first_hits[n]: references whose first hit is at rank n + 1
    first_hits: np.ndarray
    #: references that have at least one other object with their label
    with_mates: int = 0

    @classmethod
    def empty(cls, limit: int) -> PairCounts:
        import numpy as np

        return cls(
            positive=np.zeros(GRID_STEPS + 1, dtype=np.int64),
            negative=np.zeros(GRID_STEPS + 1, dtype=np.int64),
            first_hits=np.zeros(limit, dtype=np.int64),
        )

    def add_pairs(self, similarity: np.ndarray, same: np.ndarray) -> None:
        """Count pairs with similarities ``similarity`` whose labels are equal where ``same``."""
        import numpy as np

        # one histogram: even bins count negative pairs, odd bins positive ones; float work in place
        code = np.multiply(similarity, GRID_STEPS)
        np.rint(code, out=code)
        code *= 2.0
        code += same
        counts = np.bincount(code.astype(np.intp).ravel(), minlength=2 * (GRID_STEPS + 1))
        self.negative += counts[0::2]
        self.positive += counts[1::2]

    def merge(self, other: PairCounts) -> None:
        """Add another part's counts."""
        self.positive += other.positive
        self.negative += other.negative
        self.first_hits += other.first_hits
        self.with_mates += other.with_mates

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Return a compact form for storage: the non-empty bins only."""
        import numpy as np

        positive_bins = np.flatnonzero(self.positive)
        negative_bins = np.flatnonzero(self.negative)
        return {
            "positive_bins": positive_bins,
            "positive_counts": self.positive[positive_bins],
            "negative_bins": negative_bins,
            "negative_counts": self.negative[negative_bins],
            "first_hits": self.first_hits,
            "with_mates": np.asarray([self.with_mates], dtype=np.int64),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> PairCounts:
        """Rebuild counts stored by :meth:`to_arrays`."""
        first_hits = arrays["first_hits"]
        counts = cls.empty(len(first_hits))
        counts.positive[arrays["positive_bins"]] = arrays["positive_counts"]
        counts.negative[arrays["negative_bins"]] = arrays["negative_counts"]
        counts.first_hits += first_hits
        counts.with_mates = int(arrays["with_mates"][0])
        return counts


def first_hit_counts(
    candidate_labels: np.ndarray,
    candidate_similarity: np.ndarray,
    valid: np.ndarray,
    labels: np.ndarray,
    threshold: float,
) -> np.ndarray:
    """Count references by the rank of their first hit in their top list.

    :param candidate_labels: ``(n, limit)`` labels of each reference's top candidates.
    :param candidate_similarity: ``(n, limit)`` their similarities.
    :param valid: ``(n, limit)`` which slots hold a candidate.
    :param labels: ``(n,)`` the references' labels.
    :return: ``counts[r]``: references whose first hit is at rank ``r + 1``.
    """
    import numpy as np

    hit = valid & (candidate_labels == labels[:, None]) & (candidate_similarity >= threshold)
    any_hit = hit.any(axis=1)
    first = np.argmax(hit, axis=1)[any_hit]
    return np.bincount(first, minlength=hit.shape[1])


@dataclass
class RocSummary:
    """What a ROC task reports, computed from :class:`PairCounts`."""

    positive_pairs: int
    negative_pairs: int
    auc: float
    eer: float
    eer_threshold: float | None
    key_fprs: list[dict[str, float | None]]
    top_n: list[dict[str, float | int]]
    references_with_mates: int
    #: the full curve (collinear points dropped), for plotting
    fpr: np.ndarray = field(repr=False)
    tpr: np.ndarray = field(repr=False)
    thresholds: np.ndarray = field(repr=False)

    def curve_points(self, max_points: int) -> list[dict[str, float | None]]:
        """Return at most ``max_points`` points of the curve (all of them when it has no more)."""
        indexes = thin_curve(self.fpr, self.tpr, max_points)
        return [
            {
                "fpr": float(self.fpr[i]),
                "tpr": float(self.tpr[i]),
                "threshold": _threshold(self.thresholds[i]),
            }
            for i in indexes
        ]


def _threshold(value: float) -> float | None:
    """Return a threshold for JSON: ``None`` for the curve's start, which no similarity reaches."""
    import math

    return None if math.isinf(value) else float(value)


def summarise(counts: PairCounts, key_fprs: list[float]) -> RocSummary:
    """Compute the ROC curve, AUC, EER, TPR at each key FPR and top-N hit rates.

    Needs at least one positive and one negative pair.
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score, roc_curve

    positive_bins = np.flatnonzero(counts.positive)
    negative_bins = np.flatnonzero(counts.negative)
    scores = np.concatenate([positive_bins, negative_bins]) / GRID_STEPS
    truth = np.concatenate([np.ones(len(positive_bins)), np.zeros(len(negative_bins))])
    weights = np.concatenate([counts.positive[positive_bins], counts.negative[negative_bins]]).astype(
        np.float64
    )
    # One sample per distinct (score, label) weighted by its count gives the same curve as the
    # expanded pairs: scikit-learn sums the weights per distinct score, exact for integer counts.
    full_fpr, full_tpr, full_thresholds = roc_curve(
        truth, scores, sample_weight=weights, drop_intermediate=False
    )
    fpr, tpr, thresholds = roc_curve(truth, scores, sample_weight=weights)
    auc = float(roc_auc_score(truth, scores, sample_weight=weights))
    eer, eer_threshold = equal_error_rate(full_fpr, full_tpr, full_thresholds)
    operating = []
    for key in key_fprs:
        # the most permissive threshold whose FPR stays within the key FPR
        index = int(np.searchsorted(full_fpr, key, side="right")) - 1
        operating.append(
            {
                "key_fpr": float(key),
                "fpr": float(full_fpr[index]),
                "tpr": float(full_tpr[index]),
                "threshold": _threshold(full_thresholds[index]),
            }
        )
    hits = np.cumsum(counts.first_hits)
    mates = counts.with_mates
    top_n = [
        {"n": n + 1, "hits": int(hits[n]), "hit_probability": float(hits[n] / mates) if mates else 0.0}
        for n in range(len(hits))
    ]
    return RocSummary(
        positive_pairs=int(counts.positive.sum()),
        negative_pairs=int(counts.negative.sum()),
        auc=auc,
        eer=eer,
        eer_threshold=eer_threshold,
        key_fprs=operating,
        top_n=top_n,
        references_with_mates=mates,
        fpr=fpr,
        tpr=tpr,
        thresholds=thresholds,
    )


def equal_error_rate(fpr: np.ndarray, tpr: np.ndarray, thresholds: np.ndarray) -> tuple[float, float | None]:
    """Return the EER and the threshold where it is reached.

    The EER is the FPR at which the ROC curve, drawn as straight segments between its points,
    crosses FPR = 1 - TPR (false positive rate equals false negative rate). The threshold is that
    of the first point at or past the crossing.
    """
    import numpy as np

    gap = fpr + tpr - 1.0  # non-decreasing along the curve, from -1 to 1
    index = int(np.argmax(gap >= 0))
    if index == 0:
        return float(fpr[0]), _threshold(thresholds[0])
    before, after = gap[index - 1], gap[index]
    share = -before / (after - before)
    eer = fpr[index - 1] + share * (fpr[index] - fpr[index - 1])
    return float(eer), _threshold(thresholds[index])


def thin_curve(fpr: np.ndarray, tpr: np.ndarray, max_points: int) -> np.ndarray:
    """Return indexes of at most ``max_points`` points spread along a ROC curve, ends included.

    Half the points are spaced evenly along the curve's length, half evenly in log FPR, so the
    low-FPR end that face recognition cares about keeps its detail.
    """
    import numpy as np

    count = len(fpr)
    if count <= max_points:
        return np.arange(count)
    half = max(1, (max_points - 2) // 2)
    length = np.concatenate([[0.0], np.cumsum(np.abs(np.diff(fpr)) + np.abs(np.diff(tpr)))])
    by_length = np.searchsorted(length, np.linspace(0.0, length[-1], half))
    positive = fpr[fpr > 0]
    by_log = np.empty(0, dtype=np.int64)
    if len(positive):
        targets = np.logspace(np.log10(positive.min()), 0.0, max_points - 2 - half)
        by_log = np.searchsorted(fpr, targets, side="right") - 1
    chosen = np.unique(np.concatenate([[0, count - 1], by_length, by_log]))
    return chosen[:max_points]


def plot_png(summary: RocSummary, title: str) -> bytes:
    """Draw the ROC curve (log FPR axis) with its AUC, EER and key FPRs; return PNG bytes."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    figure, axes = plt.subplots(figsize=(6.4, 4.8), dpi=100)
    try:
        shown = summary.fpr > 0
        floor = min(summary.fpr[shown].min() if shown.any() else 1.0, 0.01)
        axes.plot(summary.fpr[shown], summary.tpr[shown], color="#1a73e8", lw=1.6, label="ROC")
        # FPR = FNR is a curve on a log axis: draw it through enough points
        diagonal = np.logspace(np.log10(floor), 0.0, 200)
        axes.plot(diagonal, 1.0 - diagonal, color="#999999", lw=0.8, ls="--", label="FPR = FNR")
        axes.plot([summary.eer], [1.0 - summary.eer], "o", color="#d93025", label=f"EER {summary.eer:.4g}")
        keys = [point for point in summary.key_fprs if point["fpr"] > 0]
        if keys:
            axes.plot(
                [point["fpr"] for point in keys],
                [point["tpr"] for point in keys],
                "s",
                color="#188038",
                ms=4,
                label="key FPRs",
            )
        axes.set_xscale("log")
        axes.set_xlim(floor, 1.0)
        axes.set_ylim(0.0, 1.01)
        axes.set_xlabel("false positive rate")
        axes.set_ylabel("true positive rate")
        axes.set_title(f"{title} (AUC {summary.auc:.5f})")
        axes.grid(True, which="both", alpha=0.3)
        axes.legend(loc="lower right")
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png")
    finally:
        plt.close(figure)
    return buffer.getvalue()
