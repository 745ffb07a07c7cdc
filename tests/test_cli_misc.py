"""CLI odds and ends: probe listing, --resume, --set options, generate without plugins."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from auditkit.cli import app


def test_probes_lists_builtins_with_their_distribution():
    res = CliRunner().invoke(app, ["probes"])
    assert res.exit_code == 0
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.strip()}
    for name in ("performance", "adversarial", "calibration", "corruptions", "bias", "memorization"):
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


def test_probes_says_what_each_budget_level_means():
    """The docs (docs/cli.md) send readers to `auditkit probes` for what each budget does."""
    from auditkit.registry import discover_probes

    res = CliRunner().invoke(app, ["probes"])
    assert res.exit_code == 0
    for name, entry in discover_probes().items():
        levels = entry.obj.budget_levels
        assert set(levels) == {"fast", "standard", "thorough"}, name
        for level, meaning in levels.items():
            assert f"    {level:9} {meaning}" in res.output, (name, level)


def test_probes_verbose_lists_metrics_with_their_better_side():
    res = CliRunner().invoke(app, ["probes", "--verbose"])
    assert res.exit_code == 0
    assert "calibration.ece (lower is better)" in res.output
    assert "performance.accuracy (higher is better)" in res.output
    assert "--set adversarial.eps=" in res.output


def test_generate_hint_points_at_the_repository_plugins_not_a_package_name(monkeypatch):
    # The hint is for a checkout with no generator installed (make install adds plugins/nas).
    monkeypatch.setattr("auditkit.registry.discover_generators", lambda: {})
    res = CliRunner().invoke(app, ["generate", "nosuch"])
    assert res.exit_code == 2
    assert "plugins/" in res.output
    assert "pip install auditkit-" not in res.output


def test_debug_is_accepted_after_every_subcommand(tmp_path):
    runner = CliRunner()
    missing = str(tmp_path / "nope.json")
    for args in (["report", missing], ["diff", missing, missing], ["probes"],
                 ["generate", "nosuch"], ["scan", str(tmp_path / "nope.pt2")]):
        res = runner.invoke(app, [*args, "--debug"])
        assert "No such option" not in res.output, (args, res.output)
    res = runner.invoke(app, ["report", missing, "--debug"])
    assert res.exit_code == 2 and "no such file" in res.output


def test_keep_sensitive_features_flag_reaches_the_table_loader(tmp_path):
    import numpy as np
    import torch

    from auditkit.loading import save_model

    rng = np.random.default_rng(1)
    rows = [(rng.normal(), int(rng.integers(0, 2))) for _ in range(80)]
    table = tmp_path / "t.csv"
    table.write_text("x,group,y\n" + "".join(f"{x},{g},{int(x + 2 * g > 1)}\n" for x, g in rows))
    net = torch.nn.Linear(2, 2)
    with torch.no_grad():
        net.weight.copy_(torch.tensor([[-0.5, -1.0], [0.5, 1.0]]))
        net.bias.copy_(torch.tensor([0.5, -0.5]))
    model = save_model(net, tmp_path / "m.pt2", example_input=torch.zeros(2, 2))
    args = ["scan", str(model), "--data", str(table), "--target", "y", "--sensitive", "group",
            "--probes", "performance", "--device", "cpu", "--out", str(tmp_path / "o")]
    runner = CliRunner()
    kept = runner.invoke(app, [*args, "--keep-sensitive-features"])
    assert kept.exit_code == 0, kept.output
    audit = json.loads((tmp_path / "o" / "audit.json").read_text())
    assert audit["probes"]["performance"]["metrics"]["accuracy"] == 1.0  # the planted rule
    dropped = runner.invoke(app, args)
    assert dropped.exit_code == 2 and "Traceback" not in dropped.output


def test_a_plain_scan_leaves_checkpoints_that_only_resume_reads(tmp_path, demo_model_file):
    """An interrupted scan without --resume must still be resumable; a plain rerun recomputes."""
    runner = CliRunner()
    args = ["scan", str(demo_model_file), "--out", str(tmp_path), "--probes", "performance",
            "--budget", "fast", "--device", "cpu"]
    assert runner.invoke(app, args).exit_code == 0
    (checkpoint,) = (tmp_path / ".auditkit-checkpoint").rglob("performance.json")
    stored = json.loads(checkpoint.read_text())
    stored["result"]["summary"] = "served from checkpoint"
    checkpoint.write_text(json.dumps(stored))

    def summary() -> str:
        return json.loads((tmp_path / "audit.json").read_text())["probes"]["performance"]["summary"]

    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    assert summary() == "served from checkpoint"
    checkpoint.write_text(json.dumps(stored))
    assert runner.invoke(app, args).exit_code == 0
    assert summary() != "served from checkpoint"
