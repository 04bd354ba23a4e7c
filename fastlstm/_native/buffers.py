"""Reuse of the training step's scratch arrays (internal).

A training forward keeps two arrays per layer and direction for its
backward (gates and cells): for a large layer tens
of megabytes, which the allocator takes fresh from the operating system and
the OS must zero page by page before the kernel can write them (a
measurable part of a large layer's training step; docs/kernel-design.md
has the measurement).  Once a backward has consumed them, it gives them
back here, and the next training forward of the same shape takes them
instead of allocating.
"""

import threading

import numpy as np


class BufferPool:
    """Arrays given back by the last finished backward, by shape and dtype.

    Only that last set is kept (each ``give`` replaces the previous one), so
    the pool never holds more than one step's buffers, and shapes that change
    from batch to batch simply miss.  The pool does not check references: a
    caller gives back only arrays nothing else holds (the backward gives its
    forward's gates and cells, which never leave the layer).
    """

    def __init__(self):
        self._free = {}
        self._lock = threading.Lock()

    def empty(self, shape, dtype):
        """An uninitialised array of this shape and dtype (reused when possible)."""
        key = (tuple(shape), np.dtype(dtype))
        with self._lock:
            arrays = self._free.get(key)
            if arrays:
                return arrays.pop()
        return np.empty(shape, dtype)

    def give(self, arrays):
        """Keep these arrays (and drop whatever was kept before)."""
        free = {}
        for a in arrays:
            if a is not None:
                free.setdefault((a.shape, a.dtype), []).append(a)
        with self._lock:
            self._free = free
