"""Above chance on imbalanced data is judged on balanced accuracy (and AUROC for two classes),
not on plain accuracy against the majority-class rate."""

from __future__ import annotations

import torch
from torch import nn

from auditkit.api import scan


def _balanced_model_on_a_90_10_table(n=1000, seed=0):
    """One feature; class 1 (10 %) sits 1.05 standard deviations higher (AUROC ≈ 0.77 in
    theory, ≈ 0.7 here). The model thresholds halfway, weighting both classes equally: it
    trades majority-class hits for minority-class ones, so plain accuracy (≈ 0.65) is far
    below the 90 % a constant answer gets."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.rand(n, generator=g) < 0.1).long()
    x = (torch.randn(n, 1, generator=g) + 0.75 * y.view(-1, 1).float()).float()
    net = nn.Linear(1, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-1.0], [1.0]]))
        net.bias.copy_(torch.tensor([0.375, -0.375]))
    return net.eval(), x, y


def test_a_class_balanced_model_on_a_90_10_table_is_not_failed():
    net, x, y = _balanced_model_on_a_90_10_table()
    result = scan(net, (x, y), probes=["performance"], budget="fast", device="cpu")
    probe = result.probes["performance"]
    check = next(c for c in probe.checks if c.name == "above_chance")
    assert probe.metrics["accuracy"] < check.values["majority"]  # plain accuracy: "at chance"
    assert 0.6 < check.values["auroc"] < 0.8
    assert check.values["balanced_accuracy"] > 0.6
    assert check.status == "passed" and probe.status != "failed", check.detail
    assert "balanced accuracy" in check.detail and "AUROC" in check.detail
    assert "plain accuracy" in check.detail  # reported beside, not judged
    assert result.verdict == "passed"


def test_a_model_that_guesses_still_fails():
    net, x, y = _balanced_model_on_a_90_10_table()
    with torch.no_grad():
        net.weight.zero_()  # constant answer: class 0 for everyone
    result = scan(net, (x, y), probes=["performance"], budget="fast", device="cpu")
    assert result.probes["performance"].status == "failed"
