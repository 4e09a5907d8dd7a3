"""Numba kernels of PocketPACS: arithmetic over byte buffers and arrays only
(no I/O, no database, no UI).  ``reference`` holds a plain-Python/NumPy
version of each kernel that the tests compare against."""
