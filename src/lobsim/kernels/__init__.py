"""Compiled kernels: numba functions over plain arrays, importing nothing of lobsim.

``contract`` names the kernel's inputs and outputs (groups of arrays);
``engine`` simulates one block of scenarios of a world, phase by phase, and
``twins`` is a plain-numpy version of each phase to test it against; ``irr``
solves internal rates of return; ``synth`` solves the synthetic-control
weights (Lawson-Hanson NNLS on the simplex); ``reductions`` are the exact,
mergeable reductions of streaming summaries.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "contract", "engine", "irr", "reductions", "synth", "twins"))
