"""Top-k matching in blocks: each reference's best candidates, with memory bound by references x k.

Candidates arrive in blocks; for every reference row a running top-k is kept and merged with each
block's best entries, so nothing of size references x candidates is ever held. Candidates are
ranked by similarity descending, then by a *tie key* ascending (the rank of the candidate's id), so
the result does not depend on the block size or the order the blocks come in.

:class:`CrossMatcher` ranks with a float32 matrix product and then recomputes, in float64, the
similarity of every candidate that can still be in a top-k: float32 only pre-selects, with a margin
larger than its proven rounding error, so the kept candidates and their similarities are those of
an exact float64 computation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: tie key of an empty slot, larger than any candidate's
NO_KEY = 2**62
#: unit roundoff of float32
_U32 = 2.0**-24
#: pairs rescored in float64 at once (bounds the gathered copies to a few tens of MB)
_RESCORE_CHUNK = 1 << 16


class TopK:
    """Each row's best ``k`` candidates so far, sorted by similarity descending, then tie key ascending.

    :ivar index: ``(rows, k)`` candidate indexes, ``-1`` in empty slots.
    :ivar similarity: ``(rows, k)`` similarities, ``-inf`` in empty slots.
    :ivar key: ``(rows, k)`` tie keys, :data:`NO_KEY` in empty slots.
    """

    def __init__(self, rows: int, k: int) -> None:
        import numpy as np

        self.k = k
        self.index = np.full((rows, k), -1, dtype=np.int64)
        self.similarity = np.full((rows, k), -np.inf)
        self.key = np.full((rows, k), NO_KEY, dtype=np.int64)

    def floor(self) -> np.ndarray:
        """Return per row the similarity of its k-th candidate (``-inf`` while the row is not full)."""
        return self.similarity[:, -1]

    def merge(self, rows: np.ndarray, index: np.ndarray, similarity: np.ndarray, key: np.ndarray) -> None:
        """Offer candidates ``index`` (with their ``similarity`` and tie ``key``) to rows ``rows``.

        A candidate must not be offered twice to the same row.
        """
        import numpy as np

        if len(rows) == 0:
            return
        k = self.k
        touched = np.unique(rows)
        held = self.index[touched].ravel()
        valid = held >= 0
        all_rows = np.concatenate([np.repeat(touched, k)[valid], rows])
        all_index = np.concatenate([held[valid], index])
        all_similarity = np.concatenate([self.similarity[touched].ravel()[valid], similarity])
        all_key = np.concatenate([self.key[touched].ravel()[valid], key])
        order = np.lexsort((all_key, -all_similarity, all_rows))
        sorted_rows = all_rows[order]
        starts = np.flatnonzero(np.r_[True, sorted_rows[1:] != sorted_rows[:-1]])
        slot = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
        keep = slot < k
        order, slot, target = order[keep], slot[keep], sorted_rows[keep]
        self.index[touched] = -1
        self.similarity[touched] = -np.inf
        self.key[touched] = NO_KEY
        self.index[target, slot] = all_index[order]
        self.similarity[target, slot] = all_similarity[order]
        self.key[target, slot] = all_key[order]


def block_top(
    values: np.ndarray, keys: np.ndarray, k: int, floor: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(rows, columns)`` of the entries of each row that are among its top ``k``.

    Ranking is by value descending, then ``keys`` (one per column) ascending; ``-inf`` entries and
    entries below the row's ``floor`` (the value a candidate must reach, ties included) are never
    returned. At most ``k`` entries per row.
    """
    import numpy as np

    columns = values.shape[1]
    allowed = values > -np.inf
    if floor is not None:
        allowed &= values >= floor[:, None]
    flat = np.flatnonzero(allowed)
    del allowed
    rows = flat // columns
    cols = flat - rows * columns
    counts = np.bincount(rows, minlength=len(values))
    heavy = np.flatnonzero(counts > k)
    if heavy.size == 0:
        return rows, cols
    # rows with more than k entries left: keep those at or above the row's k-th value
    part = values[heavy]
    kth = np.partition(part, columns - k, axis=1)[:, columns - k]
    keep = part >= kth[:, None]
    # Rows with ties at their k-th value keep too many: of the tied ones, keep the smallest keys.
    # Ties are rare in real data; this loop runs per row, never per element.
    for row in np.flatnonzero(np.count_nonzero(keep, axis=1) > k):
        above = part[row] > kth[row]
        tied = np.flatnonzero(part[row] == kth[row])
        need = k - int(np.count_nonzero(above))
        chosen = tied[np.argpartition(keys[tied], need - 1)[:need]]
        keep[row] = above
        keep[row, chosen] = True
    light = counts[rows] <= k
    heavy_rows, heavy_cols = np.nonzero(keep)
    return np.concatenate([rows[light], heavy[heavy_rows]]), np.concatenate([cols[light], heavy_cols])


def augment_rows(rows: np.ndarray) -> np.ndarray:
    """Return ``[r, 1, |r|^2]`` per row (float64), the left factor of :func:`similarity_matrix`."""
    import numpy as np

    rows = rows.astype(np.float64)
    return np.hstack([rows, np.ones((len(rows), 1)), (rows * rows).sum(1, keepdims=True)])


def augment_columns(columns: np.ndarray) -> np.ndarray:
    """Return ``[-2c, |c|^2, 1]`` per row (float64), the right factor of :func:`similarity_matrix`."""
    import numpy as np

    columns = columns.astype(np.float64)
    return np.hstack([-2.0 * columns, (columns * columns).sum(1, keepdims=True), np.ones((len(columns), 1))])


def similarity_matrix(rows: np.ndarray, columns: np.ndarray, scale: float) -> np.ndarray:
    """Return the float64 similarity of augmented ``rows`` with augmented ``columns``.

    One matrix product gives ``|r|^2 + |c|^2 - 2 r.c``, the squared distance, so only four passes
    over the matrix follow. Near-duplicates lose precision to cancellation (about 1e-8 on the
    similarity of identical descriptors); elsewhere it is exact to about 1e-15.
    """
    import numpy as np

    matrix = rows @ columns.T
    np.clip(matrix, 0.0, scale * scale, out=matrix)
    np.sqrt(matrix, out=matrix)
    np.divide(matrix, scale, out=matrix)
    return np.subtract(1.0, matrix, out=matrix)


def similarity_of_pairs(a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """Return the similarity ``max(0, 1 - |a_i - b_i| / scale)`` of each row pair, in float64.

    Distances come from the differences, not from ``|a|^2 + |b|^2 - 2 a.b``, so near-duplicates
    keep their precision (identical descriptors give exactly 1).
    """
    import numpy as np

    difference = a - b
    squared = np.einsum("ij,ij->i", difference, difference)
    return np.clip(1.0 - np.sqrt(squared) / scale, 0.0, 1.0)


class CrossMatcher:
    """Keep, for every reference, its best ``limit`` candidates with similarity at least ``threshold``.

    Similarity is ``max(0, 1 - euclidean distance / scale)`` (see
    :class:`~luna_provider.compute.descriptors.DescriptorVersion`), reported in float64.

    :param references: ``(n, length)`` float32 descriptors.
    :param limit: candidates kept per reference.
    :param threshold: minimum similarity of a kept candidate (inclusive).
    :param scale: distance at which similarity reaches 0.
    :param exclude: per reference, the index of a candidate it must not be matched with (itself),
        or ``-1``.
    :param row_block: references multiplied with a candidate block at once.
    """

    def __init__(
        self,
        references: np.ndarray,
        *,
        limit: int,
        threshold: float,
        scale: float,
        exclude: np.ndarray | None = None,
        row_block: int = 2048,
    ) -> None:
        import numpy as np

        count, length = references.shape
        self.limit = limit
        self.threshold = float(threshold)
        self.scale = float(scale)
        self.row_block = max(1, row_block)
        self.exclude = exclude
        self.references = references.astype(np.float64)
        self.squared = (self.references * self.references).sum(1)
        self.norms = np.sqrt(self.squared)
        # [r, 1] . [c, -|c|^2 / 2] = r.c - |c|^2 / 2: a score that orders candidates like similarity
        # does (|r|^2 is constant per row), straight out of one float32 matrix product.
        self.augmented = np.empty((count, length + 1), dtype=np.float32)
        self.augmented[:, :length] = references
        self.augmented[:, length] = 1.0
        # Error bound of a float32 dot product of n terms is about n * u * sum |x_i y_i|; doubled to
        # cover the rounding of |c|^2 / 2 and of the bounds compared with.
        self.error_factor = 2.0 * (length + 3) * _U32
        self.top = TopK(count, limit)

    def update(self, offset: int, block: np.ndarray, keys: np.ndarray) -> None:
        """Match every reference with candidates ``offset .. offset + len(block)``.

        :param keys: tie keys of the block's candidates (unique across all candidates).
        """
        import numpy as np

        if len(block) == 0:
            return
        columns, length = block.shape
        candidates = block.astype(np.float64)
        squared = (candidates * candidates).sum(1)
        augmented = np.empty((columns, length + 1), dtype=np.float32)
        augmented[:, :length] = block
        augmented[:, length] = -0.5 * squared
        largest = float(squared.max())
        for start in range(0, len(self.augmented), self.row_block):
            stop = min(start + self.row_block, len(self.augmented))
            score = self.augmented[start:stop] @ augmented.T
            self._exclude(score, start, stop, offset)
            margin = self.error_factor * (self.norms[start:stop] * np.sqrt(largest) + 0.5 * largest) + 1e-12
            rows, cols = self._preselect(score, start, stop, margin, keys)
            del score
            self._rescore(rows, cols, start, offset, candidates, keys)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(n, limit)`` candidate indexes (``-1``: none) and their similarities."""
        return self.top.index, self.top.similarity

    # -- steps of one reference block ---------------------------------------------------------------

    def _exclude(self, score: np.ndarray, start: int, stop: int, offset: int) -> None:
        import numpy as np

        if self.exclude is None:
            return
        column = self.exclude[start:stop] - offset
        inside = np.flatnonzero((column >= 0) & (column < score.shape[1]))
        score[inside, column[inside]] = -np.inf

    def _score_bound(self, similarity: np.ndarray, start: int, stop: int) -> np.ndarray:
        """Return the exact score a candidate reaches at ``similarity`` (> 0) for rows ``start .. stop``."""
        distance = (1.0 - similarity) * self.scale
        return 0.5 * (self.squared[start:stop] - distance * distance)

    def _preselect(
        self, score: np.ndarray, start: int, stop: int, margin: np.ndarray, keys: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the entries of ``score`` that can be among their row's top-k; a small superset."""
        import numpy as np

        k = self.limit
        columns = score.shape[1]
        # similarity a candidate must reach: the threshold, or the row's current k-th similarity
        floor = np.maximum(self.top.floor()[start:stop], self.threshold)
        positive = floor > 0
        exact = self._score_bound(np.where(positive, floor, 1.0), start, stop)
        bound = np.where(positive, exact - margin, -np.inf)
        # Rows without a bound (threshold 0, top list not full) keep more than k candidates for sure
        # when the block is wide enough: send them straight to the narrowing below rather than
        # listing every entry of theirs first.
        direct = np.isneginf(bound) if columns > k + 1 else np.zeros(len(bound), dtype=bool)
        flat = np.flatnonzero(score >= _down32(np.where(direct, np.inf, bound))[:, None])
        rows = flat // columns
        cols = flat - rows * columns
        counts = np.bincount(rows, minlength=stop - start)
        heavy = np.flatnonzero((counts > k) | direct)
        if heavy.size == 0:
            return rows, cols
        # More than k candidates of this block pass: narrow them to those near the block's k-th best.
        part = score[heavy]
        kth = np.partition(part, columns - k, axis=1)[:, columns - k].astype(np.float64)
        near = np.maximum(bound[heavy], kth - 2.0 * margin[heavy])
        # score at which similarity reaches 0: below it every candidate ties at 0, and ties go by key
        zero = 0.5 * (self.squared[start:stop][heavy] - self.scale * self.scale)
        by_score = positive[heavy] | (near > zero + margin[heavy])
        narrowed = np.zeros(part.shape, dtype=bool)
        narrowed[by_score] = part[by_score] >= _down32(near[by_score])[:, None]
        ties = ~by_score
        if ties.any():
            part = part[ties]
            band = margin[heavy][ties]
            maybe_positive = part >= _down32(zero[ties] - band)[:, None]
            maybe_zero = (part <= _up32(zero[ties] + band)[:, None]) & (part > -np.inf)
            tie_keys = np.where(maybe_zero, keys[None, :], NO_KEY)
            kth_key = np.partition(tie_keys, k - 1, axis=1)[:, k - 1]
            narrowed[ties] = maybe_positive | (maybe_zero & (keys[None, :] <= kth_key[:, None]))
        light = counts[rows] <= k  # direct rows have no entries in rows
        heavy_rows, heavy_cols = np.nonzero(narrowed)
        return np.concatenate([rows[light], heavy[heavy_rows]]), np.concatenate([cols[light], heavy_cols])

    def _rescore(
        self,
        rows: np.ndarray,
        cols: np.ndarray,
        start: int,
        offset: int,
        candidates: np.ndarray,
        keys: np.ndarray,
    ) -> None:

        for first in range(0, len(rows), _RESCORE_CHUNK):
            r = rows[first : first + _RESCORE_CHUNK] + start
            c = cols[first : first + _RESCORE_CHUNK]
            similarity = similarity_of_pairs(self.references[r], candidates[c], self.scale)
            passed = similarity >= self.threshold
            self.top.merge(r[passed], c[passed] + offset, similarity[passed], keys[c[passed]])


def _down32(values: np.ndarray) -> np.ndarray:
    """Round to float32 no higher than ``values``."""
    import numpy as np

    rounded = values.astype(np.float32)
    return np.where(rounded > values, np.nextafter(rounded, np.float32(-np.inf)), rounded)


def _up32(values: np.ndarray) -> np.ndarray:
    """Round to float32 no lower than ``values``."""
    import numpy as np

    rounded = values.astype(np.float32)
    return np.where(rounded < values, np.nextafter(rounded, np.float32(np.inf)), rounded)


def cross_match(
    references: np.ndarray,
    candidates: np.ndarray,
    *,
    limit: int,
    threshold: float,
    scale: float,
    block: int = 2048,
    keys: np.ndarray | None = None,
    exclude: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Cross-match two in-memory descriptor sets in blocks; see :class:`CrossMatcher`.

    ``keys`` defaults to the candidate positions. Returns ``(index, similarity)``.
    """
    import numpy as np

    if keys is None:
        keys = np.arange(len(candidates), dtype=np.int64)
    matcher = CrossMatcher(
        references, limit=limit, threshold=threshold, scale=scale, exclude=exclude, row_block=block
    )
    for offset in range(0, len(candidates), block):
        matcher.update(offset, candidates[offset : offset + block], keys[offset : offset + block])
    return matcher.result()
