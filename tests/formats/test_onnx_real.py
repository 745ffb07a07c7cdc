"""ONNX files as users bring them: today's dynamo export with a weights sidecar, weights stored as
Constant nodes, operators the converter lacks, and sidecar locations that try to leave the folder.
"""

from __future__ import annotations

import builtins
import json

import pytest
import torch
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnx2torch")


PROBES = ["performance", "calibration"]


def _metrics(result):
    return {name: probe.metrics for name, probe in result.probes.items()}


def _assert_same_metrics(ours, reference):
    for probe, metrics in reference.items():
        assert ours[probe].keys() == metrics.keys()
        for key, value in metrics.items():
            if isinstance(value, float) and value == value:  # NaN and None are not compared
                assert ours[probe][key] == pytest.approx(value, rel=1e-4, abs=1e-5), (probe, key)


@pytest.fixture(scope="module")
def dynamo_cnn(tmp_path_factory, demo_model, digits_data, dynamo_export):
    return dynamo_export(demo_model.eval(), tmp_path_factory.mktemp("dynamo") / "cnn",
                          digits_data.x[:2])


@pytest.fixture(scope="module")
def torch_metrics(demo_model_file):
    return _metrics(auditkit.scan(demo_model_file, probes=PROBES, budget="fast", device="cpu"))


def _external(proto):
    return [t for t in proto.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]


def test_a_dynamo_export_with_a_sidecar_scans_from_elsewhere_as_a_white_box(
        dynamo_cnn, torch_metrics, tmp_path, monkeypatch):
    proto = onnx.load(str(dynamo_cnn), load_external_data=False)
    assert _external(proto) and (dynamo_cnn.parent / "model.onnx.data").is_file()
    assert max(o.version for o in proto.opset_import if o.domain == "") >= 18
    monkeypatch.chdir(tmp_path)  # not the model's folder: the sidecar is found next to the model
    result = auditkit.scan(dynamo_cnn, probes=PROBES, budget="fast", device="cpu")
    _assert_same_metrics(_metrics(result), torch_metrics)
    assert result.model["path_taken"] == "white box"
    assert result.model["white_box_reason"].startswith(
        "white box (converted network matches onnxruntime to ")
    adapter = result.model["adapter"]
    assert adapter["supports_gradients"] and adapter["twin"]["max_abs_diff"] < 1e-4
    assert any("opset" in step for step in adapter["normalized"])


# --- graphs exported for a fixed batch ------------------------------------------------------
@pytest.fixture(scope="module")
def fixed_batch_cnn(tmp_path_factory, demo_model, digits_data, dynamo_export):
    """``batch -> model.onnx`` exported with no dynamic batch: Reshape(x, [batch, 512]) inside."""
    root = tmp_path_factory.mktemp("fixed")
    return {batch: dynamo_export(demo_model.eval(), root / f"batch{batch}", digits_data.x[:batch],
                                  dynamic=False) for batch in (1, 2)}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("remedy", ["freed", "chunks"])
def test_a_fixed_batch_export_scans_as_a_white_box_with_the_pt2_metrics(
        batch, remedy, fixed_batch_cnn, torch_metrics, tmp_path, monkeypatch):
    from auditkit.adapters import onnx_adapter
    from auditkit.loading.onnx_batch import FreedBatch

    path = fixed_batch_cnn[batch]
    proto = onnx.load(str(path), load_external_data=False)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_value == batch
    if remedy == "chunks":  # the fallback when the batch cannot be provably freed
        monkeypatch.setattr(onnx_adapter, "free_batch", lambda *_: FreedBatch(None))
    monkeypatch.chdir(tmp_path)
    result = auditkit.scan(path, probes=PROBES, budget="fast", device="cpu")
    assert result.model["path_taken"] == "white box", result.model["white_box_reason"]
    _assert_same_metrics(_metrics(result), torch_metrics)
    step = {"freed": f"fixed batch of {batch} freed",
            "chunks": f"fixed batch of {batch} is run in chunks"}[remedy]
    assert any(step in s for s in result.model["adapter"]["normalized"])


def test_without_the_remedies_a_fixed_batch_says_to_export_a_dynamic_batch(
        fixed_batch_cnn, monkeypatch):
    from auditkit.adapters import onnx_adapter
    from auditkit.loading import load_model
    from auditkit.loading.onnx_batch import FreedBatch

    monkeypatch.setattr(onnx_adapter, "free_batch", lambda *_: FreedBatch(None))
    monkeypatch.setattr(onnx_adapter, "FixedBatch", lambda module, _batch: module)
    adapter = load_model(fixed_batch_cnn[1]).module.make_adapter(
        input_shape=(1, 8, 8), num_classes=10, input_range=(0.0, 1.0), device="cpu", **_stats())
    assert adapter.twin is None
    assert adapter.path_words.startswith("black box: the converted network fails on a batch of ")
    assert "(the graph was exported for a fixed batch of 1); re-export with a dynamic batch " \
           "(torch.onnx.export(..., dynamic_shapes=" in adapter.path_words
    assert "is invalid for input of size" in adapter.describe()["twin"]["details"]


def test_a_batch_entry_is_freed_only_where_it_provably_is_the_batch():
    from auditkit.loading.onnx_batch import BATCH, _free_target

    assert _free_target([2, 512], [BATCH, 32, 4, 4], 2) == [0, 512]
    assert _free_target([2, -1], [BATCH, 32, 4, 4], 2) == [0, 512]
    assert _free_target([2, 32, 16], [BATCH, 32, 4, 4], 2) == [0, 32, 16]
    assert _free_target([2, 512], [2, 32, 4, 4], 2) is None  # not the input's batch
    assert _free_target([2, 1024], [BATCH, 32, 4, 4], 2) is None  # two examples become one
    assert _free_target([4, 256], [BATCH, 32, 4, 4], 2) is None  # the batch is not first
    assert _free_target([2, 512], [BATCH, None, 4, 4], 2) is None  # one example's size unknown


# --- sidecar locations that leave the folder or the file -------------------------------------
def _with_location(dynamo_cnn, folder, location, offset=None):
    """A copy of the dynamo export whose first external tensor points at ``location``."""
    import shutil

    folder.mkdir()
    shutil.copy(dynamo_cnn.parent / "model.onnx.data", folder / "model.onnx.data")
    proto = onnx.load(str(dynamo_cnn), load_external_data=False)
    tensor = _external(proto)[0]
    for entry in tensor.external_data:
        if entry.key == "location":
            entry.value = location
        if entry.key == "offset" and offset is not None:
            entry.value = str(offset)
    path = folder / "model.onnx"
    path.write_bytes(proto.SerializeToString())
    return path, tensor.name


def _outside(tmp_path):
    outside = tmp_path / "outside.data"
    outside.write_bytes(b"\0" * 4096)
    return outside


@pytest.mark.parametrize("case", ["absolute", "dotdot", "symlink", "past_end"])
def test_a_sidecar_location_outside_the_folder_or_file_is_one_line_exit_2_unopened(
        case, dynamo_cnn, tmp_path, monkeypatch):
    outside = _outside(tmp_path)
    folder = tmp_path / "model"
    if case == "absolute":
        path, tensor = _with_location(dynamo_cnn, folder, "/etc/hostname")
        target, words = "/etc/hostname", "absolute path"
    elif case == "dotdot":
        path, tensor = _with_location(dynamo_cnn, folder, "../outside.data")
        target, words = str(outside), "leaves the model's folder"
    elif case == "symlink":
        path, tensor = _with_location(dynamo_cnn, folder, "link.data")
        (folder / "link.data").symlink_to(outside)
        target, words = str(outside), "through a symlink"
    else:
        size = (dynamo_cnn.parent / "model.onnx.data").stat().st_size
        path, tensor = _with_location(dynamo_cnn, folder, "model.onnx.data", offset=size)
        target, words = str(folder / "model.onnx.data"), "past its end"
    opened = []
    real_open = builtins.open

    def spy_open(file, *args, **kwargs):
        opened.append(str(file))
        return real_open(file, *args, **kwargs)

    def no_session(*_args, **_kwargs):
        raise AssertionError("onnxruntime was given the model")

    monkeypatch.setattr(builtins, "open", spy_open)
    monkeypatch.setattr(ort, "InferenceSession", no_session)
    res = CliRunner().invoke(app, ["scan", str(path), "--data", "digits", "--out",
                                   str(tmp_path / "out"), "--probes", "performance",
                                   "--budget", "fast", "--device", "cpu"])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output
    assert repr(tensor) in lines[0] and words in lines[0]
    assert target not in opened and not any(o.endswith("outside.data") for o in opened)


def test_external_data_beyond_load_memory_is_refused(dynamo_cnn):
    from auditkit.safety import LoadLimits

    from auditkit.errors import AuditkitInputError
    from auditkit.loading import load_model

    with pytest.raises(AuditkitInputError, match="--load-memory"):
        load_model(dynamo_cnn, limits=LoadLimits(memory_bytes=100))


# --- graphs the converter needed help with, or cannot take -----------------------------------
def _constant_weights(source, path):
    """The graph with every initializer turned into a Constant node, as some frameworks write."""
    from onnx import helper

    proto = onnx.load(str(source))
    constants = [helper.make_node("Constant", [], [t.name], value=t)
                 for t in proto.graph.initializer]
    proto.graph.ClearField("initializer")
    nodes = constants + list(proto.graph.node)
    proto.graph.ClearField("node")
    proto.graph.node.extend(nodes)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    return path


def test_a_graph_with_constant_node_weights_converts_and_matches_onnxruntime(
        tmp_path, demo_model, digits_data, unconvertible):
    from auditkit.adapters.onnx_adapter import convert_to_torch
    from auditkit.loading import load_model

    source = unconvertible(demo_model.eval(), tmp_path / "plain.onnx", digits_data.x[:2],
                           shrink=False)
    path = _constant_weights(source, tmp_path / "constants.onnx")
    proto = onnx.load(str(path))
    assert not proto.graph.initializer
    module, why = convert_to_torch(proto, 0)  # as it is, onnx2torch cannot take it
    assert module is None and why.sentence.endswith("to get gradient attacks")
    model = load_model(path).module
    adapter = model.make_adapter(input_shape=(1, 8, 8), num_classes=10, input_range=(0.0, 1.0),
                                 device="cpu", **_stats())
    assert adapter.twin is not None and adapter.supports_gradients
    assert any("Constant node(s) lifted" in step for step in adapter.normalized)
    x = digits_data.x[:64]
    with torch.no_grad():
        twin = adapter.twin.logits(x)
    assert torch.allclose(twin, adapter.predict_logits(x), atol=1e-4)


def _stats():
    from auditkit.demo import DIGITS_MEAN, DIGITS_STD

    return {"mean": DIGITS_MEAN, "std": DIGITS_STD}


def test_an_unconvertible_operator_is_a_black_box_and_the_report_says_why(
        tmp_path, demo_model, digits_data, unconvertible):
    path = unconvertible(demo_model.eval(), tmp_path / "shrink.onnx", digits_data.x[:2])
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["scan", str(path), "--data", "digits", "--out", str(out),
                                   "--probes", "performance,adversarial", "--budget", "fast",
                                   "--device", "cpu"])
    assert res.exit_code in (0, 1), res.output
    audit = json.loads((out / "audit.json").read_text())
    reason = ("black box: the graph uses an operator the converter does not support: Shrink v9; "
              "replace it in the network")
    assert audit["model"]["path_taken"] == "black box"
    assert audit["model"]["white_box_reason"].startswith(reason)
    assert reason in audit["probes"]["adversarial"]["summary"]
    html = (out / "report.html").read_text()
    assert html.count("operator the converter does not support: Shrink v9") >= 2  # panel + tile
