"""``auditkit diff`` tells seed noise from a regression: one model scanned with seeds 0 and 1
exits 0; the same model with a planted 10-point accuracy drop exits 1. The noise is printed
beside each change."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.diff import compare
from auditkit.noise import standard_error

PROBES = ["performance", "adversarial", "calibration", "bias"]


class _ForgetsZeros(nn.Module):
    """The demo CNN, but every 0 is answered as a 6: about a tenth of the digits go wrong."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        logits = self.net(x)
        zero = logits.argmax(1) == 0
        swapped = logits.clone()
        swapped[:, 6] = torch.where(zero, logits[:, 0] + 1.0, logits[:, 6])
        return swapped




@pytest.fixture(scope="module")
def audits(demo_model, digits_data, tmp_path_factory, digits_adapter):
    folder = tmp_path_factory.mktemp("diff-noise")
    paths = {}
    for name, net, seed in (
        ("seed0", demo_model, 0),
        ("seed1", demo_model, 1),
        ("dropped", _ForgetsZeros(demo_model), 1),
    ):
        result = auditkit.scan(
            digits_adapter(net), digits_data, probes=PROBES, budget="fast", seed=seed, device="cpu"
        )
        paths[name] = folder / f"{name}.json"
        paths[name].write_text(result.to_json())
    return paths


def _diff(base, new):
    return CliRunner().invoke(app, ["diff", str(base), str(new)])


def test_the_same_model_with_another_seed_is_not_a_regression(audits):
    res = _diff(audits["seed0"], audits["seed1"])
    assert res.exit_code == 0, res.output
    assert "0 regressions" in res.output


def test_a_planted_ten_point_accuracy_drop_is_a_regression_with_its_noise_beside_it(audits):
    res = _diff(audits["seed0"], audits["dropped"])
    assert res.exit_code == 1, res.output
    row = next(line for line in res.output.splitlines() if "performance.accuracy" in line)
    assert "regression" in row and "binomial" in row, row
    drop = compare(
        auditkit.AuditResult.load(audits["seed0"]), auditkit.AuditResult.load(audits["dropped"])
    )
    change = next(c for c in drop.metrics if c.metric == "performance.accuracy")
    assert change.delta < -0.07 and change.noise is not None and -change.delta > change.noise


def test_calibration_records_the_noise_of_ece_and_mce(audits):
    from auditkit.results import AuditResult

    audit = AuditResult.from_json(audits["seed0"].read_text())
    for metric in ("calibration.ece", "calibration.mce"):
        se, how = standard_error(audit, metric)
        assert se is not None and se > 0 and how == "bootstrap over examples"
