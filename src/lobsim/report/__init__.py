"""What results look like: figures and the HTML risk report.

``plot`` has one function per figure; ``html`` writes the self-contained page.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, ("html", "plot"))
