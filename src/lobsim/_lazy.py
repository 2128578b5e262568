"""Lazy submodules of a package (PEP 562): ``lobsim.analysis.risk`` without importing it first.

Each package of lobsim lists its public modules; they import themselves on
first attribute access, so ``import lobsim`` stays cheap (no matplotlib, Dask
or zarr until they are used) while tab completion still lists them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from importlib import import_module
from types import ModuleType


def lazy_submodules(package: str, names: Iterable[str], extra: Iterable[str] = ()
                    ) -> tuple[Callable[[str], ModuleType], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` of ``package`` for its submodules ``names``."""
    modules = frozenset(names)
    listed = sorted({*modules, *extra})

    def __getattr__(name: str) -> ModuleType:
        # only called for names not yet set: importing a submodule binds it on
        # the package, so each one is imported once
        if name in modules:
            return import_module(f"{package}.{name}")
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return listed

    return __getattr__, __dir__
