"""Give the allocator's free pages back to the system during a long evaluation.

glibc keeps freed blocks in its heap for reuse; with large per-batch arrays freed between small long-lived
ones (the per-image rows, the readers' records), those pages stay counted in the process's memory, and its
peak creeps up with the number of batches. ``malloc_trim(0)`` returns every whole free page (glibc >= 2.8,
madvise); on other C libraries this does nothing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import functools

EVERY_IMAGES = 2048  # how often an evaluation trims: a few ms each time, a few times per 10,000 images


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim") if name else None
    except (OSError, AttributeError):  # not glibc
        return None


def release_free_memory() -> None:
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
