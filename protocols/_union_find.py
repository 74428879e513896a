"""The find of the union-finds in the compiled loops (numba): root of ``a``, halving the path on the way."""
from __future__ import annotations

from numba import njit


@njit(cache=True)
def find(parent, a):
    while parent[a] != a:
        parent[a] = parent[parent[a]]
        a = parent[a]
    return a
