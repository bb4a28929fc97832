"""Cost matrices given as finite pairs only: a ``scipy.sparse`` matrix whose
stored entries are the finite costs and whose missing entries are ``inf``.

A walk cut-off leaves most client–site pairs unreachable (under 1 % finite at
city scale), so the models keep such a matrix sparse — in canonical CSR form,
a client's sites in column order — and work on its stored entries: the
nearest open site of each client is a segmented minimum over them, ties going
to the lowest column as ``numpy.argmin`` of the dense row would, so both
forms give the same layouts and objectives.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

#: Below this share of finite pairs a sparse matrix is kept sparse (else made dense).
SPARSE_BELOW = 0.25

#: A cost matrix as the models hold it: dense (``inf``: unreachable) or sparse.
Costs = np.ndarray | sp.csr_array


def is_sparse(costs: Any) -> bool:
    """Whether ``costs`` is a ``scipy.sparse`` matrix or array."""
    return bool(sp.issparse(costs))


def canonical(costs: Any) -> tuple[sp.csr_array | None, str | None]:
    """A sparse cost matrix in canonical CSR form, or why it cannot be one.

    Stored ``inf`` entries are dropped (unreachable either way); stored zeros
    are kept (a client at a site walks 0).

    Returns
    -------
    matrix, error
        The float64 CSR array with sorted indices and no duplicates, and
        None; or None and the message of the bad input.
    """
    if costs.ndim != 2:
        return None, f"costs must be a 2-D clients × sites matrix, got shape {costs.shape}"
    stored = int(costs.nnz)
    out = sp.csr_array(costs, dtype=np.float64, copy=True)
    out.sum_duplicates()  # sorts each client's sites; a duplicate pair shows as fewer entries
    if out.nnz < stored:
        return None, "costs has more than one stored entry for a client–site pair"
    data = out.data
    if np.isnan(data).any() or (data < 0).any():
        return None, "costs must be non-negative numbers (np.inf for unreachable)"
    if not np.isfinite(data).all():
        coo = out.tocoo()
        keep = np.isfinite(coo.data)
        out = sp.csr_array((coo.data[keep], (coo.coords[0][keep], coo.coords[1][keep])),
                           shape=out.shape)
        out.sum_duplicates()
    return out, None


def densify(costs: sp.csr_array) -> np.ndarray:
    """The dense form: stored entries as they are, ``inf`` elsewhere."""
    out = np.full(costs.shape, np.inf)
    coo = costs.tocoo()
    out[coo.coords[0], coo.coords[1]] = coo.data
    return out


def ranges(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenated ``range(starts[k], ends[k])`` and, per element, its ``k``."""
    lens = ends - starts
    owner = np.repeat(np.arange(lens.size), lens)
    offset = np.arange(owner.size) - np.repeat(np.cumsum(lens) - lens, lens)
    return starts[owner] + offset, owner


def segment_min(values: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                ) -> np.ndarray:
    """Minimum of each segment ``values[starts[k]:starts[k] + counts[k]]`` (inf if empty)."""
    out = np.full(starts.size, np.inf)
    full = counts > 0
    if values.size and full.any():
        out[full] = np.minimum.reduceat(values, starts[full])
    return out


def segment_max(values: np.ndarray, starts: np.ndarray, counts: np.ndarray,
                ) -> np.ndarray:
    """Maximum of each segment (``-inf`` if empty)."""
    out = np.full(starts.size, -np.inf)
    full = counts > 0
    if values.size and full.any():
        out[full] = np.maximum.reduceat(values, starts[full])
    return out


class SparseCosts:
    """The finite pairs of a canonical CSR cost matrix, by client and by site.

    Parameters
    ----------
    costs : scipy.sparse.csr_array
        Clients × sites, canonical (see :func:`canonical`).

    Attributes
    ----------
    row, col, val : numpy.ndarray
        Per stored entry, by client then site (the CSR order).
    ptr : numpy.ndarray
        Client ``i``'s entries are ``ptr[i]:ptr[i + 1]``.
    site_ptr, site_row, site_val : numpy.ndarray
        The same entries by site (CSC): site ``j``'s clients and costs are
        ``site_row[site_ptr[j]:site_ptr[j + 1]]`` and ``site_val[...]``.
    """

    def __init__(self, costs: sp.csr_array) -> None:
        self.csr = costs
        self.n, self.m = costs.shape
        self.ptr = np.asarray(costs.indptr, dtype=np.int64)
        self.col = np.asarray(costs.indices, dtype=np.int64)
        self.val = costs.data
        self.count = np.diff(self.ptr)
        self.row = np.repeat(np.arange(self.n), self.count)
        csc = costs.tocsc()  # sorted: each site's clients ascending
        self.site_ptr = np.asarray(csc.indptr, dtype=np.int64)
        self.site_row = np.asarray(csc.indices, dtype=np.int64)
        self.site_val = csc.data
        self._keys: np.ndarray | None = None

    def site(self, j: int) -> tuple[np.ndarray, np.ndarray]:
        """Site ``j``'s clients (ascending) and their costs."""
        a, b = self.site_ptr[j], self.site_ptr[j + 1]
        return self.site_row[a:b], self.site_val[a:b]

    def rows_entries(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positions of the entries of ``rows`` (in that order) and, per entry, its row's k."""
        return ranges(self.ptr[rows], self.ptr[rows + 1])

    def lookup(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        """``costs[rows, cols]`` element-wise, ``inf`` where no entry is stored."""
        if self._keys is None:
            self._keys = self.row * self.m + self.col
        rows = np.asarray(rows, dtype=np.int64)
        cols = np.asarray(cols, dtype=np.int64)
        if self._keys.size == 0:
            return np.full(rows.shape, np.inf)
        want = rows * self.m + cols
        at = np.minimum(np.searchsorted(self._keys, want), self._keys.size - 1)
        found = (self._keys[at] == want) & (cols >= 0) & (rows >= 0)
        return np.where(found, self.val[at], np.inf)

    def row_min(self, col_mask: np.ndarray) -> np.ndarray:
        """Per client, the least cost over the sites in ``col_mask`` (inf: none)."""
        vals = np.where(col_mask[self.col], self.val, np.inf)
        return segment_min(vals, self.ptr[:-1], self.count)

    def nearest(self, is_open: np.ndarray, rows: np.ndarray | None = None,
                ) -> tuple[np.ndarray, np.ndarray]:
        """Per client (of ``rows``; all by default), its nearest open site and the cost.

        Ties go to the lowest site index, as ``argmin`` over a dense row.
        A client no open site reaches gets site -1 and cost ``inf``.
        """
        first, d1, _, _ = self.nearest_two(is_open, rows, second=False)
        return first, d1

    def nearest_two(self, is_open: np.ndarray, rows: np.ndarray | None = None, *,
                    second: bool = True,
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per client, the nearest and second-nearest open sites and their costs.

        Returns
        -------
        first, d1, second, d2
            Site indices (-1: none) and costs (``inf``: none); ``second`` and
            ``d2`` are all -1 / ``inf`` when ``second=False``.
        """
        if rows is None:
            pos, k, starts, counts = None, self.row, self.ptr[:-1], self.count
            cols, vals = self.col, self.val
        else:
            pos, k = self.rows_entries(rows)
            counts = self.count[rows]
            starts = np.cumsum(counts) - counts
            cols, vals = self.col[pos], self.val[pos]
        size = counts.size
        masked = np.where(is_open[cols], vals, np.inf)
        d1 = segment_min(masked, starts, counts)
        hit = np.flatnonzero((masked == d1[k]) & (masked < np.inf))  # lowest column first
        owner = k[hit]
        lead = np.ones(hit.size, dtype=bool)
        lead[1:] = owner[1:] != owner[:-1]
        first = np.full(size, -1)
        first[owner[lead]] = cols[hit[lead]]
        d2 = np.full(size, np.inf)
        nxt = np.full(size, -1)
        if second:
            masked[hit[lead]] = np.inf
            d2 = segment_min(masked, starts, counts)
            hit = np.flatnonzero((masked == d2[k]) & (masked < np.inf))
            owner = k[hit]
            lead = np.ones(hit.size, dtype=bool)
            lead[1:] = owner[1:] != owner[:-1]
            nxt[owner[lead]] = cols[hit[lead]]
        return first, d1, nxt, d2

    def select(self, row_mask: np.ndarray, col_mask: np.ndarray,
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored entries in the rows and columns masked, by client then site."""
        keep = row_mask[self.row] & col_mask[self.col]
        return self.row[keep], self.col[keep], self.val[keep]

    def dense_columns(self, cols: np.ndarray) -> np.ndarray:
        """``costs[:, cols]`` as a dense clients × ``len(cols)`` array (``inf``: none)."""
        out = np.full((self.n, cols.size), np.inf)
        where = np.full(self.m, -1)
        where[cols] = np.arange(cols.size)
        keep = where[self.col] >= 0
        out[self.row[keep], where[self.col[keep]]] = self.val[keep]
        return out
