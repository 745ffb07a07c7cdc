"""The core works with auditkit-mlflow uninstalled: its entry points hidden and its package
unimportable, a plain scan still runs, and every MLflow feature exits 2 naming the install."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from auditkit import ModelMetadata, save_model
from auditkit.cli import app


@pytest.fixture
def no_plugin(monkeypatch):
    import auditkit.tracking as tracking

    real = tracking.metadata.entry_points

    def entry_points(**kwargs):
        found = real(**kwargs)
        if kwargs.get("group") == tracking.ENTRY_POINT_GROUP:
            return [e for e in found if not e.value.startswith("auditkit_mlflow")]
        return found

    monkeypatch.setattr(tracking.metadata, "entry_points", entry_points)
    for name in [m for m in sys.modules if m.startswith("auditkit_mlflow")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "auditkit_mlflow", None)  # import auditkit_mlflow fails


@pytest.fixture
def model_and_data(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((60, 4)).astype(np.float32)
    y = (x[:, 0] > 0.5).astype(np.int64)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    torch.manual_seed(0)
    net = torch.nn.Linear(4, 2).eval()
    save_model(net, tmp_path / "m.pt2", example_input=torch.tensor(x[:2]),
               metadata=ModelMetadata(input_shape=(4,), input_range=(0.0, 1.0)))
    return tmp_path / "m.pt2", tmp_path / "d.npz"


def _one_error_line(res) -> str:
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1, res.output
    return lines[0]


def test_plain_scan_runs_without_the_plugin(no_plugin, model_and_data, tmp_path):
    model, data = model_and_data
    res = CliRunner().invoke(app, ["scan", str(model), "--data", str(data), "--probes",
                                   "performance", "--out", str(tmp_path / "out"), "-q"])
    assert res.exit_code in (0, 1), res.output
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["probes"]["performance"]
    assert "auditkit_mlflow" not in {m for m, v in sys.modules.items() if v is not None}


@pytest.mark.parametrize("args", [
    ["scan", "models:/demo/1", "--data", "digits"],
    ["scan", "runs:/0123abcd/model", "--data", "digits"],
    ["diff", "runs:/0123abcd", "runs:/4567ef01"],
])
def test_mlflow_uris_name_the_plugin_to_install(no_plugin, args, tmp_path):
    line = _one_error_line(CliRunner().invoke(app, [*args]))
    assert "auditkit-mlflow" in line and "not installed" in line


def test_mlflow_flag_names_the_plugin_before_the_audit(no_plugin, model_and_data, tmp_path):
    model, data = model_and_data
    res = CliRunner().invoke(app, ["scan", str(model), "--data", str(data), "--out",
                                   str(tmp_path / "out"), "--mlflow"])
    line = _one_error_line(res)
    assert line.startswith("auditkit: error: --mlflow: needs the mlflow plugin")
    assert not (tmp_path / "out" / "audit.json").exists()
