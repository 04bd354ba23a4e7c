"""Padded <-> packed layout of a batch of sequences (internal).

The C kernel works on the packed layout of fastlstm.h (PyTorch's
PackedSequence): the batch is sorted by length, longest first, and step t
holds the ``batch_sizes[t]`` first sorted sequences.  Work then follows the
real number of tokens, not T * B.  Without ``lengths`` the packed layout is
the time-major array itself and nothing is copied.  With them, the layer's
first and last layers read and write the padded arrays in place through
``padded_rows`` (the kernel's row maps); ``pack``/``unpack`` copy for the
rest (layers in between, gradients, non-contiguous input).
"""

import numpy as np

from .._checks import check_lengths
from . import kernels


class SequencePlan:
    """How one padded batch (T, B, .) maps to packed rows.

    Attributes: ``T``, ``B``, ``steps`` (longest length), ``rows``,
    ``batch_sizes`` (int64, (steps,)) or None, ``perm`` (sorted position ->
    batch index) or None, ``inv_perm``.
    """

    def __init__(self, T, B, lengths=None):
        self.T, self.B = T, B
        self.batch_sizes = self.perm = self.inv_perm = None
        self.steps, self.rows = T, T * B
        if lengths is None:
            return
        lengths = check_lengths(lengths, B)
        # validation (ValueError for a length outside [1, T]), sort and row
        # index in one compiled pass: numpy calls cost more than the work here
        perm, inv_perm = np.empty(B, np.int64), np.empty(B, np.int64)
        batch_sizes, flat = np.empty(T, np.int64), np.empty(T * B, np.int64)
        steps, rows = kernels.plan_rows(lengths, T, perm, inv_perm, batch_sizes, flat)
        if rows == T * B:
            return  # the full batch: plain time-major layout
        self.batch_sizes = batch_sizes[:steps]
        self.perm, self.inv_perm = perm, inv_perm
        # packed row r is padded row _flat[r] = t * B + batch index of the
        # (T * B, F) view: one index array, so pack and unpack are a take
        # and a scatter of whole rows
        self._flat = flat[:rows]
        self.steps, self.rows = steps, rows

    @property
    def packed(self):
        return self.batch_sizes is not None

    def padded_rows(self, batch_first):
        """Packed row -> row of the padded batch seen as a 2-D array of rows:
        (T * B, F) time-major, or (B * T, F) for a batch_first (B, T, F).
        The kernel reads and writes the padded batch through it directly."""
        flat = self._flat if self.packed else np.arange(self.rows, dtype=np.int64)
        if not batch_first:
            return flat
        t, b = np.divmod(flat, self.B)
        return b * self.T + t

    def pack(self, x):
        """(T, B, F) time-major -> (rows, F) C-contiguous."""
        if not self.packed:
            return np.ascontiguousarray(x.reshape(self.T * self.B, x.shape[2]))
        if x.flags.c_contiguous:
            return np.take(x.reshape(self.T * self.B, x.shape[2]), self._flat, axis=0)
        # e.g. a batch_first view: gather rows without copying all of x first
        return np.ascontiguousarray(x[self._flat // self.B, self._flat % self.B])

    def unpack(self, y):
        """(rows, F) -> (T, B, F), zeros at padded steps."""
        if not self.packed:
            return y.reshape(self.T, self.B, y.shape[1])
        out = np.zeros((self.T * self.B, y.shape[1]), dtype=y.dtype)
        out[self._flat] = y
        return out.reshape(self.T, self.B, y.shape[1])

    def to_sorted(self, state):
        """(N, B, F) state in batch order -> sorted order, C-contiguous."""
        if self.perm is None:
            return np.ascontiguousarray(state)
        return np.ascontiguousarray(state[:, self.perm])

    def from_sorted(self, state):
        if self.perm is None:
            return state
        return state[:, self.inv_perm]
