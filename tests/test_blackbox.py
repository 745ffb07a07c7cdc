"""Black-box predict functions: scores or labels only, attacked without gradients."""

from __future__ import annotations

import numpy as np
import torch

import auditkit
from auditkit.adapters import CallableAdapter
from auditkit.attacks import HopSkipJump, QueryModel, Square


def _labels_only(demo_adapter):
    def predict(batch: np.ndarray) -> np.ndarray:
        return demo_adapter.predict_logits(torch.from_numpy(batch)).argmax(1).numpy()

    return predict


def test_a_function_returning_labels_is_a_labels_only_black_box(demo_adapter, digits_data):
    adapter = CallableAdapter(_labels_only(demo_adapter), input_shape=(1, 8, 8), num_classes=10,
                              input_range=(0.0, 1.0))
    diag = adapter.diagnose(digits_data.x[:32])
    assert diag.output_kind == "labels" and not adapter.supports_gradients
    probs = adapter.predict_logits(digits_data.x[:32]).exp()
    assert torch.equal(probs.argmax(1), demo_adapter.predict_logits(digits_data.x[:32]).argmax(1))
    assert torch.allclose(probs.sum(1), torch.ones(32), atol=1e-5)
    result = auditkit.scan(adapter, digits_data, probes=["performance"], budget="fast")
    reference = auditkit.scan(demo_adapter, digits_data, probes=["performance"], budget="fast")
    assert (result.probes["performance"].metrics["accuracy"]
            == reference.probes["performance"].metrics["accuracy"])


def test_both_gradient_free_attacks_break_a_black_box_function(demo_adapter, digits_data):
    scores = CallableAdapter(
        lambda b: demo_adapter.predict_logits(torch.from_numpy(b)).softmax(1).numpy(),
        input_shape=(1, 8, 8), num_classes=10, input_range=(0.0, 1.0))
    labels = CallableAdapter(_labels_only(demo_adapter), input_shape=(1, 8, 8), num_classes=10,
                             input_range=(0.0, 1.0))
    x, y = digits_data.x[:30], digits_data.y[:30]
    keep = demo_adapter.predict_logits(x).argmax(1) == y
    x, y = x[keep], y[keep]
    square = Square(QueryModel(scores.predict_logits), eps=0.15, queries=200,
                    generator=torch.Generator().manual_seed(0)).perturb(x, y)
    hsj = HopSkipJump(QueryModel(labels.predict_logits), eps=1.0, queries=300,
                      generator=torch.Generator().manual_seed(0)).perturb(x, y)
    assert float((square.margin <= 0).float().mean()) < 0.7
    assert float((hsj.margin <= 0).float().mean()) < 0.8
