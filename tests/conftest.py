"""Shared test configuration: hypothesis profiles and a config-writing fixture."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

settings.register_profile("dev", deadline=None, max_examples=100)
settings.register_profile(
    "ci", deadline=None, derandomize=True, max_examples=200, print_blob=True
)
settings.load_profile("ci" if os.environ.get("CI") else "dev")

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
