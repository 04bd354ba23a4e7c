"""Padded <-> packed layout of a batch of sequences (internal).

The C kernel works on the packed layout of fastlstm.h (PyTorch's
PackedSequence): the batch is sorted by length, longest first, and step t
holds the ``batch_sizes[t]`` first sorted sequences.  Work then follows the
real number of tokens, not T * B.  Without ``lengths`` the packed layout is
the time-major array itself and nothing is copied.
"""

import numpy as np


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
        lengths = np.asarray(lengths)
        if lengths.ndim != 1 or lengths.shape[0] != B:
            raise ValueError(f"lengths: expected shape ({B},) (one length per batch entry), "
                             f"got {lengths.shape}")
        if lengths.dtype.kind not in "iu":
            if lengths.dtype.kind == "f" and np.all(lengths == np.round(lengths)):
                lengths = lengths.astype(np.int64)
            else:
                raise TypeError(f"lengths: expected an integer array, got dtype {lengths.dtype}")
        lengths = lengths.astype(np.int64)
        if B and (lengths.min() < 1 or lengths.max() > T):
            raise ValueError(f"lengths: every length must be in [1, T={T}], got min "
                             f"{lengths.min()} and max {lengths.max()}")
        if np.all(lengths == T):
            return  # the full batch: plain time-major layout
        perm = np.argsort(-lengths, kind="stable")
        sorted_len = lengths[perm]
        steps = int(sorted_len[0])
        valid = np.arange(steps)[:, None] < sorted_len[None, :]  # (steps, B)
        self.batch_sizes = np.count_nonzero(valid, axis=1).astype(np.int64)
        self.perm = perm
        self.inv_perm = np.argsort(perm, kind="stable")
        # packed row r is padded row _flat[r] = t * B + batch index of the
        # (T * B, F) view: one index array, so pack and unpack are a take
        # and a scatter of whole rows
        self._flat = (np.arange(steps)[:, None] * B + perm[None, :])[valid]
        self.steps, self.rows = steps, int(self._flat.shape[0])

    @property
    def packed(self):
        return self.batch_sizes is not None

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
