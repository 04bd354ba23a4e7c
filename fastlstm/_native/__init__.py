"""The compiled kernel's Python side: the Cython boundary, the packed layout
of a batch, buffer reuse and the parameter/pack cache (internal)."""
