"""Shared test configuration: hypothesis profiles, a config-writing fixture, and
pytest-xdist's setup (numba's cache warmed before the workers start, slow files first)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from numba_cache import lock_index, warm_in_parallel

settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=200, print_blob=True
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

#: Files that take longest (a minute or more on a busy core), started first so that
#: no worker is left with one of them at the end (``make test`` runs ``-n 2 --dist
#: loadfile --no-loadscope-reorder``: files in this order, each on one worker).
SLOW_FIRST = ("test_docs_examples.py", "test_store_safety.py", "test_kernel_v2.py",
              "test_notebooks.py", "test_cli_interrupt.py", "test_one_value.py",
              "test_scale.py", "test_report.py")


def pytest_configure(config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # an xdist worker: the controller warmed the cache
        lock_index()
    elif getattr(config.option, "numprocesses", None):  # the xdist controller
        failed = warm_in_parallel()
        if failed:  # the tests that need these kernels will say why
            config.issue_config_time_warning(
                pytest.PytestWarning(f"warming numba's cache failed:\n{failed}"), stacklevel=2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: else as collected


WriteConfig = Callable[..., Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """Return ``write(text, name="config.toml", files=None) -> Path``.

    ``text`` is written as the TOML file ``tmp_path / name``; ``files`` maps
    further relative file names (an areas CSV, a history file) to their text.
    Returns the path of the TOML file.
    """

    def write(text: str, name: str = "config.toml", files: dict[str, str] | None = None) -> Path:
        for rel, content in (files or {}).items():
            extra = tmp_path / rel
            extra.parent.mkdir(parents=True, exist_ok=True)
            extra.write_text(content, encoding="utf-8")
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return write
