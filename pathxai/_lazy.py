"""Lazy (PEP 562) re-exports shared by pathxai's package ``__init__`` modules.

Importing a subpackage stays cheap: torch, lifelines or shap load only when a name that
needs them is first used.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, table: Mapping[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """Build ``__getattr__`` and ``__dir__`` for a package with lazily imported names.

    Parameters
    ----------
    package : str
        The package's dotted name (for error messages).
    table : mapping of str to str
        Public name -> ``"module.path:attribute"``.
    namespace : dict
        The package's ``globals()``; a resolved name is cached there.

    Returns
    -------
    (getattr, dir) : tuple of callables
        Assign them to the module's ``__getattr__`` and ``__dir__``.
    """

    def __getattr__(name: str) -> Any:
        if name in table:
            module_name, attr = table[name].split(":")
            value = getattr(importlib.import_module(module_name), attr)
            namespace[name] = value
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(namespace.get("__all__", ())))

    return __getattr__, __dir__
