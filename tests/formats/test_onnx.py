"""ONNX models: the demo CNN exported to ONNX audits like the PyTorch file it came from."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.errors import AuditkitInputError

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from auditkit.adapters.onnx_adapter import PATH_BLACK, PATH_WHITE  # noqa: E402
from auditkit.attacks import HopSkipJump, QueryModel  # noqa: E402
from auditkit.demo import DIGITS_MEAN, DIGITS_STD, Normalized, digits_metadata  # noqa: E402
from auditkit.loading.onnx import embed_metadata  # noqa: E402

PROBES = ["performance", "calibration"]


def _export(model: nn.Module, path, example, *, dynamic=True, metadata=None, dynamo=False):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if dynamo:
            torch.onnx.export(model, (example,), str(path), dynamo=True,
                              dynamic_shapes=({0: torch.export.Dim("batch")},))
        else:
            axes = {"pixels": {0: "batch"}, "scores": {0: "batch"}} if dynamic else None
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["pixels"],
                              output_names=["scores"], dynamic_axes=axes)
    if metadata is not None:
        proto = onnx.load(str(path))
        embed_metadata(proto, metadata)
        onnx.save(proto, str(path))
    return path


@pytest.fixture(scope="module")
def onnx_cnn(tmp_path_factory, demo_model, digits_data):
    """The demo CNN (normalized inputs) as ONNX, with the demo's metadata in metadata_props."""
    path = tmp_path_factory.mktemp("onnx") / "digits-cnn.onnx"
    return _export(demo_model.eval(), path, digits_data.x[:2], metadata=digits_metadata())


def _metrics(result):
    return {name: probe.metrics for name, probe in result.probes.items()}


def _assert_same_metrics(ours, reference):
    for probe, metrics in reference.items():
        assert ours[probe].keys() == metrics.keys()
        for key, value in metrics.items():
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            assert ours[probe][key] == pytest.approx(value, rel=1e-4, abs=1e-5), (probe, key)


@pytest.fixture(scope="module")
def torch_metrics(demo_model_file):
    return _metrics(auditkit.scan(demo_model_file, probes=PROBES, budget="fast", device="cpu"))


def test_onnx_export_gives_the_pytorch_files_metrics_and_a_white_box_twin(onnx_cnn, torch_metrics):
    result = auditkit.scan(onnx_cnn, probes=PROBES, budget="fast", device="cpu")
    _assert_same_metrics(_metrics(result), torch_metrics)
    adapter = result.model["adapter"]
    assert result.model["format"] == "onnx"
    assert adapter["path"] == PATH_WHITE and adapter["supports_gradients"]
    assert adapter["twin"]["max_abs_diff"] < 1e-3
    assert adapter["mean"] == list(DIGITS_MEAN)  # read from metadata_props
    assert "onnxruntime" in adapter["runtime"]


def test_a_graph_onnx2torch_cannot_convert_runs_as_a_black_box(tmp_path, demo_model, digits_data,
                                                                torch_metrics, unconvertible):
    path = unconvertible(demo_model.eval(), tmp_path / "shrink.onnx", digits_data.x[:2])
    result = auditkit.scan(path, probes=PROBES, budget="fast", device="cpu")
    _assert_same_metrics(_metrics(result), torch_metrics)
    adapter = result.model["adapter"]
    assert adapter["path"] == PATH_BLACK and not adapter["supports_gradients"]
    assert "operator the converter does not support: Shrink" in adapter["twin"]["why_not"]


def test_a_fixed_batch_labels_only_graph_is_audited_and_attacked_by_labels(
    tmp_path, demo_model, digits_data, torch_metrics
):
    class Labels(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = Normalized(demo_model, DIGITS_MEAN, DIGITS_STD)

        def forward(self, x):
            return self.net(x).argmax(dim=1)

    # Batch fixed at 3 (no dynamic axes), no mean/std: the graph normalizes itself.
    path = _export(Labels().eval(), tmp_path / "labels.onnx", digits_data.x[:3], dynamic=False)
    result = auditkit.scan(path, digits_data, probes=["performance"], budget="fast",
                           device="cpu")
    accuracy = result.probes["performance"].metrics["accuracy"]
    assert accuracy == pytest.approx(torch_metrics["performance"]["accuracy"], abs=1e-6)
    assert result.model["adapter"]["diagnostics"]["output_kind"] == "labels"
    assert not result.model["adapter"]["supports_gradients"]

    loaded = auditkit.loading.load_model(path)
    adapter = auditkit.api.build_adapter(loaded.module, digits_data, metadata=loaded.metadata,
                                         device="cpu")
    x, y = digits_data.x[:40], digits_data.y[:40]
    correct = adapter.predict_logits(x).argmax(1) == y
    model = QueryModel(adapter.predict_logits)
    out = HopSkipJump(model, eps=1.0, norm="L2", queries=300,
                      generator=torch.Generator().manual_seed(0)).perturb(x[correct], y[correct])
    robust = float((out.margin <= 0).float().mean())
    assert robust < 0.8  # labels alone are enough to break it
    assert int(out.queries.sum()) == model.queries


def _zipmap_model(path, weights: np.ndarray, labels: list[int]):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["scores"]),
            helper.make_node("Softmax", ["scores"], ["probs"], axis=1),
            helper.make_node("ArgMax", ["probs"], ["label"], axis=1, keepdims=0),
            helper.make_node("ZipMap", ["probs"], ["output_probability"],
                             domain="ai.onnx.ml", classlabels_int64s=labels),
        ],
        "zipmap",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [None, weights.shape[0]])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, [None]),
         helper.make_value_info("output_probability", helper.make_sequence_type_proto(
             helper.make_map_type_proto(TensorProto.INT64,
                                        helper.make_tensor_type_proto(TensorProto.FLOAT, []))))],
        [onnx.numpy_helper.from_array(weights.astype(np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13),
                                                    helper.make_opsetid("ai.onnx.ml", 1)])
    model.ir_version = 8
    helper.set_model_props(model, {"class_names": "low,mid,high", "input_range": "[-5, 5]"})
    onnx.save(model, str(path))
    return path


def test_zipmap_probabilities_of_converted_sklearn_models_are_read_as_probabilities(tmp_path):
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 3))
    path = _zipmap_model(tmp_path / "zipmap.onnx", weights, [0, 1, 2])
    x = torch.from_numpy(rng.uniform(-5, 5, size=(50, 4)).astype(np.float32))
    expected = torch.softmax(x @ torch.from_numpy(weights).float(), dim=1)
    y = expected.argmax(1)
    loaded = auditkit.loading.load_model(path)
    assert loaded.format == "onnx"
    assert loaded.metadata.class_names == ("low", "mid", "high")
    assert loaded.metadata.input_range == (-5.0, 5.0)
    data = auditkit.api.resolve_data((x, y))
    adapter = auditkit.api.build_adapter(loaded.module, data, metadata=loaded.metadata,
                                         device="cpu")
    assert adapter.kind == "zipmap" and adapter.num_classes == 3
    assert adapter.input_range == (-5.0, 5.0)
    assert torch.allclose(adapter.predict_logits(x).exp(), expected, atol=1e-5)


def _cli(path, tmp_path):
    return CliRunner().invoke(app, ["scan", str(path), "--data", "digits", "--out",
                                    str(tmp_path / "out"), "--probes", "performance",
                                    "--budget", "fast", "--device", "cpu"])


def _one_line_exit_2(res):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output
    return lines[0]


def test_a_truncated_onnx_file_is_one_line_exit_2(tmp_path, onnx_cnn):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(onnx_cnn.read_bytes()[:300])
    line = _one_line_exit_2(_cli(broken, tmp_path))
    assert "not a valid ONNX model" in line and "re-export" in line


def test_a_graph_that_fails_the_checker_is_one_line_exit_2(tmp_path, onnx_cnn):
    proto = onnx.load(str(onnx_cnn))
    proto.graph.node[0].input[0] = "no_such_tensor"  # dangling edge
    path = tmp_path / "dangling.bin"  # the extension says nothing; the content does
    onnx.save(proto, str(path))
    line = _one_line_exit_2(_cli(path, tmp_path))
    assert "not a valid ONNX model" in line


def test_external_data_outside_the_models_folder_is_refused(tmp_path, onnx_cnn):
    proto = onnx.load(str(onnx_cnn))
    tensor = proto.graph.initializer[0]
    tensor.data_location = onnx.TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", "../../../etc/passwd"
    tensor.ClearField("raw_data")
    path = tmp_path / "escape.onnx"
    path.write_bytes(proto.SerializeToString())
    line = _one_line_exit_2(_cli(path, tmp_path))
    assert "leaves the model's folder" in line
    with pytest.raises(AuditkitInputError, match="external data"):
        auditkit.loading.load_model(path)


# --- the adversarial and memorization probes on ONNX models ------------------------------------
def test_adversarial_reports_pgd_on_the_twin_and_square_on_onnxruntime_with_the_gap(onnx_cnn):
    result = auditkit.scan(onnx_cnn, probes=["adversarial"], budget="fast", device="cpu",
                           options={"adversarial": {"n_examples": 100}})
    probe = result.probes["adversarial"]
    metrics = probe.metrics
    assert probe.status != "error", probe.error
    assert metrics["square_accuracy"] < metrics["clean_accuracy"] - 0.2  # well below clean
    assert metrics["pgd_minus_square"] == pytest.approx(
        metrics["pgd_accuracy"] - metrics["square_accuracy"])
    assert metrics["robust_accuracy"] <= min(metrics["pgd_accuracy"], metrics["square_accuracy"])
    assert 1 <= metrics["square_queries_mean"] <= metrics["square_queries_budget"]
    assert "Square" in probe.details["worst_case_over"] and "PGD − Square" in probe.summary


def test_a_black_box_onnx_model_gets_square_and_skips_memorization(tmp_path, demo_model,
                                                                   digits_data, unconvertible):
    path = unconvertible(demo_model.eval(), tmp_path / "shrink.onnx", digits_data.x[:2])
    result = auditkit.scan(path, probes=["adversarial", "memorization"], budget="fast",
                           device="cpu", options={"adversarial": {"n_examples": 100}})
    adversarial = result.probes["adversarial"]
    assert adversarial.status in ("passed", "warned"), adversarial.summary
    metrics = adversarial.metrics
    assert "pgd_accuracy" not in metrics
    assert metrics["square_accuracy"] < metrics["clean_accuracy"] - 0.2
    assert metrics["square_accuracy"] < metrics["noise_accuracy"]
    checks = {c.name: c for c in adversarial.checks}
    assert checks["gradients_nonzero_and_finite"].status == "skipped"
    assert checks["iterative_beats_single_step"].detail.startswith("not applicable")
    assert checks["attack_beats_random_noise"].status == "passed"
    assert "more queries" in checks["converged_in_steps"].detail
    memorization = result.probes["memorization"]
    assert memorization.status == "skipped"
    assert "re-trainable architecture" in memorization.skip_reason


def test_a_labels_only_onnx_model_gets_the_decision_based_attack(tmp_path, demo_model,
                                                                 digits_data):
    class Labels(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = Normalized(demo_model, DIGITS_MEAN, DIGITS_STD)

        def forward(self, x):
            return self.net(x).argmax(dim=1)

    path = _export(Labels().eval(), tmp_path / "labels.onnx", digits_data.x[:2])
    result = auditkit.scan(path, digits_data, probes=["adversarial"], budget="fast",
                           device="cpu",
                           options={"adversarial": {"n_examples": 40, "norm": "L2",
                                                    "queries": 200}})
    probe = result.probes["adversarial"]
    assert probe.status in ("passed", "warned"), probe.summary
    assert "HopSkipJump" in probe.summary
    assert probe.metrics["decision_accuracy"] < probe.metrics["clean_accuracy"]
    assert 1 <= probe.metrics["decision_queries_mean"] <= 200


def test_gradient_free_never_skips_a_black_box(tmp_path, onnx_cnn):
    loaded = auditkit.loading.load_model(onnx_cnn)
    from auditkit.adapters.onnx_adapter import OnnxModelAdapter

    adapter = OnnxModelAdapter(loaded.module, input_shape=(1, 8, 8), input_range=(0.0, 1.0),
                               mean=DIGITS_MEAN, std=DIGITS_STD, device="cpu", white_box=False)
    result = auditkit.scan(adapter, "digits", probes=["adversarial"], budget="fast",
                           options={"adversarial": {"gradient_free": "never"}})
    assert result.probes["adversarial"].status == "skipped"
    assert "gradient_free=never" in result.probes["adversarial"].skip_reason


def test_a_graph_with_two_inputs_is_one_line_exit_2(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Add", ["a", "b"], ["scores"])], "two",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [None, 64]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [None, 64])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [None, 64])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    path = tmp_path / "two.onnx"
    onnx.save(model, str(path))
    line = _one_line_exit_2(_cli(path, tmp_path))
    assert "2 inputs" in line and "one input tensor" in line
