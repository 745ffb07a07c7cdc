"""Progress you can watch: lines in captured stderr while the scan runs, none with --quiet."""

from __future__ import annotations

import io

import torch
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.pipeline import run_audit
from auditkit.probes.base import Probe
from auditkit.progress import Progress
from auditkit.results import ProbeResult


class _Watcher(Probe):
    """Reports inner progress and records what stderr showed while it was still running."""

    name = "watcher"
    seen: list[str] = []

    def run(self, context):
        for _ in context.progress.track(range(3), total=3, description="rounds"):
            pass
        context.progress.advance("epochs", 1, 4)
        _Watcher.seen.append(context.progress.stream.getvalue())
        return ProbeResult(name=self.name, status="passed", summary="watched")


class _Second(_Watcher):
    name = "second"


def test_progress_lines_appear_while_the_scan_runs(demo_adapter, digits_data):
    adapter, data = demo_adapter, digits_data
    stream = io.StringIO()
    _Watcher.seen = []
    run_audit(adapter, data, probes=[_Watcher(), _Second()], budget="fast",
              progress=Progress(mode="lines", stream=stream, interval=0.0))
    first, second = _Watcher.seen
    # While the first probe ran, its start and its inner steps were already on stderr ...
    assert "auditkit: [1/2] watcher: started" in first
    assert "auditkit: [1/2] watcher: rounds 3/3" in first
    assert "auditkit: [1/2] watcher: epochs 1/4" in first
    # ... and while the second ran, the first's end line too.
    assert "auditkit: [1/2] watcher: passed in" in second
    assert "auditkit: [2/2] second: started" in second
    # No timestamps or source links: plain lines a CI log can hold.
    for line in stream.getvalue().splitlines():
        assert line.startswith("auditkit: [") and ".py:" not in line


def test_inner_progress_lines_are_throttled():
    stream = io.StringIO()
    progress = Progress(mode="lines", stream=stream, interval=3600.0)
    progress.start_probe("slow", 1, 1)
    for i in range(1000):
        progress.advance("bootstrap rounds", i + 1, 1000)
    progress.end_probe("slow", "passed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2 and lines[0].endswith("slow: started"), lines


def test_off_and_rich_modes(monkeypatch, capsys):
    quiet = Progress(quiet=True)
    assert quiet.mode == "off" and not quiet.enabled
    with quiet.session():
        quiet.start_probe("x", 1, 1)
        assert list(quiet.track(range(3), total=3, description="x")) == [0, 1, 2]
        quiet.advance("y", 1, 2)
        quiet.log("nothing to see")
        quiet.end_probe("x", "passed")
    assert capsys.readouterr().err == ""
    assert Progress().mode == "lines"  # pytest's captured stderr is not a terminal
    monkeypatch.setattr("sys.stderr.isatty", lambda: True, raising=False)
    monkeypatch.delenv("CI", raising=False)
    assert Progress().mode == "rich"
    monkeypatch.setenv("CI", "true")
    assert Progress().mode == "lines"  # CI logs get plain lines, not a live display


def test_cli_scan_prints_progress_lines_to_stderr_and_none_with_quiet(tmp_path, demo_model_file,
                                                                       monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["scan", str(demo_model_file), "--probes", "performance", "--budget", "fast",
            "--device", "cpu", "--out", str(tmp_path / "o")]
    loud = CliRunner().invoke(app, args)
    assert loud.exit_code == 0, loud.output
    assert "auditkit: [1/1] performance: started" in loud.stderr
    assert "auditkit: [1/1] performance: passed in" in loud.stderr
    quiet = CliRunner().invoke(app, [*args, "--quiet"])
    assert quiet.exit_code == 0, quiet.output
    assert "auditkit: [" not in quiet.stderr and quiet.stderr.strip() == ""
    assert "auditkit verdict: passed" in quiet.stdout


def test_track_passes_items_through_unchanged():
    progress = Progress(mode="lines", stream=io.StringIO(), interval=0.0)
    items = [torch.tensor(1), torch.tensor(2)]
    assert list(progress.track(iter(items), total=2, description="batches")) == items
