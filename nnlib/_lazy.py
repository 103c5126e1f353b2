"""Public names of a package imported on first use (PEP 562).

`nnlib runs list` and `nntui --runs` import nnlib.runs, which imports nnlib.callbacks.base:
running the packages' `__init__` must not import the layers, the datasets and the
callbacks too (they were most of the time to the runs screen). A package lists where each
of its names lives and keeps `TYPE_CHECKING` imports of the same names for type checkers
(tests/test_layer_registry.py checks that the two agree)."""

from __future__ import annotations

import importlib
import sys
import types
from collections.abc import Callable, Mapping


class _Package(types.ModuleType):
    """A package whose public name may be that of the submodule it lives in (nnlib.gradcheck
    is the function of nnlib/gradcheck.py): importing the submodule makes the import system
    set the package's attribute to the submodule, which this turns back into the name (the
    Python docs' way to customise a module's attributes)."""

    def __setattr__(self, name: str, value: object) -> None:
        where = self.__dict__.get("_LAZY", {})
        if where.get(name) == name and isinstance(value, types.ModuleType):
            value = getattr(value, name)
        super().__setattr__(name, value)


def lazy(
    package: str, where: Mapping[str, str]
) -> tuple[Callable[[str], object], Callable[[], list[str]]]:
    """`__getattr__` and `__dir__` for `package`, whose public names are imported on first
    use from the submodule `where` maps them to ("" for a submodule itself), then kept in
    the package's namespace (so each is imported once)."""
    module = sys.modules[package]
    module.__class__ = _Package
    namespace = module.__dict__

    def get(name: str) -> object:
        try:
            submodule = where[name]
        except KeyError:
            raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        if submodule:
            value = getattr(importlib.import_module(f"{package}.{submodule}"), name)
        else:
            value = importlib.import_module(f"{package}.{name}")
        namespace[name] = value
        return value

    def listing() -> list[str]:
        """The namespace as it is once every public name was asked for (for completion)."""
        return sorted(set(namespace) | set(where))

    return get, listing
