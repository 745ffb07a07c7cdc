"""ONNX graphs several test modules build."""

from __future__ import annotations

import pytest


@pytest.fixture()
def unconvertible(onnx_export):
    """``export(model, path, example, shrink=True)``: the model as opset-17 ONNX with the demo's
    metadata, behind an identity ``Shrink`` (lambd = bias = 0) on its input when ``shrink``.
    onnx2torch has no converter for Shrink, onnxruntime runs it, and the scores are unchanged."""
    from onnx import helper

    def shrink_input(proto):
        for node in proto.graph.node:
            node.input[:] = ["shrunk" if name == "pixels" else name for name in node.input]
        node = helper.make_node("Shrink", ["pixels"], ["shrunk"], lambd=0.0, bias=0.0)
        proto.graph.node.insert(0, node)

    def export(model, path, example, shrink=True):
        return onnx_export(model, path, example, edit=shrink_input if shrink else None)

    return export
