"""ONNX graphs several test modules build."""

from __future__ import annotations

import warnings

import pytest


@pytest.fixture()
def unconvertible():
    """``export(model, path, example, shrink=True)``: the model as opset-17 ONNX with the demo's
    metadata, behind an identity ``Shrink`` (lambd = bias = 0) on its input when ``shrink``.
    onnx2torch has no converter for Shrink, onnxruntime runs it, and the scores are unchanged."""
    onnx = pytest.importorskip("onnx")
    import torch
    from onnx import helper

    from auditkit.demo import digits_metadata
    from auditkit.loading.onnx import embed_metadata

    def export(model, path, example, shrink=True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["pixels"],
                              output_names=["scores"],
                              dynamic_axes={"pixels": {0: "batch"}, "scores": {0: "batch"}})
        proto = onnx.load(str(path))
        embed_metadata(proto, digits_metadata())
        if shrink:
            for node in proto.graph.node:
                node.input[:] = ["shrunk" if name == "pixels" else name for name in node.input]
            node = helper.make_node("Shrink", ["pixels"], ["shrunk"], lambd=0.0, bias=0.0)
            proto.graph.node.insert(0, node)
        onnx.save(proto, str(path))
        return path

    return export
