"""Shared fixtures: the demo CNN trained once per session, its data and adapter."""

from __future__ import annotations

import pytest
import torch

# The models here are tiny: one thread is faster than two (and far faster under load). This is
# speed only: the demo trains on one thread whatever the count, so its audit is the same on
# 2 threads (tests/test_golden_demo.py, slow) and tests/test_demo.py checks the weights.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def digits_data():
    from auditkit.data.builtin import digits

    return digits()


@pytest.fixture(scope="session")
def demo_model():
    """The demo's CNN (takes normalized inputs; the adapter applies DIGITS_MEAN/STD)."""
    from auditkit.demo import train_digits_model

    model, _ = train_digits_model(seed=0, epochs=30)
    return model


@pytest.fixture(scope="session")
def demo_model_file(tmp_path_factory, demo_model, digits_data):
    """The demo model saved as a self-describing torch.export archive."""
    from auditkit.demo import digits_metadata
    from auditkit.loading import save_model

    path = tmp_path_factory.mktemp("models") / "digits-cnn.pt2"
    return save_model(demo_model, path, example_input=digits_data.x[:2], metadata=digits_metadata())


@pytest.fixture(scope="session")
def digits_adapter():
    """``make(net, **extra)``: ``net`` as the demo's adapter sees it (8×8 digits in [0, 1],
    normalized inside, on the CPU); usable from fixtures of any scope."""
    from auditkit.adapters import TorchModelAdapter
    from auditkit.demo import DIGITS_MEAN, DIGITS_STD

    def make(net, **extra):
        return TorchModelAdapter(net, input_shape=(1, 8, 8), input_range=(0.0, 1.0),
                                 mean=DIGITS_MEAN, std=DIGITS_STD, device="cpu", **extra)

    return make


@pytest.fixture()
def demo_adapter(demo_model, digits_adapter):
    return digits_adapter(demo_model)


@pytest.fixture()
def demo_context(demo_adapter, digits_data):
    """A fast-budget audit context on the demo model (clean pass done once)."""
    from auditkit.pipeline import build_context

    return build_context(demo_adapter, digits_data, seed=0, budget="fast")


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """`auditkit demo` once per session: it trains the CNN and scans it with every probe."""
    from typer.testing import CliRunner

    from auditkit.cli import app

    out = tmp_path_factory.mktemp("demo") / "auditkit-out"
    res = CliRunner().invoke(app, ["demo", "--out", str(out), "--device", "cpu"])
    return res, out


@pytest.fixture(scope="session")
def onnx_export():
    """``export(model, path, example, edit=None)``: ``model`` as ONNX through the legacy exporter
    (input ``pixels``, output ``scores``, a dynamic batch axis) with the demo's metadata embedded;
    ``edit(proto)`` may change the graph before it is saved. Returns ``path``."""
    onnx = pytest.importorskip("onnx")
    import warnings

    from auditkit.demo import digits_metadata
    from auditkit.loading.onnx import embed_metadata

    def export(model, path, example, edit=None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["pixels"],
                              output_names=["scores"],
                              dynamic_axes={"pixels": {0: "batch"}, "scores": {0: "batch"}})
        proto = onnx.load(str(path))
        embed_metadata(proto, digits_metadata())
        if edit is not None:
            edit(proto)
        onnx.save(proto, str(path))
        return path

    return export


@pytest.fixture(scope="session")
def dynamo_export():
    """``export(model, folder, example, dynamic=True)``: ``torch.onnx.export``'s default path
    today (opset 18+, weights in ``model.onnx.data``) with the demo's metadata embedded; without
    ``dynamic`` the graph takes only ``len(example)`` inputs at a time, as most third-party
    exports do. Returns the ``model.onnx`` path."""
    onnx = pytest.importorskip("onnx")
    import warnings

    from auditkit.demo import digits_metadata
    from auditkit.loading.onnx import embed_metadata

    def export(model, folder, example, dynamic=True):
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "model.onnx"
        shapes = {"dynamic_shapes": ({0: torch.export.Dim("batch")},)} if dynamic else {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=True, external_data=True,
                              **shapes)
        proto = onnx.load(str(path), load_external_data=False)
        embed_metadata(proto, digits_metadata())
        path.write_bytes(proto.SerializeToString())  # the sidecar stays as the exporter wrote it
        return path

    return export
