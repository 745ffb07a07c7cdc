"""The Python API: in-memory models and data, the same numbers as the CLI on the saved file."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.demo import digits_metadata
from auditkit.testing import AuditFailed, assert_audit

PROBES = ["performance"]
BATTERY = ["performance", "adversarial", "calibration", "memorization", "bias"]


def test_in_memory_model_matches_cli_on_the_saved_file(tmp_path, demo_model, demo_model_file):
    """The whole battery: the exported file and the live module must audit identically."""
    api = auditkit.scan(
        demo_model, "digits", metadata=digits_metadata(), probes=BATTERY, budget="fast", seed=3,
        device="cpu",
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["scan", str(demo_model_file), "--out", str(out), "--probes", ",".join(BATTERY),
              "--budget", "fast", "--seed", "3", "--device", "cpu"],
    )
    assert res.exit_code == 0, res.output
    cli = json.loads((out / "audit.json").read_text())
    cli_metrics = {f"{p}.{m}": v for p, r in cli["probes"].items() for m, v in r["metrics"].items()}
    assert set(api.metrics) == set(cli_metrics)
    assert all(p.status != "error" for p in api.probes.values())
    for key, value in api.metrics.items():
        if value is None:
            assert cli_metrics[key] is None, key
        else:
            assert cli_metrics[key] == pytest.approx(value, abs=1e-6), key


def test_tensors_and_dataloader_inputs_give_the_same_audit(demo_model, digits_data):
    meta = digits_metadata()
    from_tensors = auditkit.scan(demo_model, (digits_data.x, digits_data.y), metadata=meta,
                                 probes=PROBES, device="cpu")
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(digits_data.x, digits_data.y), batch_size=100
    )
    from_loader = auditkit.scan(demo_model, loader, metadata=meta, probes=PROBES, device="cpu")
    assert from_tensors.metrics == from_loader.metrics
    assert from_tensors.data["fingerprint"] == from_loader.data["fingerprint"]


def test_result_object_answers_questions_and_saves(tmp_path, demo_model):
    result = auditkit.scan(
        demo_model, "digits", metadata=digits_metadata(), probes=PROBES, device="cpu",
        policy={"gates": {"performance.accuracy": ">= 0.999"}},
    )
    assert not result.passed
    assert [g.metric for g in result.failures] == ["performance.accuracy"]
    assert json.loads(result.to_json())["verdict"] == "failed"
    paths = result.save(tmp_path)
    assert sorted(p.name for p in paths.values()) == ["audit.json", "junit.xml", "report.html", "summary.md"]


def test_assert_audit_lists_failed_gates_with_values(demo_model):
    meta = digits_metadata()
    good = auditkit.scan(demo_model, "digits", metadata=meta, probes=PROBES, device="cpu",
                         policy={"gates": {"performance.accuracy": ">= 0.9"}})
    assert_audit(good)
    bad = auditkit.scan(demo_model, "digits", metadata=meta, probes=PROBES, device="cpu",
                        policy={"gates": {"performance.accuracy": ">= 0.999"}})
    with pytest.raises(AuditFailed) as info:
        assert_audit(bad)
    message = str(info.value)
    assert "performance.accuracy" in message and ">= 0.999" in message
    assert f"{bad.metrics['performance.accuracy']:.4g}"[:4] in message


def test_callable_black_box_runs_with_gradient_probes_skipped(digits_data):
    weights = torch.randn(64, 10, generator=torch.Generator().manual_seed(0))

    def predict_proba(batch):
        logits = torch.as_tensor(batch).reshape(len(batch), -1) @ weights
        return torch.softmax(logits, -1).numpy()

    result = auditkit.scan(predict_proba, digits_data, probes=PROBES)
    assert result.probes["performance"].status in ("passed", "warned")
    assert result.model["format"] == "callable"


def test_scan_leaves_the_callers_random_state_alone(demo_model):
    import random

    import numpy as np

    def draws():
        return (torch.rand(3).tolist(), np.random.rand(3).tolist(), random.random())

    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    expected = draws()
    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    auditkit.scan(demo_model, "digits", metadata=digits_metadata(),
                  probes=["performance", "calibration"], budget="fast", device="cpu")
    assert draws() == expected
