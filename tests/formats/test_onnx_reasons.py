"""Every reason an ONNX model is audited as a black box reads as a sentence with what to do.

Each branch is reached with a real graph; where the converter would have to misbehave (a crash
inside onnx2torch, a converted network that computes something else), onnx2torch's ``convert``
is replaced by one that does exactly that. The raw error text is kept apart (``twin.details``)
and never stands in the sentence.
"""

from __future__ import annotations

import json
import re
import sys

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from auditkit.cli import app

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
onnx2torch = pytest.importorskip("onnx2torch")

RAW = "internal converter state 0x7f3a"


@pytest.fixture(scope="module")
def mlp_onnx(tmp_path_factory, onnx_export, digits_data):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    return onnx_export(model, tmp_path_factory.mktemp("reasons") / "mlp.onnx", digits_data.x[:2])


def _adapter(path):
    from auditkit.loading import load_model

    return load_model(path).module.make_adapter(
        input_shape=(1, 8, 8), num_classes=10, input_range=(0.0, 1.0), device="cpu")


def _black(adapter):
    assert adapter.twin is None and not adapter.supports_gradients
    words = adapter.path_words
    assert words.startswith("black box: ") and words.endswith("to get gradient attacks")
    return words


def test_no_converter_installed_says_what_to_install(mlp_onnx, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnx2torch", None)  # import fails, as when not installed
    words = _black(_adapter(mlp_onnx))
    assert "onnx2torch, which turns the graph into a torch network, is not installed" in words
    assert "pip install -e '.[onnx]'" in words


def test_a_converter_crash_is_a_sentence_and_the_raw_text_goes_to_details(
        mlp_onnx, monkeypatch):
    def crash(_proto):
        raise RuntimeError(RAW)

    monkeypatch.setattr(onnx2torch, "convert", crash)
    adapter = _adapter(mlp_onnx)
    words = _black(adapter)
    assert "could not turn this graph into a torch network" in words
    assert "dynamo=False, opset_version=17" in words and ".pt2" in words
    assert RAW not in words
    assert adapter.describe()["twin"]["details"] == f"RuntimeError: {RAW}"


def test_weights_computed_inside_the_graph_say_to_export_them_as_initializers(
        tmp_path, onnx_export, digits_data, monkeypatch):
    from auditkit.loading import onnx_normalize

    def no_lift(proto):  # the lifting pass would otherwise rescue the graph
        raise ValueError("onnx-ir cannot read it")

    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(72, 10)).eval()
    proto = onnx.load(str(onnx_export(cnn, tmp_path / "cnn.onnx", digits_data.x[:2])))
    proto = onnx.version_converter.convert_version(proto, 17)
    constants = [onnx.helper.make_node("Constant", [], [t.name], value=t)
                 for t in proto.graph.initializer]
    proto.graph.ClearField("initializer")
    nodes = constants + list(proto.graph.node)
    proto.graph.ClearField("node")
    proto.graph.node.extend(nodes)
    onnx.save(proto, str(tmp_path / "constants.onnx"))
    monkeypatch.setattr(onnx_normalize, "lift_constants", no_lift)
    adapter = _adapter(tmp_path / "constants.onnx")
    words = _black(adapter)
    assert "the converter could not find the tensor" in words
    assert "export the weights as initializers" in words
    assert adapter.describe()["twin"]["details"].startswith("KeyError")


def test_a_converted_network_that_fails_to_run_says_so_in_words(mlp_onnx, monkeypatch):
    class Broken(nn.Module):
        def forward(self, x):
            return x @ torch.ones(3, 3)  # 64 features: the shapes cannot be multiplied

    monkeypatch.setattr(onnx2torch, "convert", lambda _proto: Broken())
    adapter = _adapter(mlp_onnx)
    words = _black(adapter)
    assert re.search(r"the converted network fails on a batch of \d+ inputs of shape \(1, 8, 8\)",
                     words)
    assert "opset_version=17" in words
    assert "cannot be multiplied" not in words
    assert "cannot be multiplied" in adapter.describe()["twin"]["details"]


def test_a_converted_network_that_disagrees_with_onnxruntime_is_not_used(
        mlp_onnx, monkeypatch):
    real = onnx2torch.convert

    class Shifted(nn.Module):  # a converter bug: every score off by one
        def __init__(self, module):
            super().__init__()
            self.module = module

        def forward(self, x):
            return self.module(x) + 1.0

    monkeypatch.setattr(onnx2torch, "convert", lambda proto: Shifted(real(proto)))
    adapter = _adapter(mlp_onnx)
    words = _black(adapter)
    assert "scores differ from onnxruntime's by up to 1, so its gradients would attack a " \
           "different model" in words
    assert adapter.twin_max_abs_diff == pytest.approx(1.0, abs=1e-5)


def test_unreadable_external_weights_say_to_copy_the_sidecar_again(mlp_onnx, monkeypatch):
    from auditkit.adapters import onnx_adapter

    def unreadable(*_args):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(onnx_adapter, "load_external_weights", unreadable)
    adapter = _adapter(mlp_onnx)
    words = _black(adapter)
    assert "external data file could not be read" in words and "copy it again" in words
    assert "Input/output error" in adapter.describe()["twin"]["details"]


def test_the_report_and_audit_json_give_the_sentence_and_keep_the_details_apart(
        mlp_onnx, tmp_path, monkeypatch):
    def crash(_proto):
        raise RuntimeError(RAW)

    monkeypatch.setattr(onnx2torch, "convert", crash)
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["scan", str(mlp_onnx), "--data", "digits", "--out", str(out),
                                   "--probes", "performance", "--budget", "fast",
                                   "--device", "cpu"])
    assert res.exit_code in (0, 1), res.output
    model = json.loads((out / "audit.json").read_text())["model"]
    assert model["path_taken"] == "black box"
    assert model["white_box_reason"].startswith(
        "black box: the converter (onnx2torch) could not turn this graph")
    assert RAW not in model["white_box_reason"]
    assert model["adapter"]["twin"]["details"] == f"RuntimeError: {RAW}"
    html = (out / "report.html").read_text()
    assert "could not turn this graph into a torch network" in html and RAW not in html
