"""Lazy submodules and attributes of a package (PEP 562): ``lobsim.analysis.risk`` without importing it first.

Each package of lobsim lists its public modules; they import themselves on
first attribute access, so ``import lobsim`` stays cheap (no matplotlib, Dask
or zarr until they are used) while tab completion still lists them. A package
may also name attributes that live in a submodule (``lobsim.simulate`` in
``lobsim.model.simulate``): the submodule is imported when the attribute is
first read, so that ``import lobsim`` (and the command line, which imports it)
does not pay for scipy.stats or xarray before it needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import import_module
from types import ModuleType
from typing import Any


def lazy_submodules(package: str, names: Iterable[str], extra: Iterable[str] = (),
                    attributes: Mapping[str, str] | None = None
                    ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` of ``package`` for its submodules ``names``.

    ``attributes`` maps an attribute of the package to the module that
    defines it (the same name there).
    """
    modules = frozenset(names)
    where = dict(attributes or {})
    listed = sorted({*modules, *extra, *where})

    def __getattr__(name: str) -> ModuleType | Any:
        # only called for names not yet set: importing a submodule binds it on
        # the package, and a lazy attribute is bound below, so each is imported once
        if name in modules:
            return import_module(f"{package}.{name}")
        if name in where:
            value = getattr(import_module(where[name]), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
