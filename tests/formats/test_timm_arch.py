"""``--arch timm:NAME``: a timm network rebuilt offline for a state_dict or safetensors file."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from auditkit.cli import app

timm = pytest.importorskip("timm")

ARCH = "timm:test_resnet"  # timm's own tiny test network: fast, and nothing is downloaded


@pytest.fixture(scope="module")
def timm_net():
    """A 1-channel, 10-class test_resnet (random weights) for the 8x8 digits."""
    torch.manual_seed(0)
    return timm.create_model("test_resnet", pretrained=False, num_classes=10, in_chans=1).eval()


def _save(net, folder, kind):
    if kind == "safetensors":
        from safetensors.torch import save_file

        path = folder / "weights.safetensors"
        save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(path))
    else:
        path = folder / "weights.pt"
        torch.save(net.state_dict(), path)
    return path


def test_a_timm_state_dict_scans_with_arch_timm_and_its_pretrained_config(timm_net, tmp_path,
                                                                         digits_data):
    import numpy as np

    path = _save(timm_net, tmp_path, "state_dict")
    data = tmp_path / "digits-150.npz"  # the network sees 160x160 images: keep the scan short
    np.savez(data, x=digits_data.x[:150].numpy(), y=digits_data.y[:150].numpy())
    out = tmp_path / "out"
    res = CliRunner().invoke(app, ["scan", str(path), "--arch", ARCH, "--data", str(data),
                                   "--out", str(out), "--probes", "performance"])
    assert res.exit_code in (0, 1), res.output  # random weights: the grade is not the point
    audit = json.loads((out / "audit.json").read_text())
    model = audit["model"]
    assert model["arch"] == ARCH and model["num_classes"] == 10
    cfg = timm.models.get_pretrained_cfg("test_resnet")
    # the 3-channel config's mean/std, averaged for the 1-channel network the weights describe
    assert model["adapter"]["mean"] == pytest.approx([sum(cfg.mean) / 3])
    assert model["adapter"]["std"] == pytest.approx([sum(cfg.std) / 3])
    assert model["metadata"]["extra"]["timm"]["input_size"] == list(cfg.input_size)
    assert audit["probes"]["performance"]["status"] != "error"


@pytest.mark.parametrize("kind", ["state_dict", "safetensors"])
def test_the_loaded_timm_network_is_the_saved_one_at_its_input_size(kind, timm_net, tmp_path,
                                                                      digits_data):
    from auditkit.loading import load_model

    loaded = load_model(_save(timm_net, tmp_path, kind), arch=ARCH)
    assert loaded.metadata.extra["timm"]["input_size"] is not None
    x = digits_data.x[:8]
    size = timm.models.get_pretrained_cfg("test_resnet").input_size[1:]
    with torch.no_grad():
        expected = timm_net(torch.nn.functional.interpolate(x, size=size, mode="bilinear"))
        assert torch.allclose(loaded.module.eval()(x), expected, atol=1e-5)


def test_an_unknown_timm_name_is_one_line_exit_2(timm_net, tmp_path):
    path = _save(timm_net, tmp_path, "state_dict")
    res = CliRunner().invoke(app, ["scan", str(path), "--arch", "timm:no_such_net", "--data",
                                   "digits", "--out", str(tmp_path / "out")])
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "timm has no model 'no_such_net'" in lines[0]
