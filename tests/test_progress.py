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


def _plain(text: str) -> list[str]:
    import re

    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text).splitlines()


def test_at_80_columns_elapsed_and_counts_stay_whole_and_the_estimate_never_says_0_s():
    """A fake clock: 12 s into a probe with a long name, a step 31 of 32 done at 0.2 s a
    round (0.2 s left), then 75 s into another probe. On an 80-column terminal every line fits,
    the elapsed time reads whole (never "0…"), and the estimate while work remains is ~1 s."""
    clock = {"t": 0.0}
    stream = io.StringIO()
    progress = Progress(mode="rich", stream=stream, width=80, clock=lambda: clock["t"])
    with progress.session():
        progress.start_probe("adversarial-from-a-plugin-with-a-long-name", 2, 5)
        clock["t"] += 6.0
        progress.advance("pgd restarts on the hardest examples", 0, 32)
        clock["t"] += 6.2
        progress.advance("pgd restarts on the hardest examples", 31, 32)
        progress._rich.refresh()  # what the terminal shows at that moment
        progress.end_probe("adversarial-from-a-plugin-with-a-long-name", "passed")
        progress.start_probe("calibration", 3, 5)
        clock["t"] += 75.0
        progress.advance("bootstrap rounds", 0, 1000)
        clock["t"] += 3.0
        progress.advance("bootstrap rounds", 300, 1000)
        progress._rich.refresh()
    lines = [line for line in _plain(stream.getvalue()) if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), lines
    assert any("31/32" in line and "12 s ~1 s left" in line for line in lines), lines
    assert any("300/1000" in line and "1 min 18 s ~7 s left" in line for line in lines), lines
    assert not any("~0 s" in line or " 0…" in line for line in lines), lines


def test_plain_lines_fit_80_columns_and_keep_their_numbers():
    clock = {"t": 0.0}
    stream = io.StringIO()
    progress = Progress(mode="lines", stream=stream, interval=0.0, clock=lambda: clock["t"])
    progress.start_probe("memorization-with-an-extraordinarily-long-plugin-name", 5, 5)
    clock["t"] += 28.4
    progress.advance("shadow models trained on disjoint halves of the data", 1, 2)
    clock["t"] += 0.3
    progress.advance("shadow models trained on disjoint halves of the data", 2, 4)
    progress.end_probe("memorization-with-an-extraordinarily-long-plugin-name", "passed")
    lines = stream.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    assert lines[1].endswith(" 1/2 (28 s elapsed)"), lines  # just began: no estimate yet
    assert lines[2].endswith(" 2/4 (29 s elapsed, ~1 s left)"), lines  # 0.3 s left: not "~0 s"
    assert lines[3].endswith(": passed in 29 s"), lines
