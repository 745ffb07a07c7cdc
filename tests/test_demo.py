"""End to end through the command line: `auditkit demo`, `auditkit scan`, bad input, --version."""

from __future__ import annotations

import hashlib
import json

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

import auditkit
from auditkit.cli import app
from auditkit.data.builtin import digits
from auditkit.demo import digits_metadata
from auditkit.gates import exit_code
from auditkit.loading import load_model
from auditkit.results import AuditResult

OUTPUTS = ("audit.json", "report.html", "junit.xml", "summary.md")


@pytest.fixture(scope="session")
def scan_run(demo_run, tmp_path_factory):
    _, demo_out = demo_run
    out = tmp_path_factory.mktemp("scan") / "out"
    res = CliRunner().invoke(app, ["scan", str(demo_out / "digits-cnn.pt2"), "--out", str(out),
                                   "--probes", "performance"])
    return res, out


def test_demo_writes_every_output_and_a_self_describing_model(demo_run):
    res, out = demo_run
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    for name in (*OUTPUTS, "digits-cnn.pt2"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    result = AuditResult.load(out / "audit.json")
    # Every built-in probe runs cleanly on the demo model: none errors, none is skipped.
    errored = {n: p.error for n, p in result.probes.items() if p.status == "error"}
    assert not errored, errored
    assert {"performance", "adversarial", "calibration", "corruptions", "bias", "memorization"} <= {
        n for n, p in result.probes.items() if p.status != "skipped"
    }
    assert res.exit_code == 0, res.output
    assert res.exit_code == exit_code(result)
    performance = result.probes["performance"]
    assert performance.status == "passed"
    assert performance.metrics["accuracy"] >= 0.95  # the small CNN gets ~99% on the hold-out
    loaded = load_model(out / "digits-cnn.pt2")
    assert loaded.metadata == digits_metadata()
    assert "report" in res.stdout and str((out / "report.html").resolve()) in res.stdout


def test_scan_of_the_demo_file_needs_no_flags_and_follows_the_contract(scan_run, demo_run):
    res, out = scan_run
    assert res.exit_code == 0, res.output
    for name in OUTPUTS:
        assert (out / name).is_file(), name
    doc = json.loads((out / "audit.json").read_text())
    model_file = demo_run[1] / "digits-cnn.pt2"

    assert doc["schema_version"] and doc["auditkit_version"] == auditkit.__version__
    model = doc["model"]
    assert model["path"] == str(model_file)
    assert model["sha256"] == hashlib.sha256(model_file.read_bytes()).hexdigest()
    assert model["format"] == "torch.export" and model["num_classes"] == 10
    assert doc["data"]["name"] == "digits" and doc["data"]["n"] == 540
    assert doc["data"]["fingerprint"] == digits().fingerprint()
    assert {"calibration", "evaluation", "seed"} <= set(doc["data"]["splits"])
    env = doc["environment"]
    assert env["torch"] == torch.__version__ and env["seed"] == 0
    assert env["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert list(doc["probes"]) == ["performance"]
    performance = doc["probes"]["performance"]
    assert {"status", "metrics", "checks", "seconds"} <= set(performance)
    assert performance["status"] == "passed"
    assert isinstance(performance["metrics"]["accuracy"], float)
    assert all({"name", "status", "detail"} <= set(c) for c in performance["checks"])
    assert doc["gates"] == [] and doc["verdict"] == "passed"
    # The demo's own audit measured the same model on the same data.
    demo_doc = json.loads((demo_run[1] / "audit.json").read_text())
    assert performance["metrics"] == demo_doc["probes"]["performance"]["metrics"]


def test_version():
    res = CliRunner().invoke(app, ["--version"])
    assert res.exit_code == 0
    assert res.stdout.strip() == f"auditkit {auditkit.__version__}"


def _bad_scan(model_file, *extra):
    res = CliRunner().invoke(app, [*extra, "scan", str(model_file), "--data", "digits",
                                   "--probes", "performance", "--out",
                                   str(model_file.parent / "out")])
    return res


def _assert_one_line_exit_2(res, needle):
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert needle in lines[0]
    return lines[0]


class _CreatesFile:
    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_module_exits_2_with_one_line_explaining_unsafe_pickle(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "model.pt"
    torch.save(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)), path)
    _assert_one_line_exit_2(_bad_scan(path), "--unsafe-pickle")
    assert not (tmp_path / "out" / "audit.json").exists()

    # --debug adds the real exception's traceback and keeps the exit code.
    debug = _bad_scan(path, "--debug")
    assert debug.exit_code == 2
    assert "Traceback" in debug.stderr and "AuditkitInputError" in debug.stderr

    # The user vouches for the file: it loads and scans (an untrained network: the performance
    # probe finds it at chance, so the audit fails, exit 1, not bad input).
    trusted = CliRunner().invoke(app, ["scan", str(path), "--data", "digits", "--unsafe-pickle",
                                       "--probes", "performance", "--out", str(tmp_path / "ok")])
    assert trusted.exit_code == 1, trusted.output
    assert "performance failed: above_chance: balanced accuracy" in trusted.stdout
    assert json.loads((tmp_path / "ok" / "audit.json").read_text())["model"]["format"] == \
        "torch.save"


def test_malicious_pickle_through_the_cli_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"weights": _CreatesFile(marker)}, tmp_path / "model.pt")
    _assert_one_line_exit_2(_bad_scan(tmp_path / "model.pt"), "--unsafe-pickle")
    assert not marker.exists()


def test_damaged_and_foreign_files_exit_2_with_one_line(tmp_path, scan_run, demo_run):
    original = (demo_run[1] / "digits-cnn.pt2").read_bytes()
    cases = {
        "truncated.pt2": (original[: len(original) // 2], "truncated or corrupt"),
        "empty.pt": (b"", "empty"),
        "notes.txt": (b"just some text\n", "not a model file"),
    }
    for name, (content, needle) in cases.items():
        path = tmp_path / name
        path.write_bytes(content)
        line = _assert_one_line_exit_2(_bad_scan(path), needle)
        assert line.startswith("auditkit: error: ")
    _assert_one_line_exit_2(_bad_scan(tmp_path / "absent.pt2"), "no such file")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_exits_2(demo_run):
    res = CliRunner().invoke(app, ["scan", str(demo_run[1] / "digits-cnn.pt2"), "--device",
                                   "cuda", "--probes", "performance",
                                   "--out", str(demo_run[1].parent / "cuda-out")])
    _assert_one_line_exit_2(res, "CUDA")


def test_demo_training_is_reproducible_from_the_seed():
    from auditkit.demo import train_digits_model

    torch.rand(3)  # whatever happened to the global RNG before must not matter
    first, _ = train_digits_model(seed=0, epochs=1)
    torch.rand(5)
    again, _ = train_digits_model(seed=0, epochs=1)
    other, _ = train_digits_model(seed=1, epochs=1)
    for key, value in first.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    assert not torch.equal(first.state_dict()["classifier.3.weight"],
                           other.state_dict()["classifier.3.weight"])


def test_clean_demo_passes_in_every_output(demo_run):
    """No policy: the demo's probes pass (at most with warnings), so the exit code is 0 and the
    console, summary.md, junit.xml, report header and audit.json all say passed."""
    import xml.etree.ElementTree as ET

    res, out = demo_run
    audit = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    assert res.exit_code == 0, res.output
    assert audit["verdict"] == "passed"
    assert not any(p["status"] in ("failed", "error") for p in audit["probes"].values())
    shown = audit["verdict_text"]  # "passed", or "passed with warnings" if a probe warned
    assert shown.startswith("passed")
    assert f"auditkit verdict: {shown} (" in res.stdout
    summary = (out / "summary.md").read_text(encoding="utf-8")
    assert summary.splitlines()[0].endswith(shown.upper())
    junit = ET.fromstring((out / "junit.xml").read_text(encoding="utf-8"))
    assert junit.get("failures") == "0" and junit.get("errors") == "0"
    report = (out / "report.html").read_text(encoding="utf-8")
    assert f"Verdict: {shown.upper()}" in report
    for reason in audit["verdict_reasons"]:  # warnings are listed everywhere alike
        assert reason["line"] in res.stdout and not reason["decides"]


def test_demo_weights_do_not_depend_on_the_thread_count():
    """A convolution's gradient sums in an order set by the thread count: the demo trains on one
    thread, so 1 and 2 threads give bit-identical weights (and so the same audit)."""
    from auditkit.demo import train_digits_model

    before = torch.get_num_threads()
    weights = {}
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            model, _ = train_digits_model(seed=0, epochs=2)
            weights[threads] = model.state_dict()
            assert torch.get_num_threads() == threads  # the caller's threads come back
    finally:
        torch.set_num_threads(before)
    for key, value in weights[1].items():
        assert torch.equal(value, weights[2][key]), key


def test_demo_shows_its_training_and_a_scan_with_resume_reuses_its_probes(demo_run, tmp_path):
    """`auditkit demo` is not silent while it trains, and it leaves checkpoints: scanning its
    model into its folder with --resume (and the demo's --budget fast) reuses every probe
    instead of recomputing it; so does `auditkit demo --resume` (the same seed trains a
    byte-identical model file)."""
    import shutil

    res, out = demo_run
    assert "auditkit: training the demo CNN: started" in res.stderr
    assert "auditkit: training the demo CNN: 30 epochs in " in res.stderr
    folder = tmp_path / "auditkit-out"
    shutil.copytree(out, folder)
    again = CliRunner().invoke(app, ["scan", str(folder / "digits-cnn.pt2"), "--out",
                                     str(folder), "--device", "cpu", "--budget", "fast",
                                     "--resume"])
    assert again.exit_code == 0, again.output
    for name in ("performance", "adversarial", "calibration", "bias", "memorization"):
        assert f"{name}: passed reused from checkpoint" in again.stderr or \
            f"{name}: warned reused from checkpoint" in again.stderr, (name, again.stderr)
    before = json.loads((out / "audit.json").read_text())["probes"]
    after = json.loads((folder / "audit.json").read_text())["probes"]
    assert {n: p["metrics"] for n, p in after.items()} == \
        {n: p["metrics"] for n, p in before.items()}
