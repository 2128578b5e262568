"""Compiled kernels: numba functions over plain arrays, importing nothing of lobsim.

``contract`` names the kernel's inputs and outputs (groups of arrays);
``chunked`` (with its per-bond phases ``chunked_bonds`` and the vectorisable
exp of ``fastexp``) simulates one block of scenarios of a world in chunks of
64, structure of arrays: the production kernel; ``engine`` is its scalar
reference twin, phase by phase, and ``twins`` is a plain-numpy version of each
engine phase to test it against; ``irr``
solves internal rates of return; ``synth`` solves the synthetic-control
weights (Lawson-Hanson NNLS on the simplex); ``reductions`` are the exact,
mergeable reductions of streaming summaries; ``flows`` the per-scenario flows
after the kernel (provider shortfall, tranche waterfall, after-tax flows and
their IRRs) and ``sums`` the compiled sums the summaries need (numpy's order,
or correctly rounded).
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "chunked", "chunked_bonds", "contract", "engine", "fastexp", "flows", "irr", "reductions",
    "sums", "synth", "twins"))
