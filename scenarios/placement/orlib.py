"""OR-Library p-median instances as cost matrices."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp


def read_orlib_pmed(path: str | Any) -> tuple[np.ndarray, int]:
    """Read an OR-Library p-median instance (Beasley 1985) as a cost matrix.

    The file is ``n m p`` then ``m`` lines ``i j cost``: an undirected graph
    on 1-based nodes. Where an edge is listed twice the last line wins
    (Beasley's rule). Every node is a client of weight 1 and a candidate site;
    the costs are the all-pairs shortest paths.

    Parameters
    ----------
    path : str or path-like
        The ``pmedN.txt`` file.

    Returns
    -------
    costs : numpy.ndarray, shape (n, n)
    p : int

    Examples
    --------
    >>> import pathlib, tempfile
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "tiny.txt"
    >>> _ = f.write_text("3 3 1\\n1 2 5\\n2 3 4\\n1 2 2\\n")
    >>> costs, p = read_orlib_pmed(f)
    >>> costs[0].tolist(), p
    ([0.0, 2.0, 6.0], 1)
    """
    from scipy.sparse.csgraph import shortest_path

    with open(path, encoding="ascii") as fh:
        n, m, p = (int(v) for v in fh.readline().split())
        edges: dict[tuple[int, int], float] = {}
        for _ in range(m):
            i, j, c = (int(v) for v in fh.readline().split())
            edges[(min(i, j) - 1, max(i, j) - 1)] = float(c)
    ij = np.array(list(edges), dtype=np.int64).reshape(-1, 2)
    graph = sp.csr_matrix((np.array(list(edges.values())), (ij[:, 0], ij[:, 1])), shape=(n, n))
    return shortest_path(graph, directed=False), p
