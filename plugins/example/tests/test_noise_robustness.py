"""The example plugin, as a user meets it: installed through its entry point, listed, run in a
scan, drawn in the report with its own section, and gone without a trace when it is removed."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
import torch
from auditkit_example import NoiseRobustnessProbe
from auditkit_example.judge import checks, metrics
from auditkit_example.measure import NoiseMeasurement
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.registry import discover_probes

torch.set_num_threads(1)


def digits_classifier() -> torch.nn.Module:
    """A linear model on the 8×8 digits, trained for a second (~95% accuracy)."""
    from auditkit.data.builtin import digits

    data = digits().train
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(data.x), data.y).backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def scanned(tmp_path_factory):
    out = tmp_path_factory.mktemp("example") / "out"
    result = auditkit.scan(digits_classifier(), "digits", probes=["noise_robustness"],
                           budget="fast", options={"noise_robustness": {"sigmas": "0,0.3"}},
                           metadata=auditkit.ModelMetadata(input_shape=(1, 8, 8),
                                                           input_range=(0.0, 1.0)))
    auditkit.write_outputs(result, out)
    return result, out


def test_the_plugin_is_discovered_through_its_entry_point():
    entry = discover_probes()["noise_robustness"]
    assert entry.loaded and entry.obj is NoiseRobustnessProbe
    assert entry.distribution == "auditkit-example"


def test_it_runs_in_a_scan_with_its_options_recorded(scanned):
    result, out = scanned
    probe = json.loads((out / "audit.json").read_text())["probes"]["noise_robustness"]
    assert probe["status"] in ("passed", "failed") and probe["error"] is None
    m = probe["metrics"]
    assert m["noise_accuracy"] <= m["clean_accuracy"] and m["sigma"] == 0.1
    assert probe["options"]["sigmas"] == [0.0, 0.3]  # the user's, parsed from "0,0.3"
    assert probe["options"]["draws"] == 1  # the fast budget's default
    assert [p["sigma"] for p in probe["details"]["curve"]] == [0.0, 0.1, 0.3]


def test_its_own_section_appears_in_the_report(scanned):
    _, out = scanned
    html = (out / "report.html").read_text()
    section = html[html.index('id="probe-noise_robustness"'):]
    section = section[: section.index("</section>")]
    assert 'data-partial="noise-robustness"' in section  # the plugin's partial
    assert "noise_robustness.noise_accuracy" in section  # and the generic metric table


def test_probes_verbose_shows_its_option_schema():
    res = CliRunner().invoke(app, ["probes", "--verbose"])
    assert res.exit_code == 0, res.output
    lines = [line for line in res.stdout.splitlines() if "--set noise_robustness." in line]
    assert len(lines) == 5
    draws = next(line for line in lines if ".draws=" in line)
    assert "fast 1, standard 4, thorough 8" in draws and "whole number ≥ 1" in draws


def test_a_bad_option_is_one_line_before_any_work(tmp_path):
    res = CliRunner().invoke(app, ["scan", str(tmp_path / "absent.pt"), "--probes",
                                   "noise_robustness", "--set", "noise_robustness.draws=0"])
    assert res.exit_code == 2
    assert res.stderr.strip() == ("auditkit: error: --set noise_robustness.draws=0: below the "
                                  "minimum; accepted: a whole number ≥ 1")


def test_the_judge_needs_no_model():
    flat = NoiseMeasurement(sigmas=(0.0, 0.1, 0.2), accuracies=(0.95, 0.9, 0.97),
                            clean_accuracy=0.95, headline_sigma=0.1, n_examples=500)
    found = {c.name: c.status for c in checks(flat, max_drop=0.2)}
    assert found == {"accuracy_falls_with_noise": "failed", "drop_within_limit": "passed"}
    # Three examples of 200 up from one noise draw to the next is sampling noise, not a finding
    # (a sound logistic regression on a table had failed on exactly this).
    wobble = NoiseMeasurement(sigmas=(0.0, 0.05, 0.1), accuracies=(0.82, 0.81, 0.825),
                              clean_accuracy=0.82, headline_sigma=0.05, n_examples=200)
    assert {c.name: c.status for c in checks(wobble, 0.2)}["accuracy_falls_with_noise"] == "passed"
    steep = NoiseMeasurement(sigmas=(0.0, 0.1), accuracies=(0.95, 0.5), clean_accuracy=0.95,
                             headline_sigma=0.1, n_examples=500)
    assert metrics(steep)["accuracy_drop"] == pytest.approx(0.45)
    assert {c.name: c.status for c in checks(steep, 0.2)}["drop_within_limit"] == "failed"


HIDE_PLUGIN = """
import importlib.metadata as metadata
import sys

sys.modules["auditkit_example"] = None  # its code cannot be imported
_entry_points = metadata.entry_points


def entry_points(**kwargs):
    found = _entry_points(**kwargs)
    return type(found)(ep for ep in found
                       if not (ep.dist and ep.dist.metadata["Name"] == "auditkit-example"))


metadata.entry_points = entry_points
"""


@pytest.mark.slow  # over 10 s; the default suite stays under 10 min (make test-slow)
def test_without_the_plugin_the_core_still_works(scanned, tmp_path):
    """As if uninstalled: its entry point and its package are hidden from a fresh process."""
    _, out = scanned
    script = HIDE_PLUGIN + textwrap.dedent("""
        from auditkit.cli import main
        sys.argv = ["auditkit", *sys.argv[1:]]
        main()
    """)
    (tmp_path / "run.py").write_text(script)

    def auditkit_cli(*args):
        return subprocess.run([sys.executable, str(tmp_path / "run.py"), *args],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)

    listed = auditkit_cli("probes")
    assert listed.returncode == 0, listed.stderr
    assert "noise_robustness" not in listed.stdout and "adversarial" in listed.stdout
    # An audit that the plugin wrote still renders: the generic section, and a note in place
    # of the plugin's own section.
    report = auditkit_cli("report", str(out / "audit.json"), "-o", str(tmp_path / "r.html"))
    assert report.returncode == 0, report.stderr
    html = (tmp_path / "r.html").read_text()
    assert "noise_robustness.noise_accuracy" in html
    assert 'data-partial="noise-robustness"' not in html and "not available here" in html
    # Asking for it is a clear input error, not a crash.
    missing = auditkit_cli("scan", str(tmp_path / "m.pt"), "--probes", "noise_robustness")
    assert missing.returncode == 2 and "unknown probe" in missing.stderr


class _NotSmall(torch.nn.Module):
    """The digits classifier plus 1.2M unused parameters: past auditkit's small-model line,
    so the clock's plan applies to it (a small model always keeps its budget's full work)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.spare = torch.nn.Parameter(torch.zeros(1_200_000))

    def forward(self, x):
        return self.inner(x) + 0 * self.spare[0]


def _costly_scan(**options):
    """A scan whose recorded model cost (1 s forward per example: a large network on a busy
    CPU) makes the standard budget's noise work over 2 hours: the plan must shrink it."""
    from auditkit.sizing import Cost

    cost = Cost(device="cpu", forward_s=1.0, backward_s=3.0, train_step_s=4.5, batch_size=8,
                parameters=1_200_650, threads=2)
    return auditkit.scan(_NotSmall(digits_classifier()), "digits", probes=["noise_robustness"],
                         budget="standard", cost=cost.to_dict(),
                         options={"noise_robustness": options} if options else None,
                         metadata=auditkit.ModelMetadata(input_shape=(1, 8, 8),
                                                         input_range=(0.0, 1.0)))


def test_the_clock_sizes_the_probe_through_its_declared_sizing():
    result = _costly_scan()
    sizing = result.settings["sizing"]
    assert "noise_robustness" not in sizing["not_sized"]
    planned = sizing["options"]["noise_robustness"]
    assert planned["draws"] == 1 and list(planned["sigmas"]) == [0.0]
    reasons = sizing["reasons"]["noise_robustness"]
    assert reasons[0] == "noisy copies per level 4 → 1"
    assert reasons[1].startswith("noise levels 0, 0.05, 0.1, 0.2, 0.4 → 0, 0.1")
    assert "noise_robustness" in sizing["summary"]
    # The probe ran the plan: the headline level (and the free clean level) only, on the
    # planned examples, with one noisy copy; its metrics are all there.
    probe = result.probes["noise_robustness"]
    assert [p["sigma"] for p in probe.details["curve"]] == [0.0, 0.1]
    assert probe.options["draws"] == 1
    assert f"({planned.get('n_examples', probe.options['n_examples'])} examples)" in probe.summary
    assert probe.metrics["noise_accuracy"] <= probe.metrics["clean_accuracy"]
    assert sizing["estimated_seconds"]["noise_robustness"] < sizing[
        "default_estimated_seconds"]["noise_robustness"] / 4


def test_the_clock_never_changes_an_option_the_user_set():
    result = _costly_scan(draws=3)
    sizing = result.settings["sizing"]
    assert "draws" not in sizing["options"]["noise_robustness"]
    assert not any(r.startswith("noisy copies") for r in sizing["reasons"]["noise_robustness"])
    assert result.probes["noise_robustness"].options["draws"] == 3
