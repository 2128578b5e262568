"""The ``lobsim`` command line: argument parsing that calls the Python API.

``commands`` holds the parser and the main commands; the other modules add
one group of commands or options each (``baskets``, ``decisions``,
``parameter_uncertainty``, ``realdata``, ``report``, ``scale``, ``sweep``) or
one concern (``argtypes``, ``output``, ``interrupt``, ``overrides``).
"""

from lobsim.cli.commands import main

__all__ = ["main"]
