"""Compiled kernels: numba functions over plain arrays, importing nothing of lobsim.

``engine`` simulates one block of scenarios of a world; ``synth`` solves the
synthetic-control weights (Lawson-Hanson NNLS on the simplex); ``reductions``
are the exact, mergeable reductions of streaming summaries.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, ("engine", "reductions", "synth"))
