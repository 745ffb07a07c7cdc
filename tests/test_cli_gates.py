"""Gates through the CLI: policy met → 0, stricter → 1 naming the metric, malformed → 2."""

from __future__ import annotations

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


def test_bad_flags_are_one_line_exit_2(tmp_path, demo_model_file):
    for extra in (["--budget", "huge"], ["--probes", "nope"], ["--set", "performance.x=1"],
                  ["--input-range", "0"]):
        res = _scan(demo_model_file, tmp_path / "o", *extra)
        assert res.exit_code == 2, (extra, res.output)
        assert "Traceback" not in res.output
