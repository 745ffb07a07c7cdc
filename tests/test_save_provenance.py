"""'No flags' means no flags: ``save_model`` records the built-in data set a model was trained on."""

from __future__ import annotations

import json
import zipfile

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.data.builtin import digits
from auditkit.loading import ModelMetadata, save_model
from auditkit.loading.metadata import METADATA_NAME


@pytest.fixture(scope="module")
def digits_model():
    """A linear classifier trained on the digits training split (deterministic, 40 full-batch steps)."""
    data = digits()
    train = data.train
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.1)
    for _ in range(40):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(train.x), train.y).backward()
        optimizer.step()
    return model.eval(), data


def _metadata(path) -> dict:
    with zipfile.ZipFile(path) as archive:
        name = next(n for n in archive.namelist() if n.endswith(METADATA_NAME))
        return json.loads(archive.read(name))


def test_a_model_saved_from_digits_scans_with_no_flags(digits_model, tmp_path):
    model, data = digits_model
    # Training rows, copied (not a view of the data set's tensor): the values identify it.
    path = save_model(model, tmp_path / "digits.pt2", example_input=data.train.x[5:9].clone())
    meta = _metadata(path)
    assert meta["dataset"] == "digits"
    assert meta["input_range"] == [0.0, 1.0] and meta["modality"] == "image"
    res = CliRunner().invoke(app, ["scan", str(path), "--out", str(tmp_path / "out"),
                                   "--budget", "fast", "--probes", "performance", "--device", "cpu"])
    assert res.exit_code == 0, res.output
    audit = json.loads((tmp_path / "out" / "audit.json").read_text(encoding="utf-8"))
    assert audit["probes"]["performance"]["metrics"]["accuracy"] > 0.8


def test_inputs_from_elsewhere_record_no_data_set(digits_model, tmp_path):
    model, data = digits_model
    # Normalized inputs are not the data set's rows: nothing is guessed.
    path = save_model(model, tmp_path / "m.pt2", example_input=(data.x[:2] - 0.5) / 0.5)
    assert _metadata(path)["dataset"] is None


def test_a_declared_data_set_is_kept(digits_model, tmp_path):
    model, data = digits_model
    meta = ModelMetadata(dataset="credit", modality="image")
    path = save_model(model, tmp_path / "m.pt2", example_input=data.x[:2], metadata=meta)
    assert _metadata(path)["dataset"] == "credit"
