"""The project's own exceptions and warnings."""

from __future__ import annotations

from collections.abc import Iterable


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


#: How many known ids an unknown-id message lists before "and N more".
KNOWN_IDS_LISTED = 5


class UnknownIdError(ConfigError, KeyError):
    """An id that names nothing in the config (a bond, a basket, a tranche, ...).

    A :class:`ConfigError` (one line: the file, what was looked up, a few of
    the known ids and the closest one) that is also a :class:`KeyError`, as a
    failed lookup by key is.

    Parameters
    ----------
    what : str
        What was looked up, singular (``"bond"``, ``"tranche of basket 'b'"``).
    value : str
        The id asked for.
    known : iterable of str
        The ids that exist, in the config's order.
    source, path : str, optional
        As for :class:`ConfigError`.
    """

    # KeyError's str() is the repr of its key; the message reads better as is
    __str__ = BaseException.__str__

    def __init__(self, what: str, value: str, known: Iterable[str], *,
                 source: str | None = None, path: str | None = None):
        import difflib

        ids = list(known)
        self.value = value
        self.known = tuple(ids)
        if not ids:
            listed = "there are none"
        else:
            shown = ", ".join(map(repr, ids[:KNOWN_IDS_LISTED]))
            more = len(ids) - KNOWN_IDS_LISTED
            listed = f"known: {shown}" + (f" and {more} more" if more > 0 else "")
        close = difflib.get_close_matches(str(value), ids, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"no {what} {value!r} ({listed}){hint}", source=source, path=path)
