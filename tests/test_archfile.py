"""Architecture files (contract E): weights + a registered recipe, scanned with no flags; a
tampered file is one line and exit 2, and nothing in it is executed."""

from __future__ import annotations

import json
import struct
import sys
import textwrap

import pytest
import torch
from typer.testing import CliRunner

from auditkit.cli import app
from auditkit.errors import AuditkitInputError
from auditkit.loading import load_model
from auditkit.loading.archfile import HEADER_KEY, load_arch_model, read_header, save_arch_model

PLUGIN = textwrap.dedent('''
    import torch
    from torch import nn

    CALLS = []


    class TinyNet(nn.Module):
        def __init__(self, width, classes):
            super().__init__()
            self.hidden = nn.Linear(width, 8)
            self.head = nn.Linear(8, classes)
            self.register_buffer("offset", torch.zeros(width))

        def forward(self, x):
            return self.head(torch.relu(self.hidden(x - self.offset)))


    def tiny(width=4, classes=2):
        CALLS.append((width, classes))
        return TinyNet(width, classes)


    def blobs(n=60, seed=0):
        from auditkit.data import AuditData

        g = torch.Generator().manual_seed(seed)
        y = torch.arange(n) % 2
        x = torch.randn(n, 4, generator=g) * 0.3 + y[:, None].float() * 2 - 1
        return AuditData(name="blobs", x=x, y=y, modality="tabular", input_range=None,
                         synthetic=True, description="two Gaussian blobs")


    class Tagged:
        pass


    def tagging_adapter(model, data, *, metadata, device, format, tag="none"):
        from auditkit.adapters import TorchModelAdapter

        adapter = TorchModelAdapter(model, input_shape=data.input_shape, num_classes=2,
                                    input_range=None, device=device, format=format)
        adapter.format = f"tagged {tag}"
        return adapter
''')


@pytest.fixture()
def arch_plugin(tmp_path, monkeypatch):
    """An installed distribution 'archplugin 0.1' registering an architecture, data, adapter."""
    dist_info = tmp_path / "archplugin-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: archplugin\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text(
        "[auditkit.architectures]\ntiny = archplugin_mod:tiny\n"
        "[auditkit.datasets]\nblobs = archplugin_mod:blobs\n"
        "[auditkit.adapters]\ntagging = archplugin_mod:tagging_adapter\n"
    )
    (tmp_path / "archplugin_mod.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "archplugin_mod", raising=False)
    yield sys.modules.get("archplugin_mod")
    sys.modules.pop("archplugin_mod", None)


def _saved(tmp_path, **kwargs):
    import archplugin_mod

    torch.manual_seed(0)
    net = archplugin_mod.tiny(width=4, classes=2)
    data = archplugin_mod.blobs()
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(60):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(data.x), data.y).backward()
        opt.step()
    path = tmp_path / "tiny.safetensors"
    save_arch_model(
        net, path, architecture="tiny", params={"width": 4, "classes": 2},
        metadata={"input_shape": [4], "class_names": ["a", "b"], "modality": "tabular"},
        data={"name": "blobs", "params": {"n": 60}}, **kwargs,
    )
    return net, path


def test_round_trip_rebuilds_the_same_function(arch_plugin, tmp_path):
    net, path = _saved(tmp_path)
    module, header = load_arch_model(path)
    x = torch.randn(5, 4)
    assert torch.allclose(module(x), net(x))
    assert header["architecture"] == {"name": "tiny", "params": {"width": 4, "classes": 2}}
    loaded = load_model(path)
    assert loaded.format == "auditkit-arch" and loaded.arch == "tiny"
    assert loaded.metadata.class_names == ("a", "b")
    assert loaded.metadata.extra["data"] == {"name": "blobs", "params": {"n": 60}}


def test_scan_needs_no_flags_and_uses_the_named_adapter(arch_plugin, tmp_path):
    _, path = _saved(tmp_path, adapter={"name": "tagging", "params": {"tag": "from-file"}})
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app, ["scan", str(path), "--probes", "performance", "--budget", "fast", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    audit = json.loads((out / "audit.json").read_text())
    assert audit["data"]["name"] == "blobs" and audit["data"]["n"] == 60
    assert audit["probes"]["performance"]["metrics"]["accuracy"] > 0.9
    assert audit["model"]["adapter"]["format"] == "tagged from-file"


def _rewrite_header(path, mutate):
    """Rewrite the JSON in a safetensors header, keeping the tensor bytes (a tampered file)."""
    raw = path.read_bytes()
    (size,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + size])
    mutate(header)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    path.write_bytes(struct.pack("<Q", len(text)) + text + raw[8 + size :])


def _tamper_arch(field, value):
    def mutate(header):
        inner = json.loads(header["__metadata__"][HEADER_KEY])
        inner["architecture"][field] = value
        header["__metadata__"][HEADER_KEY] = json.dumps(inner)

    return mutate


def _tamper_json(header):
    header["__metadata__"][HEADER_KEY] = "{not json"


def _tamper_shape(header):
    inner = json.loads(header["__metadata__"][HEADER_KEY])
    inner["architecture"]["params"]["width"] = 5
    header["__metadata__"][HEADER_KEY] = json.dumps(inner)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_tamper_json, "architecture header is malformed"),
        (_tamper_arch("name", "os_system"), "architecture 'os_system' is not registered"),
        (_tamper_arch("params", {"width": 4, "evil": 1}), "cannot be built"),
        (_tamper_shape, "the weights do not fit architecture 'tiny'"),
    ],
)
def test_tampered_files_are_one_line_exit_2(arch_plugin, tmp_path, mutate, expected):
    _, path = _saved(tmp_path)
    _rewrite_header(path, mutate)
    with pytest.raises(AuditkitInputError, match=expected):
        load_model(path)
    result = CliRunner().invoke(app, ["scan", str(path), "--probes", "performance"])
    assert result.exit_code == 2
    assert expected in result.output and "Traceback" not in result.output


def test_huge_parameters_never_allocate(arch_plugin, tmp_path):
    _, path = _saved(tmp_path)

    def mutate(header):
        inner = json.loads(header["__metadata__"][HEADER_KEY])
        inner["architecture"]["params"]["width"] = 10**12  # 4 TB of weights if ever allocated
        header["__metadata__"][HEADER_KEY] = json.dumps(inner)

    _rewrite_header(path, mutate)
    with pytest.raises(AuditkitInputError, match="do not fit"):
        load_arch_model(path)


def test_plain_safetensors_is_not_an_architecture_file(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(path))
    assert read_header(path) is None
    with pytest.raises(AuditkitInputError, match="--arch"):
        load_model(path)


def test_truncated_file_is_refused(arch_plugin, tmp_path):
    _, path = _saved(tmp_path)
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(AuditkitInputError):
        load_model(path)


def test_arch_flag_is_refused_for_an_architecture_file(arch_plugin, tmp_path):
    _, path = _saved(tmp_path)
    with pytest.raises(AuditkitInputError, match="carries its own network"):
        load_model(path, arch="torchvision:resnet18")
