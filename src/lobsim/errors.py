"""The project's own exceptions and warnings."""

from __future__ import annotations


class LobsimWarning(UserWarning):
    """A warning raised by lobsim (turned into an error in the test suite)."""


def format_warning(message: Warning | str, category: type[Warning], filename: str,
                   lineno: int, line: str | None = None) -> str:
    """One line per warning on the command line (``warnings.formatwarning``)."""
    return f"lobsim: warning: {message}\n"


class ConfigError(ValueError):
    """A configuration file is malformed or inconsistent.

    The message names the file, the TOML path of the field (for example
    ``bonds[2].payers[0].share``), the bad value and how to fix it, so that the
    command line can print it as one line.

    Parameters
    ----------
    message : str
        What is wrong and how to fix it.
    source : str, optional
        The file the configuration came from.
    path : str, optional
        The TOML path of the offending field.
    """

    def __init__(self, message: str, *, source: str | None = None, path: str | None = None):
        self.source = source
        self.path = path
        self.reason = message
        where = ": ".join(part for part in (source, path) if part)
        super().__init__(f"{where}: {message}" if where else message)


class UsageError(Exception):
    """A command-line mistake that is not about the config (exit status 2)."""
