"""Compiled kernels: numba functions over plain arrays, importing nothing of lobsim.

``engine`` simulates one block of scenarios of a world; ``synth`` solves the
synthetic-control weights (Lawson-Hanson NNLS on the simplex).
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, ("contract", "engine", "irr", "synth", "twins"))
