"""What results look like: figures and the HTML risk report.

``plot`` has one function per figure of a run, ``pooling`` the table and figure
of pooled basket measurement, ``studies`` the figures of the backtest and the
maturity trade-off, ``sweeps`` that of a sensitivity sweep, ``design`` the
frontier of a design search; ``decision`` the report's first screen, ``html``
writes the self-contained page, ``workbook`` the export's CSV files and Excel
workbook.
"""

from lobsim._lazy import lazy_submodules

__getattr__, __dir__ = lazy_submodules(__name__, (
    "decision", "design", "html", "plot", "pooling", "studies", "sweeps", "workbook"))
