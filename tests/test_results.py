"""Results are plain data: JSON round trips, numbers stay numbers, NaN becomes null, no pickle."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from auditkit.results import (
    SCHEMA_VERSION,
    AuditResult,
    Check,
    Finding,
    GateResult,
    ProbeResult,
    compute_verdict,
    jsonable,
)


def _probe(**overrides) -> ProbeResult:
    fields = dict(
        name="calibration",
        status="warned",
        metrics={"ece": 0.0625, "brier": 0.125, "temperature": 1.5},
        checks=[Check("bins_populated", "passed", "15 of 15 bins", {"bins": 15}),
                Check("fit_converged", "warned", "3 restarts", {"restarts": 3, "ok": False})],
        summary="over-confident by 6 points",
        headline="ece",
        findings=[Finding("warning", "over-confident", why="ECE 6%", action="temperature scale")],
        figures=[{"kind": "line", "title": "t", "x_label": "x", "y_label": "y",
                  "series": [{"name": "s", "x": [0.0, 0.5], "y": [1.0, 0.25]}]},
                 {"kind": "matrix", "title": "m", "labels": ["a", "b"], "values": [[3, 1], [0, 4]],
                  "x_label": "p", "y_label": "t"}],
        details={"bins": [{"lower": 0.0, "upper": 0.5, "count": 7}], "note": "x"},
        seconds=1.25,
    )
    fields.update(overrides)
    return ProbeResult(**fields)


def _audit(**overrides) -> AuditResult:
    fields = dict(
        model={"path": "m.pt2", "sha256": "ab" * 32, "format": "torch.export", "num_classes": 10},
        data={"name": "digits", "n": 540, "fingerprint": "cd" * 32},
        environment={"torch": torch.__version__, "device": "cpu", "seed": 0},
        probes={"calibration": _probe(),
                "bias": ProbeResult(name="bias", status="skipped", skip_reason="no groups")},
        gates=[GateResult("calibration.ece", "<= 0.05", 0.0625, False, "fail", "too high")],
        verdict="failed",
        settings={"budget": "fast", "seed": 0, "probes": ["calibration", "bias"]},
        started_at="2026-01-01T00:00:00+00:00",
        duration_seconds=3.5,
        auditkit_version="0.1.0",
    )
    fields.update(overrides)
    return AuditResult(**fields)


def test_json_round_trip_is_lossless():
    result = _audit()
    text = result.to_json()
    back = AuditResult.from_json(text)
    assert back == result
    assert back.to_json() == text
    assert back.probes["calibration"].checks[1].values == {"restarts": 3, "ok": False}
    assert back.failures[0].metric == "calibration.ece"


def test_audit_json_has_the_contract_keys():
    doc = json.loads(_audit().to_json())
    for key in ("schema_version", "auditkit_version", "model", "data", "environment", "probes",
                "gates", "verdict"):
        assert key in doc, key
    assert doc["schema_version"] == SCHEMA_VERSION
    probe = doc["probes"]["calibration"]
    assert {"status", "metrics", "checks", "seconds"} <= set(probe)
    assert set(probe["checks"][0]) >= {"name", "status", "detail"}
    assert set(doc["gates"][0]) >= {"metric", "rule", "value", "passed"}


def test_numbers_stay_numbers_whatever_their_origin():
    metrics = {
        "python_float": 0.5,
        "numpy_float32": np.float32(0.25),
        "numpy_float64": np.float64(0.125),
        "numpy_int": np.int64(7),
        "torch_scalar": torch.tensor(0.75),
        "torch_int": torch.tensor(3),
        "numpy_bool": np.bool_(True),
    }
    doc = json.loads(AuditResult(model={}, data={}, environment={},
                                 probes={"p": _probe(metrics=metrics)}).to_json())
    stored = doc["probes"]["p"]["metrics"]
    assert stored == {"python_float": 0.5, "numpy_float32": 0.25, "numpy_float64": 0.125,
                      "numpy_int": 7, "torch_scalar": 0.75, "torch_int": 3, "numpy_bool": True}
    for key in ("python_float", "numpy_float32", "numpy_float64", "torch_scalar"):
        assert type(stored[key]) is float, key
    assert type(stored["numpy_int"]) is int and type(stored["numpy_bool"]) is bool
    arrays = jsonable({"a": np.arange(3), "t": torch.tensor([[1.5, 2.0]]), "tuple": (1, 2)})
    assert arrays == {"a": [0, 1, 2], "t": [[1.5, 2.0]], "tuple": [1, 2]}


def test_nan_and_infinity_become_null_and_the_text_is_strict_json():
    result = _audit(probes={"p": _probe(metrics={"nan": float("nan"), "inf": float("inf"),
                                                 "np_nan": np.float64("nan"), "ok": 1.0},
                                        details={"curve": [1.0, float("-inf"), math.nan]})})
    text = result.to_json()
    assert "NaN" not in text and "Infinity" not in text
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-strict JSON {c}"))
    assert doc["probes"]["p"]["metrics"] == {"nan": None, "inf": None, "np_nan": None, "ok": 1.0}
    assert doc["probes"]["p"]["details"]["curve"] == [1.0, None, None]
    back = AuditResult.from_json(text)
    assert back.probes["p"].metrics["nan"] is None
    assert AuditResult.from_json(back.to_json()) == back  # stable after the first trip


def test_no_pickle_anything_that_is_not_data_is_refused():
    class Opaque:
        pass

    with pytest.raises(TypeError, match="Opaque"):
        jsonable({"x": Opaque()})
    with pytest.raises(TypeError):
        _audit(probes={"p": _probe(details={"model": Opaque()})}).to_json()


def test_load_reads_a_saved_audit_json(tmp_path):
    result = _audit()
    (tmp_path / "audit.json").write_text(result.to_json())
    assert AuditResult.load(tmp_path / "audit.json") == result


def test_result_questions():
    result = _audit()
    assert result.metrics["calibration.ece"] == 0.0625
    assert "bias.anything" not in result.metrics
    assert not result.passed and [g.metric for g in result.failures] == ["calibration.ece"]
    errored = _audit(probes={"p": ProbeResult(name="p", status="error", error="boom")}, gates=[])
    assert errored.errors == {"p": "boom"}


def test_verdict_failed_gate_beats_error_beats_passed():
    ok = {"p": ProbeResult(name="p", status="passed")}
    broken = {**ok, "q": ProbeResult(name="q", status="error", error="x")}
    failed_gate = [GateResult("p.m", ">= 1", 0.5, False)]
    warn_gate = [GateResult("p.m", ">= 1", 0.5, False, severity="warn")]
    assert compute_verdict(ok, []) == "passed"
    assert compute_verdict(ok, warn_gate) == "passed"
    assert compute_verdict(broken, []) == "error"
    assert compute_verdict(broken, failed_gate) == "failed"
    assert _audit(gates=[]).with_gates(failed_gate).verdict == "failed"
