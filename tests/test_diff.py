"""`auditkit diff`: direction-aware regressions beyond tolerance."""

from __future__ import annotations

import json
import re

import pytest
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.diff import diff_results, render_diff_markdown
from auditkit.results import AuditResult, ProbeResult


def _audit(**metrics: float) -> AuditResult:
    return AuditResult(
        model={}, data={}, environment={},
        probes={"performance": ProbeResult(name="performance", status="passed", metrics=metrics)},
    )


def test_injected_regression_is_detected_and_small_changes_ignored():
    base = _audit(accuracy=0.95, balanced_accuracy=0.94)
    new = _audit(accuracy=0.90, balanced_accuracy=0.935)
    changes = {c.metric: c for c in diff_results(base, new, tolerance=0.01)}
    assert changes["performance.accuracy"].regression
    assert not changes["performance.balanced_accuracy"].regression  # −0.005, within tolerance


def test_improvements_are_not_regressions_and_per_metric_tolerance_applies():
    base, new = _audit(accuracy=0.90), _audit(accuracy=0.95)
    (change,) = diff_results(base, new)
    assert change.improvement and not change.regression
    worse = _audit(accuracy=0.88)
    assert diff_results(base, worse, tolerances={"performance.accuracy": 0.05})[0].regression is False
    assert diff_results(base, worse, tolerance=0.01)[0].regression is True


def test_a_vanished_metric_is_a_regression():
    (change,) = diff_results(_audit(accuracy=0.9), _audit())
    assert change.regression and change.new is None


def test_cli_diff_exit_codes_and_markdown(tmp_path):
    base, same, worse = tmp_path / "base.json", tmp_path / "same.json", tmp_path / "worse.json"
    base.write_text(_audit(accuracy=0.95).to_json())
    same.write_text(_audit(accuracy=0.948).to_json())
    worse.write_text(_audit(accuracy=0.80).to_json())
    runner = CliRunner()
    ok = runner.invoke(app, ["diff", str(base), str(same)])
    assert ok.exit_code == 0, ok.output
    md = tmp_path / "diff.md"
    bad = runner.invoke(app, ["diff", str(base), str(worse), "--markdown", str(md)])
    assert bad.exit_code == 1
    assert "performance.accuracy" in md.read_text() and "regression" in md.read_text()
    broken = tmp_path / "broken.json"
    broken.write_text(json.dumps({"probes": "nope"}))
    res = runner.invoke(app, ["diff", str(base), str(broken)])
    assert res.exit_code == 2


def test_markdown_lists_only_changes_by_default():
    changes = diff_results(_audit(accuracy=0.9, balanced_accuracy=0.9),
                           _audit(accuracy=0.8, balanced_accuracy=0.9))
    text = render_diff_markdown(changes)
    assert "performance.accuracy" in text and "balanced_accuracy" not in text


def _audit_with(status="passed", checks=(), probe="performance", metric_info=None, **metrics):
    from auditkit.results import Check

    return AuditResult(
        model={}, data={}, environment={},
        probes={probe: ProbeResult(
            name=probe, status=status, metrics=metrics,
            checks=[Check(name, st) for name, st in checks], metric_info=metric_info or {},
        )},
    )


def _cli_diff(tmp_path, base: AuditResult, new: AuditResult, *extra):
    (tmp_path / "b.json").write_text(base.to_json())
    (tmp_path / "n.json").write_text(new.to_json())
    md = tmp_path / "d.md"
    res = CliRunner().invoke(
        app, ["diff", str(tmp_path / "b.json"), str(tmp_path / "n.json"), "--markdown", str(md),
              *extra],
    )
    return res, (md.read_text() if md.exists() else "")


def test_a_check_or_probe_getting_worse_is_a_regression_even_with_equal_numbers(tmp_path):
    base = _audit_with("passed", [("gradients_finite", "passed")], accuracy=0.9)
    check_worse = _audit_with("passed", [("gradients_finite", "failed")], accuracy=0.9)
    res, md = _cli_diff(tmp_path, base, check_worse)
    assert res.exit_code == 1, res.output
    assert "`performance: gradients_finite`" in md and "regression" in md
    for worse in ("warned", "failed", "error", "skipped"):
        res, md = _cli_diff(tmp_path, base, _audit_with(worse, accuracy=0.9))
        assert res.exit_code == 1, (worse, res.output)
        assert f"| passed | {worse} | ❌ regression |" in md
    res, _ = _cli_diff(tmp_path, _audit_with("warned", accuracy=0.9), _audit_with(accuracy=0.9))
    assert res.exit_code == 0  # warned → passed is an improvement
    gone = AuditResult(model={}, data={}, environment={}, probes={})
    res, md = _cli_diff(tmp_path, base, gone)
    assert res.exit_code == 1 and "| passed | not run | ❌ regression |" in md


def test_directions_come_from_the_audits_metric_info(tmp_path):
    """A plugin metric is judged from audit.json even where the plugin is not installed."""
    info = {"score": {"direction": "higher", "description": "plugin score"}}
    base = _audit_with(probe="plugin", metric_info=info, score=0.9)
    new = _audit_with(probe="plugin", metric_info=info, score=0.5)
    (change,) = diff_results(base, new)
    assert change.direction == "higher" and change.regression
    # The audit's own declaration wins over the installed probe's.
    lower = {"accuracy": {"direction": "lower", "description": "inverted on purpose"}}
    (flipped,) = diff_results(_audit_with(metric_info=lower, accuracy=0.9),
                              _audit_with(metric_info=lower, accuracy=0.5))
    assert flipped.improvement and not flipped.regression


def test_tolerance_for_an_unknown_metric_is_exit_2_listing_valid_names(tmp_path):
    base = _audit(accuracy=0.95, ece=0.02)
    res, _ = _cli_diff(tmp_path, base, base, "--tolerance-for", "performance.acuracy=0.5")
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert "--tolerance-for performance.acuracy" in line
    assert "did you mean performance.accuracy" in line and "performance.ece" in line


@pytest.mark.parametrize(
    "flags", [["--tolerance", "-0.1"], ["--tolerance-for", "performance.accuracy=-0.2"],
              ["--tolerance", "nan"]],
)
def test_negative_tolerance_is_exit_2(tmp_path, flags):
    base = _audit(accuracy=0.95)
    res, _ = _cli_diff(tmp_path, base, _audit(accuracy=0.5), *flags)
    assert res.exit_code == 2, res.output
    assert "number >= 0" in res.output and "Traceback" not in res.output


def test_a_non_number_metric_is_exit_2_naming_file_and_metric(tmp_path):
    base = tmp_path / "b.json"
    base.write_text(_audit(accuracy=0.95).to_json())
    doc = json.loads(base.read_text())
    doc["probes"]["performance"]["metrics"]["accuracy"] = "high"
    broken = tmp_path / "n.json"
    broken.write_text(json.dumps(doc))
    res = CliRunner().invoke(app, ["diff", str(base), str(broken)])
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert str(broken) in line and "performance.accuracy = 'high' is not a number" in line


def test_markdown_cells_are_escaped():
    hostile = "a|b<script>`"
    changes = diff_results(_audit_with(probe="plug", **{hostile: 1.0}),
                           _audit_with(probe="plug", **{hostile: 2.0}))
    text = render_diff_markdown(changes, only_changed=False)
    (row,) = [line for line in text.splitlines() if "script" in line]
    cells = re.split(r"(?<!\\)\|", row)
    assert len(cells) == 9  # 7 cells: no pipe broke out of the table
    # The name sits in a code span, where GitHub shows HTML as text.
    assert cells[1].strip().startswith("``") and cells[1].strip().endswith("``")


def _identified(seed=0, classes=10, fingerprint="f" * 64, sha="a" * 64, accuracy=0.95,
                probes=None) -> AuditResult:
    """An audit with the identity facts diff checks (model, data, seed, budget, version)."""
    return AuditResult(
        model={"sha256": sha, "num_classes": classes, "adapter": {"input_shape": [1, 8, 8]}},
        data={"name": "digits", "fingerprint": fingerprint},
        environment={"seed": seed},
        settings={"seed": seed, "budget": "fast", "options": {}},
        auditkit_version="0.1.0",
        probes=probes or {
            "performance": ProbeResult(
                name="performance", status="passed", metrics={"accuracy": accuracy},
                metric_info={"accuracy": {"direction": "higher"}},
            )
        },
    )


def test_different_seeds_are_stated_before_any_regression(tmp_path):
    res, md = _cli_diff(tmp_path, _identified(seed=0), _identified(seed=1, accuracy=0.90))
    assert res.exit_code == 1, res.output
    note = md.index("| seed | 0 | 1 |")
    assert note < md.index("regression") and note < md.index("performance.accuracy")
    assert "Comparable, with differences" in md
    same, md_same = _cli_diff(tmp_path, _identified(), _identified(accuracy=0.949))
    assert same.exit_code == 0 and md_same.startswith("### auditkit diff\n\n**Comparable**")


@pytest.mark.parametrize(
    "other", [{"classes": 2}, {"fingerprint": "e" * 64}], ids=["model", "data"]
)
def test_different_models_or_data_need_force(tmp_path, other):
    res, md = _cli_diff(tmp_path, _identified(), _identified(**other, accuracy=0.5))
    assert res.exit_code == 2 and md == ""
    (line,) = res.output.strip().splitlines()
    assert "not comparable" in line and "--force" in line and "Traceback" not in res.output
    forced, md = _cli_diff(tmp_path, _identified(), _identified(**other, accuracy=0.5), "--force")
    assert forced.exit_code == 1, forced.output
    assert md.index("**Not comparable**") < md.index("regression")


def test_new_weights_alone_stay_comparable(tmp_path):
    res, md = _cli_diff(tmp_path, _identified(), _identified(sha="b" * 64))
    assert res.exit_code == 0, res.output
    assert "| model weights | aaaaaaaaaaaa | bbbbbbbbbbbb |" in md


def test_a_probe_not_run_before_that_now_fails_is_a_regression(tmp_path):
    perf = _identified().probes["performance"]
    bias = ProbeResult(name="bias", status="failed", metrics={})
    res, md = _cli_diff(tmp_path, _identified(), _identified(probes={"performance": perf, "bias": bias}))
    assert res.exit_code == 1, res.output
    assert "| `bias` | not run | failed | ❌ regression |" in md
    fine = ProbeResult(name="bias", status="passed", metrics={})
    res, md = _cli_diff(tmp_path, _identified(), _identified(probes={"performance": perf, "bias": fine}))
    assert res.exit_code == 0 and "| `bias` | not run | passed | ➕ not run before |" in md


def test_different_work_sizing_is_stated_with_the_way_to_plan_the_same_work(tmp_path):
    """The time-aware plan depends on the machine's measured speed: an audit from a busier
    machine may have dropped work (here the L2 attacks). The diff says so before the vanished
    metric, and how to plan exactly the base's work."""
    base, new = _identified(), _identified()
    base.settings["sizing"] = {"options": {}}
    new.settings["sizing"] = {"options": {"adversarial": {"l2_attacks": False}}}
    base.probes["performance"].metrics["pgd_l2_accuracy"] = 0.5
    base.probes["performance"].metric_info["pgd_l2_accuracy"] = {"direction": "higher"}
    res, md = _cli_diff(tmp_path, base, new)
    assert res.exit_code == 1, res.output  # a vanished number still counts
    note = md.index("| work sized |")
    assert note < md.index("pgd_l2_accuracy")
    assert re.search(r"\\?-\\?-cost\\?-from BASE/audit\.json", md), md
    same, md_same = _cli_diff(tmp_path, _identified(), _identified())
    assert "work sized" not in md_same and "memory layout" not in md_same
    # A CPU scan that ran in channels_last: stated, with the same way to run the base's layout.
    nhwc = _identified()
    nhwc.settings["sizing"] = {"options": {}, "channels_last": True}
    res, md = _cli_diff(tmp_path, _identified(), nhwc)
    assert res.exit_code == 0, res.output
    assert re.search(r"\| memory layout \| default \| channels\\?_last \| .*cost\\?-from", md), md
