"""The corruptions probe on the demo CNN and on two small models trained here, with and without
Gaussian-noise augmentation: accuracy falls with severity, augmentation lowers the noise error,
same seed gives the same numbers, ECE under shift equals torchmetrics'."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn
from torchmetrics.classification import MulticlassCalibrationError

from auditkit.adapters import TorchModelAdapter
from auditkit.data.builtin import digits
from auditkit.pipeline import build_context
from auditkit.probes.corruptions import CorruptionsProbe

NOISE_AND_BLUR = ("gaussian_noise", "shot_noise", "gaussian_blur", "defocus_blur", "motion_blur")


@pytest.fixture(scope="module")
def demo_result(demo_model, digits_data):
    from auditkit.demo import DIGITS_MEAN, DIGITS_STD

    adapter = TorchModelAdapter(
        demo_model, input_shape=(1, 8, 8), input_range=(0.0, 1.0),
        mean=DIGITS_MEAN, std=DIGITS_STD, device="cpu",
    )
    context = build_context(adapter, digits_data, seed=0, budget="standard")
    probe = CorruptionsProbe(budget="standard", corruptions=NOISE_AND_BLUR, n_examples=400)
    return probe.run(context), context


def test_demo_cnn_accuracy_falls_with_severity_for_noise_and_blur(demo_result):
    result, _ = demo_result
    clean = result.metrics["clean_accuracy"]
    n = result.details["n_examples"]
    for name in NOISE_AND_BLUR:
        accuracy = [result.metrics[f"{name}_s{s}_accuracy"] for s in range(1, 6)]
        # never up by more than one example, clearly down overall
        assert all(b <= a + 1 / n for a, b in zip(accuracy, accuracy[1:], strict=False)), (
            name, accuracy)
        assert accuracy[0] - accuracy[-1] >= 0.1, (name, accuracy)
        if name != "motion_blur":  # a 1.5 px streak on an 8 px digit is not mild
            assert accuracy[0] >= clean - 0.02, (name, accuracy, clean)
    checks = {c.name: c.status for c in result.checks}
    assert checks["monotone_in_severity"] == "passed"
    assert result.metrics["mean_corruption_accuracy"] < clean


def test_ece_under_shift_equals_torchmetrics(demo_result):
    result, context = demo_result
    kept = context.artifacts["corruptions"]
    labels = torch.as_tensor(kept["labels"])
    for position, severity in enumerate(kept["severities"]):
        probs = torch.cat(
            [torch.as_tensor(p[:, position]) for p in kept["probabilities"].values()]
        )
        target = labels.repeat(len(kept["probabilities"]))
        reference = MulticlassCalibrationError(num_classes=10, n_bins=15, norm="l1")(
            probs.float(), target
        )
        assert result.metrics[f"ece_s{severity}"] == pytest.approx(float(reference), abs=1e-5)
    # corrupted predictions really differ from clean: ECE moves with severity
    assert result.metrics["ece_s5"] > result.metrics["ece_clean"]


def test_figures_heatmap_curve_and_gallery(demo_result):
    result, _ = demo_result
    by_id = {f["id"]: f for f in result.figures}
    heat = by_id["corruption-heatmap"]
    assert heat["kind"] == "matrix" and heat["y_labels"] == [c.replace("_", " ") for c in NOISE_AND_BLUR]
    assert len(heat["values"][0]) == 5
    curve = by_id["accuracy-vs-severity"]
    assert {s["name"] for s in curve["series"]} >= {"gaussian noise", "gaussian blur"}
    gallery = by_id["corruption-gallery"]
    cells = [cell for row in gallery["rows"] for cell in row["cells"]]
    assert [c["label"].split(":")[0] for c in cells] == ["clean", *(c.replace("_", " ") for c in NOISE_AND_BLUR)]
    assert np.asarray(cells[1]["pixels"]).shape == (8, 8)
    assert "severity 3" in gallery["title"]
    json.dumps(result.to_dict())  # strict JSON all the way down


def _train(augment: bool, data, seed: int = 0) -> nn.Module:
    """A small MLP on the digits training split, full-batch Adam, a couple of seconds; with
    ``augment`` every step sees Gaussian noise of σ drawn uniformly in [0, 0.5] per example."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(seed)
    x, y = data.train.x, data.train.y
    for _ in range(200):
        inputs = x
        if augment:
            sigma = torch.rand(len(x), 1, 1, 1, generator=generator) * 0.5
            inputs = (x + sigma * torch.randn(x.shape, generator=generator)).clamp(0, 1)
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(inputs), y).backward()
        optimizer.step()
    return model.eval()


def test_noise_augmentation_lowers_the_noise_corruption_error():
    data = digits()
    errors = {}
    for augment in (False, True):
        adapter = TorchModelAdapter(
            _train(augment, data), input_shape=(1, 8, 8), input_range=(0.0, 1.0), device="cpu"
        )
        context = build_context(adapter, data, seed=0, budget="fast")
        probe = CorruptionsProbe(budget="fast", corruptions=("gaussian_noise",),
                                 severities=(1, 2, 3, 4, 5), n_examples=None)
        result = probe.run(context)
        assert result.metrics["clean_accuracy"] > 0.9
        errors[augment] = result.metrics["gaussian_noise_error"]
    assert errors[True] < errors[False] - 0.02, errors


def test_same_seed_same_numbers(demo_context):
    def run(seed):
        demo_context.seed = seed
        probe = CorruptionsProbe(budget="fast", corruptions=("gaussian_noise", "elastic", "fog"),
                                 n_examples=100)
        return probe.run(demo_context).metrics

    first, again, other = run(0), run(0), run(1)
    assert first == again
    assert first != other  # the seed does reach the corruptions


def test_graph_and_point_cloud_models_are_not_applicable(demo_context):
    probe = CorruptionsProbe(budget="fast")
    assert probe.not_applicable(demo_context) is None
    for modality in ("graph", "point_cloud"):
        demo_context.data.modality = modality
        try:
            phrase = probe.not_applicable(demo_context)
            assert phrase == "image and table classifiers"
            assert probe.skip_reason(demo_context) == (
                "not applicable to this model: applies to image and table classifiers"
            )
        finally:
            demo_context.data.modality = "image"


def test_unknown_corruption_is_one_line_error():
    from auditkit.errors import AuditkitInputError

    with pytest.raises(AuditkitInputError, match="corruptions.corruptions=.*snow") as error:
        CorruptionsProbe(budget="fast", corruptions=("gaussian_noise", "snow"))
    assert "gaussian_noise" in str(error.value) and "\n" not in str(error.value)


def test_images_that_are_neither_grey_nor_rgb_skip_jpeg_and_say_why():
    from auditkit.data.core import AuditData

    g = torch.Generator().manual_seed(0)
    data = AuditData(name="two-channel", x=torch.rand(60, 2, 16, 16, generator=g),
                     y=torch.randint(0, 2, (60,), generator=g))
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.Flatten(), nn.Linear(4 * 14 * 14, 2)).eval()
    adapter = TorchModelAdapter(model, input_shape=(2, 16, 16), input_range=(0.0, 1.0),
                                device="cpu")
    result = CorruptionsProbe(budget="fast").run(build_context(adapter, data, budget="fast"))
    assert set(result.details["accuracy_table"]) == {"gaussian_noise", "gaussian_blur",
                                                      "contrast"}
    assert "not 2 channels" in result.details["not_run"]["jpeg"]
    assert any(f.title == "jpeg not run" for f in result.findings)
