"""Which path an audit ran on a model from another runtime, in words, for every output.

An ONNX model is a white box when its converted torch network matches onnxruntime (gradient
attacks, memorization), else a black box (gradient-free attacks only). The difference changes
what the adversarial numbers mean, so it is stated where a reader looks: ``audit.json``'s
``model.path_taken`` ("white box" / "black box") and ``model.white_box_reason`` (the sentence),
the report's identity panel, and the adversarial tile's summary.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

PATH_KEYS = ("path_taken", "white_box_reason")


def model_path(adapter_info: Mapping[str, Any]) -> dict[str, Any]:
    """The path keys of an adapter's ``describe()`` (empty for torch models: always white)."""
    return {key: adapter_info[key] for key in PATH_KEYS if adapter_info.get(key)}


def with_model_path(result: Any, adapter: Any) -> Any:
    """The adversarial result with the model's path appended to its summary and details."""
    words = getattr(adapter, "path_words", None)
    if not isinstance(words, str) or not words or result.status in ("error", "skipped"):
        return result
    details = {**(result.details or {}), "model_path": words}
    summary = f"{result.summary} Model: {words}." if result.summary else f"Model: {words}."
    return dataclasses.replace(result, summary=summary, details=details)
