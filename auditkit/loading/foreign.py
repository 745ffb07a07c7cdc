"""Model formats beyond torch: ONNX (onnxruntime) and scikit-learn (skops).

``auditkit.loading`` asks ``sniff_foreign`` about files it does not recognize and hands the
ones named here to ``load_foreign``; the result is not an ``nn.Module`` but an object with
``make_adapter(...)``, which ``api.build_adapter`` calls once the audit data is known.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from auditkit.loading.onnx import FORMAT_ONNX, looks_like_onnx
from auditkit.loading.skops import FORMAT_SKOPS, SklearnModel, looks_like_skops

FOREIGN_FORMATS = (FORMAT_ONNX, FORMAT_SKOPS)

__all__ = ["FOREIGN_FORMATS", "FORMAT_ONNX", "FORMAT_SKOPS", "SklearnModel", "load_foreign",
           "sniff_foreign"]


def sniff_foreign(head: bytes, zip_names: list[str] | None = None) -> str | None:
    """The foreign format of a file from its first bytes (or its zip member names)."""
    if zip_names is not None:
        return FORMAT_SKOPS if looks_like_skops(zip_names) else None
    return FORMAT_ONNX if looks_like_onnx(head) else None


def load_foreign(
    fmt: str, path: Path, *, unsafe_pickle: bool, parse_metadata: Callable[[str | None], Any],
    memory_bytes: int | None = None,
) -> tuple[Any, Any]:
    """(model object with ``make_adapter``, embedded metadata) for an ONNX or skops file;
    ``memory_bytes`` (``--load-memory``) bounds an ONNX model's external data."""
    if fmt == FORMAT_ONNX:
        from auditkit.adapters.onnx_adapter import OnnxModel
        from auditkit.loading.onnx import metadata_from_props, read_onnx

        proto = read_onnx(path, memory_bytes)
        metadata = parse_metadata(metadata_from_props(proto))
        model = OnnxModel(path, proto)
        if metadata.input_shape is None and model.facts.example_shape is not None:
            import dataclasses

            metadata = dataclasses.replace(metadata, input_shape=model.facts.example_shape)
        return model, metadata
    from auditkit.loading.skops import read_skops

    estimator = read_skops(path, unsafe=unsafe_pickle)
    return SklearnModel(estimator), parse_metadata(None)
