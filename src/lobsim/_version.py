"""The installed version of lobsim, recorded in every result's provenance."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lobsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
