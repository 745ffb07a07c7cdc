"""Exit codes CI depends on: a crash is never exit 1, bad input is exit 2 before any work.

Exit 1 means "the model failed a gate". A traceback from auditkit itself, or an output folder
that cannot be written, must never read as that, and must never cost a whole audit first.
"""

from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

import auditkit.api
from auditkit.cli import app
from auditkit.results import AuditResult, ProbeResult

INTERNAL = "auditkit: internal error: ValueError: kaboom (rerun with --debug for the traceback)"


@pytest.fixture(autouse=True)
def _no_stray_policy(tmp_path, monkeypatch):
    # The policy is discovered from the working directory; keep the repository's out of it.
    monkeypatch.chdir(tmp_path)


def _scan(model_file, out, *extra, debug_first=False):
    args = ["scan", str(model_file), "--out", str(out), "--probes", "performance",
            "--budget", "fast", "--device", "cpu", *extra]
    return CliRunner().invoke(app, ["--debug", *args] if debug_first else args)


def _forbid_work(monkeypatch):
    """Any model loading or audit after this is a test failure (bad input must stop first)."""

    def forbidden(*args, **kwargs):
        raise AssertionError("work started before the bad input was reported")

    monkeypatch.setattr(auditkit.api, "load_model", forbidden)
    monkeypatch.setattr(auditkit.api, "run_audit", forbidden)


def test_a_probe_crash_is_exit_3_with_every_output_written(tmp_path, demo_model_file, monkeypatch):
    from auditkit.probes.performance import PerformanceProbe

    def crash(self, context):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(PerformanceProbe, "run", crash)
    out = tmp_path / "o"
    res = _scan(demo_model_file, out, "--probes", "performance,calibration")
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == [
        "audit.json", "junit.xml", "report.html", "summary.md"
    ]
    audit = json.loads((out / "audit.json").read_text())
    assert audit["verdict"] == "error"
    assert audit["probes"]["performance"]["status"] == "error"
    assert "probe exploded" in audit["probes"]["performance"]["error"]
    assert audit["probes"]["calibration"]["status"] in ("passed", "warned", "failed")
    assert "probe exploded" in (out / "report.html").read_text()


def test_an_internal_error_is_one_line_and_exit_3(tmp_path, demo_model_file, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("kaboom")

    monkeypatch.setattr(auditkit.api, "run_audit", broken)
    res = _scan(demo_model_file, tmp_path / "o")
    assert res.exit_code == 3, res.output
    assert res.output.strip().splitlines() == [INTERNAL]


@pytest.mark.parametrize("debug_first", [True, False], ids=["auditkit --debug scan", "scan --debug"])
def test_debug_shows_the_traceback_and_keeps_the_exit_code(
    tmp_path, demo_model_file, monkeypatch, debug_first
):
    def broken(*args, **kwargs):
        raise ValueError("kaboom")

    monkeypatch.setattr(auditkit.api, "run_audit", broken)
    extra = () if debug_first else ("--debug",)
    res = _scan(demo_model_file, tmp_path / "o", *extra, debug_first=debug_first)
    assert res.exit_code == 3
    assert "Traceback" in res.output and "in broken" in res.output
    assert "auditkit: internal error: ValueError: kaboom" in res.output
    assert "rerun with --debug" not in res.output


def test_main_turns_any_escaping_exception_into_exit_3(monkeypatch, capsys):
    from auditkit import cli

    def app_that_crashes():
        raise KeyError("lost")

    monkeypatch.setattr(cli, "app", app_that_crashes)
    monkeypatch.setattr(sys, "argv", ["auditkit", "probes"])
    with pytest.raises(SystemExit) as info:
        cli.main()
    assert info.value.code == 3
    err = capsys.readouterr().err
    assert err.strip() == (
        "auditkit: internal error: KeyError: 'lost' (rerun with --debug for the traceback)"
    )


@pytest.mark.parametrize("where", ["existing file", "under a file"])
def test_unwritable_out_is_exit_2_before_the_audit(tmp_path, demo_model_file, monkeypatch, where):
    blocker = tmp_path / "taken"
    blocker.write_text("not a folder")
    out = blocker if where == "existing file" else blocker / "sub"
    _forbid_work(monkeypatch)
    res = _scan(demo_model_file, out)
    assert res.exit_code == 2, res.output
    (line,) = res.output.strip().splitlines()
    assert line.startswith(f"auditkit: error: --out {out}")


def test_negative_seed_is_bad_input(tmp_path, demo_model_file, monkeypatch):
    _forbid_work(monkeypatch)
    res = _scan(demo_model_file, tmp_path / "o", "--seed", "-1")
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "--seed" in res.output
    with pytest.raises(auditkit.AuditkitInputError, match="--seed"):
        auditkit.scan("unused.pt2", "digits", seed=-1)


def _write_audit(path):
    audit = AuditResult(
        model={"path": "m.pt2", "sha256": "ab", "format": "torch.export", "num_classes": 10},
        data={"name": "digits", "n": 10, "fingerprint": "f"},
        environment={"seed": 0, "device": "cpu", "torch": "2"},
        probes={"performance": ProbeResult("performance", "passed", metrics={"accuracy": 0.9})},
    )
    path.write_text(audit.to_json())
    return path


def test_report_output_problems_are_one_line_exit_2(tmp_path):
    source = _write_audit(tmp_path / "audit.json")
    runner = CliRunner()
    missing_dir = runner.invoke(app, ["report", str(source), "-o", str(tmp_path / "no" / "r.html")])
    assert missing_dir.exit_code == 2, missing_dir.output
    assert "does not exist" in missing_dir.output and "Traceback" not in missing_dir.output
    into_dir = runner.invoke(app, ["report", str(source), "-o", str(tmp_path)])
    assert into_dir.exit_code == 2 and "is a directory" in into_dir.output
    dir_input = runner.invoke(app, ["report", str(tmp_path)])
    assert dir_input.exit_code == 2 and "is a directory" in dir_input.output
    assert len(dir_input.output.strip().splitlines()) == 1


def test_diff_markdown_into_missing_folder_is_exit_2(tmp_path):
    source = _write_audit(tmp_path / "audit.json")
    res = CliRunner().invoke(
        app, ["diff", str(source), str(source), "--markdown", str(tmp_path / "no" / "d.md")]
    )
    assert res.exit_code == 2 and "--markdown" in res.output


def test_ctrl_c_is_not_read_as_a_failed_gate(tmp_path, demo_model_file, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(auditkit.api, "run_audit", interrupted)
    res = _scan(demo_model_file, tmp_path / "o")
    assert res.exit_code == 130, res.output
    assert "auditkit: interrupted" in res.output
