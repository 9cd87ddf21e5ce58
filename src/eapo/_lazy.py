"""Lazy package exports: a name is imported from its submodule on first use (PEP 562).

Submodules that import torch or transformers take seconds to load; reading and validating a config
(`eapo train --typo`) imports only the packages' config modules and must not pay for them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, where: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` for `package` that imports each name in `where` from `package.<where[name]>`."""

    def __getattr__(name: str) -> Any:
        if name in where:
            return getattr(importlib.import_module(f"{package}.{where[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
