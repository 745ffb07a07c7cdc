"""Gates through the CLI: policy met → 0, stricter → 1 naming the metric, malformed → 2."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from auditkit.cli import app


def _scan(model_file, out, *extra):
    return CliRunner().invoke(
        app,
        ["scan", str(model_file), "--out", str(out), "--probes", "performance",
         "--budget", "fast", "--device", "cpu", *extra],
    )


def test_policy_met_exits_0(tmp_path, demo_model_file):
    policy = tmp_path / "auditkit.toml"
    policy.write_text('[gates]\n"performance.accuracy" = ">= 0.90"\n')
    res = _scan(demo_model_file, tmp_path / "o", "--policy", str(policy))
    assert res.exit_code == 0, res.output
    assert "performance.accuracy" in res.output


def test_stricter_policy_exits_1_and_names_the_metric(tmp_path, demo_model_file):
    policy = tmp_path / "auditkit.toml"
    policy.write_text('[gates]\n"performance.accuracy" = ">= 0.9999"\n')
    res = _scan(demo_model_file, tmp_path / "o", "--policy", str(policy))
    assert res.exit_code == 1, res.output
    assert "gate failed: performance.accuracy" in res.output
    # Nothing computed is lost: the outputs exist and carry the failed gate.
    junit = (tmp_path / "o" / "junit.xml").read_text()
    assert "GateFailed" in junit and (tmp_path / "o" / "report.html").exists()


def test_malformed_policy_exits_2_before_any_work(tmp_path, demo_model_file):
    policy = tmp_path / "auditkit.toml"
    policy.write_text('[gates]\n"performance.acuracy" = ">= 0.9"\n')
    res = _scan(demo_model_file, tmp_path / "o", "--policy", str(policy))
    assert res.exit_code == 2
    assert "unknown metric 'acuracy'" in res.output and "performance.accuracy" in res.output
    assert "Traceback" not in res.output
    assert not (tmp_path / "o" / "audit.json").exists()


def test_policy_is_discovered_from_the_working_directory(tmp_path, demo_model_file, monkeypatch):
    (tmp_path / "pyproject.toml").write_text(
        '[tool.auditkit.gates]\n"performance.accuracy" = ">= 0.9999"\n'
    )
    monkeypatch.chdir(tmp_path)
    res = _scan(demo_model_file, tmp_path / "o")
    assert res.exit_code == 1, res.output


def _forbid_audit(monkeypatch):
    import auditkit.api

    def forbidden(*args, **kwargs):
        raise AssertionError("the audit ran before the bad input was reported")

    monkeypatch.setattr(auditkit.api, "run_audit", forbidden)


BAD_FLAGS = {
    "data": ["--data", "nosuch"],
    "train data": ["--train-data", "nosuch"],
    "policy missing": ["--policy", "nosuch.toml"],
    "out is a file": ["--out", "{model}"],
    "seed": ["--seed", "-1"],
    "input shape fractional": ["--input-shape", "1.5,8,8"],
    "input shape zero": ["--input-shape", "0,8,8"],
    "input range one number": ["--input-range", "0"],
    "input range reversed": ["--input-range", "1,0"],
    "mean wrong channels": ["--mean", "0.5,0.5"],
    "mean not numbers": ["--mean", "a,b"],
    "std zero": ["--std", "0"],
    "set malformed": ["--set", "performance"],
    "set unknown option": ["--set", "performance.x=1"],
    "set unknown probe": ["--set", "nosuch.x=1"],
    "set unselected probe": ["--set", "adversarial.eps=abc"],
    "set invalid value": ["--probes", "adversarial", "--set", "adversarial.eps=abc"],
    "device unknown": ["--device", "tpu"],
    "budget": ["--budget", "huge"],
    "probes empty": ["--probes", ","],
    "probes unknown": ["--probes", "nope"],
    "sensitive empty": ["--sensitive", ","],
    "arch module missing": ["{state_dict}", "--arch", "nosuch:thing"],
    "arch factory missing": ["{state_dict}", "--arch", "auditkit.demo:nosuch"],
}


@pytest.fixture(scope="module")
def state_dict_file(tmp_path_factory, demo_model):
    import torch

    path = tmp_path_factory.mktemp("weights") / "weights.pt"
    torch.save(demo_model.state_dict(), path)
    return path


@pytest.mark.parametrize("family", list(BAD_FLAGS))
def test_bad_flags_are_one_line_exit_2_before_the_audit(
    tmp_path, demo_model_file, state_dict_file, monkeypatch, family
):
    monkeypatch.chdir(tmp_path)
    _forbid_audit(monkeypatch)
    model = demo_model_file
    extra = [a.replace("{model}", str(demo_model_file)) for a in BAD_FLAGS[family]]
    if extra[0] == "{state_dict}":
        model, extra = state_dict_file, ["--data", "digits", *extra[1:]]
    res = _scan(model, tmp_path / "o", *extra)
    assert res.exit_code == 2, (family, res.output)
    assert "Traceback" not in res.output and "AssertionError" not in res.output
    if family != "seed":  # typer's own usage error for a value below min=0
        (line,) = res.output.strip().splitlines()
        assert line.startswith("auditkit: error: "), line
    assert not (tmp_path / "o" / "audit.json").exists()


@pytest.mark.parametrize(
    "toml, needle",
    [
        ("gates = 5\n", "[gates] must be a table"),
        ('gates = ["a"]\n', "[gates] must be a table"),
        ("gates = []\n", "[gates] must be a table"),
        ('checks = "adversarial"\n', "[checks] must be a table"),
    ],
)
def test_policy_sections_that_are_not_tables_are_exit_2(
    tmp_path, demo_model_file, monkeypatch, toml, needle
):
    _forbid_audit(monkeypatch)
    policy = tmp_path / "auditkit.toml"
    policy.write_text(toml)
    res = _scan(demo_model_file, tmp_path / "o", "--policy", str(policy))
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output


@pytest.mark.parametrize("name", ["auditkit.toml", "pyproject.toml"])
def test_malformed_policy_file_in_the_working_directory_fails_closed(
    tmp_path, demo_model_file, monkeypatch, name
):
    """A broken pyproject.toml must not silently drop the CI gate it carries."""
    (tmp_path / name).write_text('[tool.auditkit.gates]\n"performance.accuracy" = ">= 0.9999"\n[broken\n')
    monkeypatch.chdir(tmp_path)
    _forbid_audit(monkeypatch)
    res = _scan(demo_model_file, tmp_path / "o")
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert name in line and "not valid TOML" in line


def test_gate_on_a_probe_not_selected_is_exit_2_before_the_audit(
    tmp_path, demo_model_file, monkeypatch
):
    policy = tmp_path / "adv.toml"
    policy.write_text('[gates]\n"adversarial.robust_accuracy" = ">= 0.3"\n')
    _forbid_audit(monkeypatch)
    res = _scan(demo_model_file, tmp_path / "o", "--policy", str(policy))
    assert res.exit_code == 2, res.output
    assert "names probe 'adversarial', which --probes does not select" in res.output
    assert "add it to --probes or remove the gate" in res.output
    checks = tmp_path / "checks.toml"
    checks.write_text('[checks]\n"adversarial" = "pass"\n')
    res = _scan(demo_model_file, tmp_path / "o", "--policy", str(checks))
    assert res.exit_code == 2 and "check rule 'adversarial'" in res.output


def test_verdict_says_when_no_policy_was_applied(tmp_path, demo_model_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = _scan(demo_model_file, tmp_path / "o")
    assert res.exit_code == 0, res.output
    assert "auditkit verdict: passed (no policy: no gates evaluated" in res.output
    policy = tmp_path / "auditkit.toml"
    policy.write_text('[gates]\n"performance.accuracy" = ">= 0.9"\n')
    res = _scan(demo_model_file, tmp_path / "o")
    assert "auditkit verdict: passed (1 of 1 gates hold" in res.output
    assert "no policy" not in res.output
