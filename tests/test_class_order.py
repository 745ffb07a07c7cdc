"""A model whose outputs are in another order than the data's classes: an image folder sorts its
classes by name, a model trained elsewhere may not. With the model's class names auditkit
re-numbers the labels; without them the performance probe says the predictions match another
order instead of calling a perfect model "learned nothing"."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import auditkit
from auditkit.adapters.base import Diagnostics
from auditkit.data.checks import align_class_order
from auditkit.data.core import AuditData
from auditkit.loading import ModelMetadata
from auditkit.probes.performance.judge import judge
from auditkit.probes.performance.measure import PerformanceMeasurement

ORDER = ["red", "green", "blue"]  # the model's outputs: the colour channel that dominates


def _colour_model() -> nn.Module:
    """Output i = 10 × the mean of colour channel i: right on every image below, no training."""
    model = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, 3))
    with torch.no_grad():
        model[2].weight.copy_(10 * torch.eye(3))
        model[2].bias.zero_()
    return model.eval()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("colours")
    rng = np.random.default_rng(0)
    for channel, name in enumerate(ORDER):
        (root / name).mkdir()
        for i in range(40):
            image = rng.uniform(0.0, 0.3, (8, 8, 3))
            image[..., channel] += 0.6
            Image.fromarray((image * 255).astype("uint8")).save(root / name / f"{i}.png")
    return root


def _scan(folder, metadata=None):
    return auditkit.scan(_colour_model(), str(folder), probes=["performance"], budget="fast",
                         device="cpu", metadata=metadata).probes["performance"]


def test_without_class_names_the_other_order_is_named_not_called_chance(folder):
    probe = _scan(folder, ModelMetadata(input_shape=(3, 8, 8), input_range=(0.0, 1.0)))
    assert probe.metrics["accuracy"] == pytest.approx(1 / 3)
    first = probe.findings[0]
    assert first.title.startswith("the predictions match the labels under another class order")
    assert "100.0%" in first.title and "['red', 'green', 'blue']" in first.action
    check = next(c for c in probe.checks if c.name == "above_chance")
    assert "right under another order" in check.detail and "learned little" not in check.detail


def test_with_the_models_class_names_the_labels_follow_its_order(folder):
    meta = ModelMetadata(input_shape=(3, 8, 8), input_range=(0.0, 1.0), class_names=ORDER)
    result = auditkit.scan(_colour_model(), str(folder), probes=["performance"], budget="fast",
                           device="cpu", metadata=meta)
    assert result.probes["performance"].metrics["accuracy"] == 1.0
    assert result.data["class_names"] == ORDER
    assert "re-numbered to the model's class order" in result.data["description"]


def test_align_moves_labels_only_for_the_same_classes_in_another_order():
    data = AuditData(name="d", x=torch.zeros(3, 1), y=torch.tensor([0, 1, 2]),
                     class_names=["blue", "green", "red"])
    assert align_class_order(data, ["red", "green", "blue"]) is not None
    assert data.y.tolist() == [2, 1, 0] and data.class_names == ["red", "green", "blue"]
    other = AuditData(name="d", x=torch.zeros(2, 1), y=torch.tensor([0, 1]),
                      class_names=["0", "1"])
    assert align_class_order(other, ["cat", "dog"]) is None and other.y.tolist() == [0, 1]


def test_a_weak_model_is_not_mistaken_for_a_reordered_one():
    """Confusions spread over every class: no order explains them, so no finding."""
    matrix = torch.tensor([[14, 10, 9], [11, 12, 10], [9, 11, 14]])
    m = PerformanceMeasurement(accuracy=40 / 100, matrix=matrix, class_names=["a", "b", "c"],
                               diagnostics=Diagnostics(), supports_gradients=True)
    assert not any("another class order" in f.title for f in judge(m).findings)
