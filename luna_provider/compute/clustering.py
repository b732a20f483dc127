"""Threshold clustering: connected components of the graph of pairs above a similarity threshold.

Work is split by reference rows. A subtask compares its rows against every later row in blocks and
keeps only a spanning forest of the edges it found, so what it returns is bounded by the number of
objects it touched, never by the number of pairs. Merging forests gives the same components as the
full graph.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: ``linked(rows, columns, threshold)`` -> boolean matrix of the pairs above the threshold
LinkFn = Callable[["np.ndarray", "np.ndarray", float], "np.ndarray"]


def spanning_forest(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Reduce an edge list to a spanning forest with the same connected components.

    Each component is returned as edges from its smallest node to each other node.
    """
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    if len(src) == 0:
        return src.astype(np.int64), dst.astype(np.int64)
    nodes, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    half = len(src)
    graph = coo_matrix(
        (np.ones(half, dtype=np.int8), (inverse[:half], inverse[half:])), shape=(len(nodes), len(nodes))
    )
    _, labels = connected_components(graph, directed=False)
    # nodes are sorted, so the first occurrence of each label is the component's smallest node
    _, first = np.unique(labels, return_index=True)
    roots = nodes[first][labels]
    keep = roots != nodes
    return roots[keep].astype(np.int64), nodes[keep].astype(np.int64)


def threshold_forest(
    rows: np.ndarray,
    row_offset: int,
    column_blocks: Iterable[tuple[int, np.ndarray]],
    threshold: float,
    linked: LinkFn,
    compact_at: int = 1 << 20,
) -> tuple[np.ndarray, np.ndarray]:
    """Return a spanning forest of the pairs (i, j), i < j, with ``similarity > threshold``.

    :param rows: descriptors of the reference rows ``row_offset .. row_offset + len(rows)``.
    :param column_blocks: ``(offset, block)`` pairs covering the columns to compare against; only
        pairs with a column index greater than the row index are counted, so blocks starting at
        ``row_offset`` cover every pair of these rows with every later object.
    :param linked: function telling which pairs of two descriptor blocks are above the threshold.
    :param compact_at: edge count past which the collected edges are reduced to a forest.
    """
    import numpy as np

    row_index = np.arange(row_offset, row_offset + len(rows))
    src_parts: list[np.ndarray] = []
    dst_parts: list[np.ndarray] = []
    pending = 0
    for col_offset, block in column_blocks:
        col_index = np.arange(col_offset, col_offset + len(block))
        hits = linked(rows, block, threshold)
        if col_offset < row_offset + len(rows):
            # this block overlaps the rows: keep each pair once, from its smaller index
            hits &= col_index[None, :] > row_index[:, None]
        r, c = np.nonzero(hits)
        del hits
        if len(r) == 0:
            continue
        src_parts.append(row_index[r])
        dst_parts.append(col_index[c])
        pending += len(r)
        if pending > compact_at:
            src, dst = spanning_forest(np.concatenate(src_parts), np.concatenate(dst_parts))
            src_parts, dst_parts, pending = [src], [dst], len(src)
    if not src_parts:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty.copy()
    return spanning_forest(np.concatenate(src_parts), np.concatenate(dst_parts))


def component_labels(count: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Return a component label per object ``0 .. count - 1`` given the edges between them."""
    import numpy as np
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(src), dtype=np.int8), (src, dst)), shape=(count, count))
    _, labels = connected_components(graph, directed=False)
    return labels


def clusters_from_labels(labels: np.ndarray) -> list[list[int]]:
    """Group object indexes by label: biggest cluster first, ties by smallest member."""
    import numpy as np

    if len(labels) == 0:
        return []
    order = np.argsort(labels, kind="stable")
    boundaries = np.flatnonzero(np.diff(labels[order])) + 1
    groups = [group.tolist() for group in np.split(order, boundaries)]
    groups.sort(key=lambda group: (-len(group), group[0]))
    return groups


def group_edges(keys: list[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Return edges joining objects that share a non-empty key (such as a track id)."""
    import numpy as np

    first: dict[str, int] = {}
    src: list[int] = []
    dst: list[int] = []
    for index, key in enumerate(keys):
        if not key:
            continue
        head = first.setdefault(key, index)
        if head != index:
            src.append(head)
            dst.append(index)
    return np.asarray(src, dtype=np.int64), np.asarray(dst, dtype=np.int64)
