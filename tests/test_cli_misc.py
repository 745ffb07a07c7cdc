"""CLI odds and ends: probe listing, --resume, --set options, generate without plugins."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from auditkit.cli import app


def test_probes_lists_builtins_with_their_distribution():
    res = CliRunner().invoke(app, ["probes"])
    assert res.exit_code == 0
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.strip()}
    for name in ("performance", "adversarial", "calibration", "bias", "memorization"):
        assert name in lines and "auditkit" in lines[name]


def test_resume_reuses_finished_probes(tmp_path, demo_model_file):
    runner = CliRunner()
    args = ["scan", str(demo_model_file), "--out", str(tmp_path), "--probes", "performance",
            "--budget", "fast", "--device", "cpu", "--resume"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    checkpoints = list((tmp_path / ".auditkit-checkpoint").rglob("performance.json"))
    assert len(checkpoints) == 1
    # Tamper with the checkpoint: a resumed run must serve it instead of recomputing.
    stored = json.loads(checkpoints[0].read_text())
    stored["result"]["summary"] = "served from checkpoint"
    checkpoints[0].write_text(json.dumps(stored))
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["probes"]["performance"]["summary"] == "served from checkpoint"
    # A different seed is a different audit: nothing stale is reused.
    third = runner.invoke(app, [*args, "--seed", "7"])
    assert third.exit_code == 0
    audit = json.loads((tmp_path / "audit.json").read_text())
    assert audit["probes"]["performance"]["summary"] != "served from checkpoint"


def test_generate_without_plugins_is_a_clear_bad_input():
    res = CliRunner().invoke(app, ["generate", "nosuch"])
    assert res.exit_code == 2
    assert "unknown generator" in res.output


def test_report_rerenders_from_audit_json(tmp_path, demo_model_file):
    runner = CliRunner()
    out = tmp_path / "o"
    res = runner.invoke(app, ["scan", str(demo_model_file), "--out", str(out), "--probes",
                              "performance", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    again = tmp_path / "again.html"
    res = runner.invoke(app, ["report", str(out / "audit.json"), "-o", str(again)])
    assert res.exit_code == 0
    assert again.read_text() == (out / "report.html").read_text()
    missing = runner.invoke(app, ["report", str(tmp_path / "nope.json")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_resumed_audit_gives_the_same_cross_probe_numbers(tmp_path, demo_model_file):
    """bias reads adversarial's and calibration's per-example results; a resumed run must too."""
    runner = CliRunner()

    def scan(out, probes, *extra):
        return runner.invoke(app, ["scan", str(demo_model_file), "--out", str(out), "--probes",
                                   probes, "--budget", "fast", "--device", "cpu", *extra])

    assert scan(tmp_path, "adversarial,calibration", "--resume").exit_code == 0
    assert scan(tmp_path / "fresh", "adversarial,calibration,bias").exit_code == 0
    # Adversarial and calibration come from the checkpoint; only bias runs.
    assert scan(tmp_path, "adversarial,calibration,bias", "--resume").exit_code == 0
    fresh = json.loads((tmp_path / "fresh" / "audit.json").read_text())["probes"]["bias"]
    again = json.loads((tmp_path / "audit.json").read_text())["probes"]["bias"]
    assert fresh["metrics"]["proxy_worst_slice_robust_accuracy"] is not None
    assert again["metrics"] == fresh["metrics"]
