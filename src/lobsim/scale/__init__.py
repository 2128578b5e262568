"""Runs at scale: executors (threads or Dask), crash-safe stores, streaming summaries.

``runner`` splits a run into tasks, ``cluster`` runs them, ``store`` checkpoints
them to zarr so that a run resumes, ``streaming`` merges summaries without
keeping the scenarios (``block_series`` computes each block's series from the
kernel's outputs) and ``finalize`` turns them into the summary Dataset,
``results`` reads what a run wrote.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, ("block_series", "cluster", "finalize", "results",
                                                  "runner", "store", "streaming"))
