"""The admin and grid hierarchy of the synthetic city, made of whole faces.

Every unit above the block is a union of faces (the areas between road
centrelines), so district, street offices, communities, grids and sub-grids
tile each other exactly, and their boundaries run along road centrelines as
real ones mostly do. Faces are grouped by weighted k-means on their centres.
"""

from __future__ import annotations

import numpy as np
import shapely

#: Code of Chaoyang district (朝阳区), the 6-digit administrative division code.
DISTRICT_CODE = "110105"
DISTRICT_NAME = "朝阳区"


def kmeans(rng: np.random.Generator, xy: np.ndarray, weight: np.ndarray, k: int,
           iterations: int = 12) -> np.ndarray:
    """Group points into ``k`` non-empty clusters (weighted Lloyd iterations).

    Parameters
    ----------
    rng : numpy.random.Generator
        Seeds the first centres.
    xy : numpy.ndarray
        (n, 2) coordinates.
    weight : numpy.ndarray
        (n,) non-negative weights.
    k : int
        Clusters wanted; at most ``n``.

    Returns
    -------
    numpy.ndarray
        Cluster label per point, 0..k-1, each label used, ordered north-west
        to south-east by cluster centre.

    Examples
    --------
    >>> xy = np.array([[0.0, 0], [1, 0], [10, 0], [11, 0]])
    >>> kmeans(np.random.default_rng(0), xy, np.ones(4), 2).tolist()
    [0, 0, 1, 1]
    """
    n = len(xy)
    k = max(1, min(k, n))
    if k == 1:
        return np.zeros(n, dtype=np.int64)
    w = np.asarray(weight, dtype=float) + 1e-9
    centres = xy[rng.choice(n, size=k, replace=False, p=w / w.sum())]
    labels = np.zeros(n, dtype=np.int64)
    for _ in range(iterations):
        d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
        labels = d.argmin(axis=1)
        for j in range(k):
            m = labels == j
            if not m.any():
                # Re-seed an empty cluster at the point farthest from its centre.
                far = int(d[np.arange(n), labels].argmax())
                centres[j] = xy[far]
                labels[far] = j
                continue
            centres[j] = (xy[m] * w[m, None]).sum(axis=0) / w[m].sum()
    d = ((xy[:, None, :] - centres[None, :, :]) ** 2).sum(axis=2)
    labels = d.argmin(axis=1)
    used = np.unique(labels)
    # Order clusters north-west first so codes read like a map.
    order = used[np.lexsort((centres[used, 0], -np.round(centres[used, 1], -2)))]
    remap = np.full(k, -1)
    remap[order] = np.arange(order.size)
    return remap[labels]


def group_faces(rng: np.random.Generator, faces: np.ndarray, k: int,
                weight: np.ndarray | None = None) -> np.ndarray:
    """Group polygons into ``k`` compact groups.

    Parameters
    ----------
    rng : numpy.random.Generator
        Randomness.
    faces : numpy.ndarray of shapely Polygons
        The pieces.
    k : int
        Groups wanted.
    weight : numpy.ndarray, optional
        Weight per face (area by default).

    Returns
    -------
    numpy.ndarray
        Group label per face.
    """
    pts = shapely.point_on_surface(faces)
    xy = np.column_stack([shapely.get_x(pts), shapely.get_y(pts)])
    w = shapely.area(faces) if weight is None else weight
    return kmeans(rng, xy, w, k)


def union_by(faces: np.ndarray, labels: np.ndarray, n: int) -> list[shapely.Geometry]:
    """Union of the faces of each label 0..n-1, as valid (Multi)Polygons."""
    order = np.argsort(labels, kind="stable")
    bounds = np.searchsorted(labels[order], np.arange(n + 1))
    out = []
    for j in range(n):
        g = shapely.union_all(faces[order[bounds[j]:bounds[j + 1]]])
        out.append(shapely.make_valid(g))
    return out


def as_multipolygon(geoms: np.ndarray | list) -> np.ndarray:
    """Polygons and MultiPolygons as MultiPolygons (lower-dimension parts dropped).

    Examples
    --------
    >>> as_multipolygon([shapely.box(0, 0, 1, 1)])[0].geom_type
    'MultiPolygon'
    """
    out = np.empty(len(geoms), dtype=object)
    for i, g in enumerate(geoms):
        if g.geom_type == "Polygon":
            out[i] = shapely.MultiPolygon([g])
        elif g.geom_type == "MultiPolygon":
            out[i] = g
        else:
            polys = [p for p in getattr(g, "geoms", []) if p.geom_type == "Polygon"]
            polys += [q for p in getattr(g, "geoms", []) if p.geom_type == "MultiPolygon"
                      for q in p.geoms]
            out[i] = shapely.MultiPolygon(polys)
    return out
