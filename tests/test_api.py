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


# Memorization retrains a copy for most of this test's 30-45 s: the default suite runs the
# rest of the battery, `make test-slow` the whole of it.
@pytest.mark.parametrize("probes", [
    [p for p in BATTERY if p != "memorization"],
    pytest.param(BATTERY, marks=pytest.mark.slow, id="with-memorization"),
])
def test_in_memory_model_matches_cli_on_the_saved_file(tmp_path, demo_model, demo_model_file,
                                                       probes):
    """The battery: the exported file and the live module must audit identically."""
    api = auditkit.scan(
        demo_model, "digits", metadata=digits_metadata(), probes=probes, budget="fast", seed=3,
        device="cpu",
    )
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app, ["scan", str(demo_model_file), "--out", str(out), "--probes", ",".join(probes),
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
    paths = auditkit.write_outputs(result, tmp_path)
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
    # Random weights: the performance probe runs on the black box and finds it at chance.
    performance = result.probes["performance"]
    assert performance.status == "failed"
    assert next(c for c in performance.checks if c.name == "above_chance").status == "failed"
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


def _forbid_audit(monkeypatch):
    import auditkit.api

    def forbidden(*args, **kwargs):
        raise AssertionError("the audit ran before the bad input was reported")

    monkeypatch.setattr(auditkit.api, "run_audit", forbidden)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"policy": {"gates": {"performance.acuracy": ">= 0.9"}}}, "unknown metric 'acuracy'"),
        ({"policy": {"gates": {"adversarial.robust_accuracy": ">= 0.3"}}},
         "which --probes does not select"),
        ({"options": {"adversarial": {"eps": 0.1}}}, "is not selected by --probes"),
        ({"options": {"performance": {"nosuch": 1}}}, "unknown option"),
        ({"seed": -1}, "--seed"),
        ({"probes": []}, "no probe names"),
        ({"device": "tpu"}, "--device tpu"),
    ],
)
def test_scan_rejects_bad_requests_before_any_work(demo_model, monkeypatch, kwargs, needle):
    """A typo in a policy used to raise after the whole audit, and the result was lost."""
    _forbid_audit(monkeypatch)
    call = {"probes": PROBES, **kwargs}
    with pytest.raises(auditkit.AuditkitInputError) as info:
        auditkit.scan(demo_model, "digits", metadata=digits_metadata(), **call)
    assert needle in str(info.value)


def test_policy_may_gate_a_probe_passed_in_directly(demo_model):
    """A Probe class handed to scan() declares its metrics; a policy can name them."""
    from auditkit.probes.performance import PerformanceProbe

    class Local(PerformanceProbe):
        name = "local"

    result = auditkit.scan(demo_model, "digits", metadata=digits_metadata(), probes=[Local],
                           device="cpu", policy={"gates": {"local.accuracy": ">= 0.9"}})
    assert [(g.metric, g.passed) for g in result.gates] == [("local.accuracy", True)]


def test_mean_std_that_do_not_fit_the_channels_are_bad_input(demo_model, monkeypatch):
    import dataclasses

    _forbid_audit(monkeypatch)
    meta = digits_metadata()
    for override, needle in (({"mean": (0.5, 0.5)}, "--mean has 2 values"),
                             ({"std": (0.0,)}, "every std must be positive")):
        bad = dataclasses.replace(meta, **override)
        with pytest.raises(auditkit.AuditkitInputError, match=needle):
            auditkit.scan(demo_model, "digits", metadata=bad, probes=PROBES, device="cpu")


def test_keep_sensitive_features_feeds_the_group_column_to_the_model(tmp_path):
    """A model trained on (x1, x2, group) audits with the group kept as an input."""
    import numpy as np

    rng = np.random.default_rng(0)
    n = 120
    x1, x2, group = rng.normal(size=n), rng.normal(size=n), rng.integers(0, 2, size=n)
    y = ((x1 + 2.0 * group) > 1.0).astype(int)
    (tmp_path / "t.csv").write_text(
        "x1,x2,group,y\n" + "".join(f"{a},{b},{g},{t}\n" for a, b, g, t in zip(x1, x2, group, y, strict=True))
    )
    net = torch.nn.Linear(3, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-1.0, 0.0, -2.0], [1.0, 0.0, 2.0]]) / 2)
        net.bias.copy_(torch.tensor([0.5, -0.5]))
    kwargs = {"target": "y", "sensitive": ["group"], "probes": PROBES, "device": "cpu"}
    result = auditkit.scan(net, tmp_path / "t.csv", keep_sensitive_features=True, **kwargs)
    features = torch.tensor(np.stack([x1, x2, group], 1), dtype=torch.float32)
    expected = float((net(features).argmax(1).numpy() == y).mean())
    assert expected == 1.0  # the planted rule, so dropping the column would show
    assert result.metrics["performance.accuracy"] == pytest.approx(expected)
    with pytest.raises(auditkit.AuditkitInputError):
        auditkit.scan(net, tmp_path / "t.csv", **kwargs)  # the group column left out


def test_a_model_file_that_takes_the_sensitive_columns_is_told_how_to_keep_them(tmp_path):
    """The metadata's shape check (before any forward pass) gives the same hint as the pipeline."""
    csv = tmp_path / "t.csv"
    csv.write_text("a,b,sex,y\n" + "".join(f"{i},{i % 3},{i % 2},{i % 2}\n" for i in range(40)))
    model = torch.nn.Linear(3, 2)
    with pytest.raises(auditkit.AuditkitInputError) as excinfo:
        auditkit.scan(model, csv, target="y", sensitive=["sex"], probes=PROBES, device="cpu",
                      metadata=auditkit.ModelMetadata(input_shape=(3,)))
    assert "pass --keep-sensitive-features" in str(excinfo.value)
    result = auditkit.scan(model, csv, target="y", sensitive=["sex"], probes=PROBES,
                           device="cpu", metadata=auditkit.ModelMetadata(input_shape=(3,)),
                           keep_sensitive_features=True)
    assert result.data["input_shape"] == [3]
