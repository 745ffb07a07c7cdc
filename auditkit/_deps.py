"""Optional dependencies are checked here, once, with the pip command that fixes them."""

from __future__ import annotations

import importlib
from types import ModuleType

from auditkit.errors import MissingDependencyError

_HINTS = {
    "pyarrow": "pip install 'auditkit[parquet]'",
    "torch_geometric": "pip install auditkit-graph",
    "torchmetrics": "pip install torchmetrics",
    "PIL": "pip install pillow",
    "onnx": "pip install 'auditkit[onnx]'",
    "onnxruntime": "pip install 'auditkit[onnx]'",
    "skops.io": "pip install 'auditkit[sklearn]'",
}


def require(module: str, purpose: str) -> ModuleType:
    """Import ``module`` or raise a one-line error saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        hint = _HINTS.get(module, f"pip install {module}")
        raise MissingDependencyError(f"{purpose} needs {module}: run `{hint}`") from exc
