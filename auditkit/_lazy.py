"""Package exports imported on first use, so a light submodule (a probe's ``options``) can be
imported without its heavy siblings (the measurement code, and torch with it)."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(package: str, exports: Mapping[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` serving ``{name: submodule}`` on demand.

    ``from auditkit.probes.bias import BiasProbe`` and entry points such as
    ``auditkit.probes.bias:BiasProbe`` work as before; only the import happens later.
    """

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    def __dir__() -> list[str]:
        return sorted(exports)

    return __getattr__, __dir__
