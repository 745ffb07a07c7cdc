"""Commands start at once: flag errors before torch, generators listed, tables that fit 80 columns."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from auditkit.cli import app

HEAVY = ("torch", "numpy", "pandas")

# Run the CLI in a fresh interpreter and report its exit code, stderr and the heavy modules
# that were imported by the time it exited.
PROBE = """
import json, sys
from auditkit.cli import main
sys.argv = ["auditkit", *json.loads(sys.argv[1])]
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": [m for m in HEAVY if m in sys.modules]}))
""".replace("HEAVY", repr(HEAVY))


def _run(args: list[str]) -> tuple[dict, str]:
    proc = subprocess.run([sys.executable, "-c", PROBE, json.dumps(args)], capture_output=True,
                          text=True, timeout=300)
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stderr


def test_importing_the_cli_imports_no_heavy_module():
    out = subprocess.run([sys.executable, "-c", "import sys, auditkit.cli; "
                          f"print([m for m in {HEAVY!r} if m in sys.modules])"],
                         capture_output=True, text=True, timeout=300).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize(("args", "words"), [
    (["--set", "adversarial"], "--set 'adversarial': expected probe.option=value"),
    (["--set", "adversarial.eps"], "--set 'adversarial.eps': expected probe.option=value"),
    (["--input-shape", "1.5,8,8"], "--input-shape '1.5,8,8': expected positive whole numbers"),
    (["--fail-on", "sometimes"], "sometimes"),
    (["--seed", "-1"], "--seed"),
    # Values of the right shape but the wrong type or range: found from the option schema alone.
    (["--set", "adversarial.eps=abc"], "--set adversarial.eps=abc: not a number"),
    (["--set", "adversarial.norm=L7"], "--set adversarial.norm=L7"),
    (["--set", "bias.min_group_size=2.5"], "--set bias.min_group_size=2.5"),
    (["--set", "calibration.nope=1"], "unknown option for probe calibration"),
])
def test_a_bad_flag_errors_before_torch_is_imported(tmp_path, args, words):
    result, err = _run(["scan", str(tmp_path / "model.pt2"), *args])
    assert result["code"] == 2, err
    assert words in err and "Traceback" not in err
    assert result["heavy"] == [], f"imported {result['heavy']} before the error"


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["scan", "--help"], ["diff", "--help"],
                                  ["generate", "--help"], ["probes", "--help"]])
def test_version_and_help_import_no_heavy_module(args):
    result, err = _run(args)
    assert result["code"] == 0, err
    assert result["heavy"] == []


def test_generate_help_lists_every_generator_with_one_line():
    res = CliRunner().invoke(app, ["generate", "--help"])
    assert res.exit_code == 0, res.output
    lines = {line.split()[0]: line for line in res.output.splitlines() if line.startswith("  ")
             and line.split()}
    for name in ("gcn", "dgcnn", "nas"):
        assert name in lines and len(lines[name].split()) > 3, res.output


def test_generate_name_help_shows_the_generators_options(capsys):
    from auditkit.cli import main

    for name, option in (("nas", "--trials"), ("gcn", "--epochs")):
        sys_argv = ["auditkit", "generate", name, "--help"]
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sys, "argv", sys_argv)
            with pytest.raises(SystemExit) as info:
                main()
        assert info.value.code == 0
        assert option in capsys.readouterr().out


def test_results_table_at_80_columns_cuts_no_metric_name(monkeypatch, capsys):
    import importlib.util

    from auditkit.cli import print_result

    monkeypatch.setenv("COLUMNS", "80")
    path = Path(__file__).parent / "render" / "conftest.py"
    spec = importlib.util.spec_from_file_location("render_audits", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    result = module.build_rich_audit()  # every probe, each with its headline metric and reason
    print_result(result, None)
    out = capsys.readouterr().out
    # The table's lines (the verdict lines after it are for grep and never wrap).
    lines = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert len(lines) > 10 and max(len(line) for line in lines) <= 80
    # ...and none is cropped: each ends on the table's right border.
    assert all(line.rstrip()[-1] in "┓┃┩│┘" for line in lines), lines[:3]
    for probe in result.probes.values():
        if probe.headline and probe.metrics.get(probe.headline) is not None:
            assert any(probe.headline in line for line in lines), probe.headline
    # Reasons are wrapped, not shortened: every word of each reason is in the table.
    text = " ".join(out.split())
    from auditkit.verdict import grade_reason

    for probe in result.probes.values():
        for word in grade_reason(probe).split():
            assert word in text or len(word) > 20, word


def test_probes_verbose_wraps_to_the_terminal_width():
    res = CliRunner().invoke(app, ["probes", "--verbose"], env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert any("option    --set adversarial.eps=" in line for line in lines)
    assert max(len(line) for line in lines) <= 80
    wide = CliRunner().invoke(app, ["probes", "--verbose"], env={"COLUMNS": "200"}).output
    assert max(len(line) for line in wide.splitlines()) > 80  # the width is the terminal's
    piped = CliRunner().invoke(app, ["probes", "--verbose"], env={"COLUMNS": None}).output
    assert len(piped.splitlines()) < len(lines)  # piped: one line per item, for grep


def _two_audits(tmp_path):
    from auditkit.results import AuditResult, ProbeResult

    paths = []
    for i, accuracy in enumerate((0.95, 0.80)):
        probe = ProbeResult(name="performance", status="passed", metrics={"accuracy": accuracy})
        path = tmp_path / f"{i}.json"
        path.write_text(AuditResult(model={}, data={}, environment={},
                                    probes={"performance": probe}).to_json())
        paths.append(str(path))
    return paths


def test_diff_shows_tables_on_a_terminal_and_markdown_only_when_asked(tmp_path, monkeypatch):
    from auditkit.cli import audits

    base, new = _two_audits(tmp_path)
    monkeypatch.setattr(audits, "on_terminal", lambda: True)
    md = tmp_path / "diff.md"
    res = CliRunner().invoke(app, ["diff", base, new, "--markdown", str(md)], env={"COLUMNS": "80"})
    assert res.exit_code == 1, res.output
    assert "|---|" not in res.output and "performance.accuracy" in res.output
    assert "───" in res.output  # a drawn table, not pipes and dashes
    assert max(len(line) for line in res.output.splitlines()) <= 80
    assert "|---|" in md.read_text() and "performance.accuracy" in md.read_text()
    monkeypatch.setattr(audits, "on_terminal", lambda: False)  # piped: the Markdown, as before
    piped = CliRunner().invoke(app, ["diff", base, new]).output
    assert "| performance.accuracy" in piped or "`performance.accuracy`" in piped


@pytest.mark.parametrize(("text", "words"), [
    ("[gates]\nfoo = \n", "not valid TOML"),
    ('[gates]\n"performance.accuracy" = ">= abc"\n', "is not a rule"),
    ('fail_on = "sometimes"\n', "fail_on = 'sometimes'"),
    ('[gate]\n"performance.accuracy" = ">= 0.9"\n', "unknown policy section [gate]"),
    ('[checks]\nadversarial = "yes"\n', "check rule 'adversarial' = 'yes'"),
])
def test_a_bad_policy_errors_before_torch_is_imported(tmp_path, text, words):
    policy = tmp_path / "auditkit.toml"
    policy.write_text(text)
    result, err = _run(["scan", str(tmp_path / "model.pt2"), "--policy", str(policy)])
    assert result["code"] == 2, err
    assert words in err and "Traceback" not in err
    assert result["heavy"] == [], f"imported {result['heavy']} before the error"
