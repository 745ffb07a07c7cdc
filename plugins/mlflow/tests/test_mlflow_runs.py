"""Audits logged to a local SQLite tracking store, by mlflow.evaluate and by the CLI.

Importing MLflow and creating its tables takes tens of seconds on a shared machine, so these are
``slow`` (make test-slow); tests/test_names.py and test_without_plugin.py run by default."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from auditkit.cli import app

pytestmark = pytest.mark.slow
pytest.importorskip("mlflow")  # installed by requirements-mlflow.txt
PROBES = ["performance", "calibration", "adversarial"]


def _run_contents(run_id: str) -> tuple[dict, dict, set[str]]:
    from mlflow import MlflowClient

    client = MlflowClient()
    run = client.get_run(run_id)
    files = {f.path for f in client.list_artifacts(run_id, "auditkit")}
    return run.data.metrics, run.data.tags, files


def _download_audit(run_id: str, tmp_path: Path) -> dict:
    from mlflow.artifacts import download_artifacts

    local = download_artifacts(run_id=run_id, artifact_path="auditkit/audit.json",
                               dst_path=str(tmp_path / run_id))
    return json.loads(Path(local).read_text())


def _assert_run_matches(run_id: str, audit: dict) -> None:
    """Every measured metric of audit.json is in the run with the same value; the verdict tag
    equals audit.json's; the four files are artifacts."""
    metrics, tags, files = _run_contents(run_id)
    expected = {
        f"auditkit.{probe}.{name}": value
        for probe, body in audit["probes"].items()
        for name, value in body["metrics"].items()
        if isinstance(value, (int, float)) and np.isfinite(value)
    }
    assert len(expected) > 10
    assert {k: metrics.get(k) for k in expected} == pytest.approx(expected, rel=1e-12, abs=0)
    assert tags["auditkit.verdict"] == audit["verdict"]
    assert tags["auditkit.verdict_text"] == audit["verdict_text"]
    for probe, body in audit["probes"].items():
        assert tags[f"auditkit.{probe}.status"] == body["status"]
    assert files == {f"auditkit/{n}" for n in ("audit.json", "report.html", "junit.xml", "summary.md")}


def test_evaluate_torch_model_logs_the_audit(logged, digits, tmp_path):
    import mlflow
    import pandas as pd

    x, y = digits
    frame = pd.DataFrame(x, columns=[f"p{i}" for i in range(64)]).assign(label=y)
    with mlflow.start_run() as run:
        result = mlflow.models.evaluate(
            logged["demo"], frame, targets="label", model_type="classifier",
            evaluators=["auditkit"],
            evaluator_config={"auditkit": {"probes": PROBES, "input_range": [0, 1],
                                           "out": str(tmp_path / "out")}},
        )
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["model"]["format"] == "nn.Module"  # the module itself: a white box
    assert audit["probes"]["adversarial"]["metrics"]["pgd_accuracy"] is not None
    _assert_run_matches(run.info.run_id, audit)
    assert _download_audit(run.info.run_id, tmp_path) == audit
    assert result.metrics["auditkit.performance.accuracy"] == audit["probes"]["performance"]["metrics"]["accuracy"]


def test_evaluate_sklearn_pipeline_with_a_sensitive_column(logged, table, tmp_path):
    import mlflow

    with mlflow.start_run() as run:
        mlflow.models.evaluate(
            logged["credit"], table, targets="label", model_type="classifier",
            evaluators=["auditkit"],
            evaluator_config={"auditkit": {"probes": ["performance", "bias", "calibration"],
                                           "sensitive": ["sex"], "out": str(tmp_path / "out")}},
        )
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["model"]["format"] == "scikit-learn"
    bias = audit["probes"]["bias"]["metrics"]
    assert bias["accuracy_difference"] is not None  # measured on the real sensitive column
    _assert_run_matches(run.info.run_id, audit)


def _npz(digits, path: Path) -> Path:
    x, y = digits
    np.savez(path, x=x, y=y)
    return path


def _save_pt2(net, digits, path: Path) -> Path:
    import torch

    from auditkit import ModelMetadata, save_model

    x, _ = digits
    return save_model(net, path, example_input=torch.tensor(x[:2]),
                      metadata=ModelMetadata(input_shape=(64,), input_range=(0.0, 1.0)))


def _scan(*args: str):
    return CliRunner().invoke(app, ["scan", *args, "--probes", ",".join(PROBES), "--budget",
                                    "fast", "--device", "cpu", "--quiet"])


def _run_id(output: str) -> str:
    return output.split("mlflow: logged to run ")[1].split()[0]


def test_cli_scan_mlflow_creates_a_run_with_the_same_contents(store, net, digits, tmp_path):
    model = _save_pt2(net, digits, tmp_path / "model.pt2")
    data = _npz(digits, tmp_path / "digits.npz")
    res = _scan(str(model), "--data", str(data), "--out", str(tmp_path / "out"), "--mlflow", store)
    assert res.exit_code in (0, 1), res.output
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    run_id = _run_id(res.output)
    _assert_run_matches(run_id, audit)
    from mlflow import MlflowClient

    client = MlflowClient()
    experiment = client.get_experiment(client.get_run(run_id).info.experiment_id)
    assert experiment.name == "model"  # named after the model
    # --mlflow-run logs into the given run instead.
    res2 = _scan(str(model), "--data", str(data), "--out", str(tmp_path / "out2"), "--mlflow",
                 store, "--mlflow-run", run_id, "--seed", "1")
    assert res2.exit_code in (0, 1), res2.output
    assert _run_id(res2.output) == run_id


def test_cli_mlflow_run_typo_is_exit_2_before_the_audit(store, tmp_path):
    res = _scan("missing.pt2", "--out", str(tmp_path / "out"), "--mlflow", store,
                "--mlflow-run", "0123456789abcdef")
    assert res.exit_code == 2
    assert "--mlflow-run 0123456789abcdef" in res.output
    assert not (tmp_path / "out" / "audit.json").exists()


def test_scan_a_registered_model(logged, digits, tmp_path):
    data = _npz(digits, tmp_path / "digits.npz")
    res = _scan(logged["demo"], "--data", str(data), "--input-range", "0,1",
                "--out", str(tmp_path / "out"))
    assert res.exit_code in (0, 1), res.output
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["model"]["path"] == "models:/demo/1"
    assert audit["model"]["format"] == "torch.export"  # auditkit's own weights-only loader
    assert audit["probes"]["adversarial"]["metrics"]["pgd_accuracy"] is not None


def test_a_pickled_flavour_needs_unsafe_pickle(logged, table, tmp_path):
    csv = tmp_path / "credit.csv"
    table.to_csv(csv, index=False)
    args = ["--data", str(csv), "--target", "label", "--sensitive", "sex"]
    res = _scan(logged["pickled"], *args, "--out", str(tmp_path / "out"))
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert "cloudpickle" in line and "runs code" in line and "--unsafe-pickle" in line
    assert "Traceback" not in res.output
    res = _scan(logged["pickled"], *args, "--out", str(tmp_path / "out2"), "--unsafe-pickle")
    assert res.exit_code in (0, 1), res.output


def test_a_pickled_torch_flavour_is_refused_without_running_it(logged, digits, tmp_path):
    data = _npz(digits, tmp_path / "digits.npz")
    res = _scan(logged["torch-pickle"], "--data", str(data), "--out", str(tmp_path / "out"))
    assert res.exit_code == 2, res.output
    line = res.output.strip().splitlines()[-1]
    assert "pickled nn.Module" in line and "serialization_format='pt2'" in line
    assert "--unsafe-pickle" in line


def test_diff_of_two_runs_equals_the_diff_of_their_files(store, net, digits, tmp_path):
    model = _save_pt2(net, digits, tmp_path / "model.pt2")
    data = _npz(digits, tmp_path / "digits.npz")
    runs, files = [], []
    for seed in ("0", "1"):
        out = tmp_path / f"out{seed}"
        res = _scan(str(model), "--data", str(data), "--out", str(out), "--mlflow", store,
                    "--seed", seed, "--set", "adversarial.eps=0.2")
        assert res.exit_code in (0, 1), res.output
        runs.append(f"runs:/{_run_id(res.output)}")
        files.append(str(out / "audit.json"))
    by_run = CliRunner().invoke(app, ["diff", *runs, "--all"])
    by_file = CliRunner().invoke(app, ["diff", *files, "--all"])
    assert by_run.exit_code == by_file.exit_code, by_run.output
    text = by_file.output
    for file, run in zip(files, runs, strict=True):
        text = text.replace(file, run)
    assert by_run.output == text
    assert "seed" in text


def test_evaluate_any_other_pyfunc_as_a_black_box(store, table, tmp_path):
    import mlflow

    numeric = table[["income", "debt", "label"]]
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression().fit(numeric[["income", "debt"]], numeric["label"])

    def proba(frame):  # MLflow wraps a function as a pyfunc with no other flavour
        return model.predict_proba(frame[["income", "debt"]])

    with mlflow.start_run() as run:
        result = mlflow.models.evaluate(
            proba, numeric, targets="label", model_type="classifier", evaluators=["auditkit"],
            evaluator_config={"auditkit": {"probes": PROBES, "out": str(tmp_path / "out")}},
        )
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert audit["model"]["format"] == "mlflow pyfunc"  # predict as a black box
    _assert_run_matches(run.info.run_id, audit)
    assert result.metrics["auditkit.performance.accuracy"] > 0.6
