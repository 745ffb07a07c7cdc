"""One story: console, summary.md, junit.xml, the report header and audit.json carry the same
verdict for the same reasons, and the exit code follows it (no policy: the probes' own grades)."""

from __future__ import annotations

import html
import json
import xml.etree.ElementTree as ET

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.data.synthetic import credit
from auditkit.demo import train_classifier
from auditkit.loading import ModelMetadata, save_model
from auditkit.render.markdown import text as markdown_text


@pytest.fixture(scope="module")
def biased_model_file(tmp_path_factory):
    """An MLP trained on the synthetic credit table's biased labels (it learns to deny women)."""
    data = credit(seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 2))
    train_classifier(model, data.train, epochs=10, batch_size=256, lr=1e-2, seed=0)
    path = tmp_path_factory.mktemp("biased") / "credit-mlp.pt2"
    metadata = ModelMetadata(input_shape=(8,), dataset="credit", modality="tabular")
    return save_model(model, path, example_input=data.x[:2], metadata=metadata)


def _outputs(out):
    audit = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    summary = (out / "summary.md").read_text(encoding="utf-8")
    junit = ET.fromstring((out / "junit.xml").read_text(encoding="utf-8"))
    report = (out / "report.html").read_text(encoding="utf-8")
    verdict_case = junit.find("testsuite[@name='auditkit.verdict']/testcase")
    return audit, summary, verdict_case, report


def test_no_policy_planted_bias_fails_everywhere_for_the_same_reason(
    biased_model_file, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)  # no auditkit.toml / pyproject.toml: no policy
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["scan", str(biased_model_file), "--data", "credit", "--sensitive", "sex,age_band",
         "--probes", "performance,bias", "--budget", "fast", "--device", "cpu", "--out", str(out),
         "--set", "bias.n_boot=30"],
    )
    audit, summary, verdict_case, report = _outputs(out)
    assert audit["probes"]["bias"]["status"] == "failed", audit["probes"]["bias"]["summary"]
    assert res.exit_code == 1, res.output
    reason = audit["verdict_reasons"][0]
    assert audit["verdict"] == "failed" and reason["item"] == "bias" and reason["decides"]
    line = reason["line"]
    assert line.startswith("bias failed: ")
    # console
    assert line in res.stdout.splitlines()
    assert res.stdout.strip().splitlines()[-2].startswith("auditkit verdict: failed (no policy")
    # summary.md
    assert summary.startswith("## auditkit: ❌ FAILED")
    assert summary.splitlines()[2] == f"- {markdown_text(line, 300)}"
    # junit.xml
    failure = verdict_case.find("failure")
    assert failure is not None and failure.get("message") == f"failed: {line}"
    # report header
    assert "Verdict: FAILED" in report and f"<li>{line}</li>" in html.unescape(report)


def test_fail_on_never_lets_the_same_audit_pass_with_warnings(
    biased_model_file, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "auditkit.toml").write_text('fail_on = "never"\n')
    out = tmp_path / "out"
    res = CliRunner().invoke(
        app,
        ["scan", str(biased_model_file), "--data", "credit", "--sensitive", "sex",
         "--probes", "bias", "--budget", "fast", "--device", "cpu", "--out", str(out),
         "--set", "bias.n_boot=30"],
    )
    audit, summary, verdict_case, _ = _outputs(out)
    assert res.exit_code == 0, res.output
    assert audit["verdict"] == "passed" and audit["fail_on"] == "never"
    assert audit["verdict_text"] == "passed with warnings"
    assert summary.startswith("## auditkit: ⚠️ PASSED WITH WARNINGS")
    assert verdict_case.find("failure") is None
    # --fail-on on the command line wins over the policy file.
    res = CliRunner().invoke(
        app,
        ["scan", str(biased_model_file), "--data", "credit", "--sensitive", "sex",
         "--probes", "bias", "--budget", "fast", "--device", "cpu", "--out", str(out),
         "--set", "bias.n_boot=30", "--fail-on", "failed"],
    )
    assert res.exit_code == 1, res.output


def test_bad_fail_on_is_one_line_exit_2(tmp_path, demo_model_file, monkeypatch):
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["scan", str(demo_model_file), "--fail-on", "sometimes"])
    assert res.exit_code == 2
    (line,) = res.output.strip().splitlines()
    assert "--fail-on 'sometimes'" in line and "failed, warned, never" in line
    (tmp_path / "auditkit.toml").write_text('fail_on = "often"\n')
    res = CliRunner().invoke(app, ["scan", str(demo_model_file)])
    assert res.exit_code == 2 and "fail_on" in res.output and "Traceback" not in res.output
