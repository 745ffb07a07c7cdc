"""Old import paths that the documentation names, kept working after the move into packages.

``auditkit.safety.LoadLimits``, ``auditkit.archfile.save_arch_model`` and
``auditkit.formats.onnx_file.embed_metadata`` are in the README and the plugin guide; their
modules now live in ``auditkit.loading``. A meta-path finder answers the old name with the new
module itself (the same object, so ``monkeypatch`` on either name patches both) instead of a
shim file per old path: the moved files stay pure renames for branches that edit them.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
from types import ModuleType

MOVED = {
    "auditkit.safety": "auditkit.loading.safety",
    "auditkit.sandbox": "auditkit.loading.sandbox",
    "auditkit.archfile": "auditkit.loading.archfile",
    "auditkit.formats": "auditkit.loading.foreign",
    "auditkit.formats.onnx_file": "auditkit.loading.onnx",
    "auditkit.formats.skops_file": "auditkit.loading.skops",
}


class _Alias(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):  # noqa: ANN001, ANN201 - importlib's API
        if name not in MOVED:
            return None
        is_package = any(other.startswith(name + ".") for other in MOVED)
        return importlib.util.spec_from_loader(name, self, is_package=is_package)

    def create_module(self, spec) -> ModuleType:  # noqa: ANN001
        return importlib.import_module(MOVED[spec.name])

    def exec_module(self, module: ModuleType) -> None:
        pass  # already executed under its new name


def install() -> None:
    if not any(isinstance(finder, _Alias) for finder in sys.meta_path):
        sys.meta_path.append(_Alias())
