"""The bounds refuse hostile files, not real ones: a benign ONNX model, skops pipelines (a
linear model, a decision tree and a k-nearest-neighbours model), an architecture file, a parquet
table and an image folder still scan (exit 0 or 1, an audit written). Only the architecture
file makes a trip to the sandbox child (its factory build and first forward pass), which
succeeds."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from auditkit import sandbox
from auditkit.cli import app

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("skops")
pytest.importorskip("pyarrow")

FAST = ["--probes", "performance", "--budget", "fast", "--device", "cpu"]


def _scan(tmp_path, *argv, child=False):
    out = tmp_path / "out"
    sandbox.LAST_REPORT.clear()
    res = CliRunner().invoke(app, ["scan", *map(str, argv), "--out", str(out), *FAST])
    assert res.exit_code in (0, 1), res.output
    if child:
        assert [r.reason for r in sandbox.LAST_REPORT] == ["ok"], sandbox.LAST_REPORT
    else:
        assert not sandbox.LAST_REPORT, "a benign file went to the sandbox child"
    return json.loads((out / "audit.json").read_text())


@pytest.fixture(scope="module")
def digits_table(tmp_path_factory):
    import pandas as pd
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    frame = pd.DataFrame(x[:300], columns=[f"p{i}" for i in range(64)])
    frame["label"] = y[:300]
    path = tmp_path_factory.mktemp("table") / "digits.parquet"
    frame.to_parquet(path)
    return path, frame


def test_a_benign_onnx_model_still_scans(tmp_path, demo_model, digits_data, onnx_export):
    path = onnx_export(demo_model.eval(), tmp_path / "cnn.onnx", digits_data.x[:2])
    audit = _scan(tmp_path, path)
    assert audit["model"]["format"] == "onnx"
    assert audit["probes"]["performance"]["metrics"]["accuracy"] > 0.8


@pytest.mark.parametrize("kind", ["linear", "tree", "knn"])
def test_a_benign_skops_pipeline_and_parquet_table_still_scan(tmp_path, digits_table, kind):
    import skops.io as sio
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.tree import DecisionTreeClassifier

    path, frame = digits_table
    last = {
        "linear": LogisticRegression(max_iter=300),
        "tree": DecisionTreeClassifier(max_depth=8, random_state=0),
        "knn": KNeighborsClassifier(algorithm="kd_tree"),  # its KD tree validated, no child
    }[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make_pipeline(StandardScaler(), last).fit(frame.drop(columns="label"),
                                                          frame["label"])
    sio.dump(model, tmp_path / "model.skops")
    audit = _scan(tmp_path, tmp_path / "model.skops", "--data", path, "--target", "label")
    assert audit["model"]["format"] == "skops"
    assert audit["probes"]["performance"]["metrics"]["accuracy"] > 0.8


def test_a_benign_architecture_file_still_scans(tmp_path):
    from auditkit_graph.data import SHAPE_CLASSES, SHAPE_POINTS
    from auditkit_graph.models import point_mlp

    from auditkit.loading.archfile import save_arch_model

    torch.manual_seed(0)
    net = point_mlp(num_points=SHAPE_POINTS, num_classes=len(SHAPE_CLASSES), hidden=16)
    path = save_arch_model(
        net, tmp_path / "mlp.safetensors", architecture="point_mlp",
        params={"num_points": SHAPE_POINTS, "num_classes": len(SHAPE_CLASSES), "hidden": 16},
        metadata={"input_shape": [SHAPE_POINTS, 3], "modality": "point_cloud"},
        data={"name": "shapes", "params": {"points": SHAPE_POINTS}})
    audit = _scan(tmp_path, path, child=True)
    assert audit["model"]["format"] == "auditkit-arch"


def test_a_benign_image_folder_still_scans(tmp_path, demo_model_file, digits_data):
    from PIL import Image

    root = tmp_path / "images"
    for i in range(40):
        label = int(digits_data.y[i])
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (digits_data.x[i, 0].numpy() * 255).round().astype(np.uint8)
        Image.fromarray(pixels, mode="L").save(folder / f"{i}.png")
    audit = _scan(tmp_path, demo_model_file, "--data", root)
    assert audit["data"]["n"] == 40
