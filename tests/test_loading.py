"""Loading: every format loads from its content, pickles are refused without running anything,
damaged files are one clear line."""

from __future__ import annotations

import hashlib
import io
import json
import os
import pickle
import shutil
import sys
import warnings
import zipfile

import pytest
import torch
from torch import nn

from auditkit.errors import AuditkitInputError
from auditkit.loading import ModelMetadata, load_model, save_model, sniff_format

FACTORY_MODULE = "auditkit_test_nets"
FACTORY_SOURCE = '''
import torch
from torch import nn


def tiny():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))


def wrong():
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))


def broken():
    raise RuntimeError("factory exploded")


def not_a_module():
    return 42
'''

META = ModelMetadata(
    input_shape=(1, 8, 8),
    input_range=(0.0, 1.0),
    mean=(0.3,),
    std=(0.4,),
    class_names=tuple("abcdefghij"),
    dataset="digits",
    modality="image",
    extra={"trained_by": "test"},
)


def tiny_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()


X = torch.rand(7, 1, 8, 8, generator=torch.Generator().manual_seed(1))


class CreatesFile:
    """A pickle payload: unpickling it calls ``open(path, "w")``, i.e. creates a file."""

    def __init__(self, path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


@pytest.fixture()
def factories(tmp_path, monkeypatch):
    """A ``module:factory`` importable for ``--arch``, as a user's own package would be."""
    (tmp_path / f"{FACTORY_MODULE}.py").write_text(FACTORY_SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, FACTORY_MODULE, raising=False)
    yield FACTORY_MODULE
    sys.modules.pop(FACTORY_MODULE, None)


@pytest.fixture(scope="module")
def export_file(tmp_path_factory):
    """A tiny network saved by auditkit (dynamic batch, metadata embedded)."""
    net = tiny_net()
    path = tmp_path_factory.mktemp("export") / "tiny.pt2"
    save_model(net, path, example_input=X[:2], metadata=META)
    return path, net


@pytest.fixture(scope="module")
def foreign_export_file(tmp_path_factory):
    """Someone else's export: plain torch.export.save, static batch of 2, no auditkit metadata."""
    net = tiny_net(seed=3)
    program = torch.export.export(net, (X[:2],))
    path = tmp_path_factory.mktemp("foreign") / "theirs.pt2"
    torch.export.save(program, path)
    return path, net


def _assert_same_function(loaded: nn.Module, reference: nn.Module, x: torch.Tensor = X) -> None:
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), reference(x), rtol=1e-5, atol=1e-5)


def _one_line_error(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message.strip() == message
    return message


# --- the formats ------------------------------------------------------------------------------


def test_auditkit_export_round_trips_metadata_hash_and_predictions(export_file):
    path, net = export_file
    loaded = load_model(path)
    assert loaded.format == "torch.export"
    assert loaded.metadata == META  # every field travels inside the archive
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.describe()["num_classes"] == 10 and loaded.describe()["sha256"] == loaded.sha256
    # The batch dimension is dynamic: one example, a few, and more than a default batch.
    for n in (1, 3, 600):
        x = torch.rand(n, 1, 8, 8)
        _assert_same_function(loaded.module, net, x)


def test_foreign_export_without_metadata_runs_on_any_batch_size(foreign_export_file):
    path, net = foreign_export_file
    loaded = load_model(path)
    assert loaded.format == "torch.export"
    assert loaded.metadata.class_names is None and loaded.metadata.dataset is None
    # The program itself states the example shape, so a mismatching --data can name both.
    assert loaded.metadata.input_shape == (1, 8, 8)
    for n in (1, 2, 5):  # traced with batch 2 only
        _assert_same_function(loaded.module, net, X[:n])
    x = X[:5].clone().requires_grad_(True)
    loaded.module(x).sum().backward()
    torch.testing.assert_close(x.grad, net[1].weight.sum(0).view(1, 1, 8, 8).expand(5, 1, 8, 8))


def test_torchscript_loads_with_and_without_embedded_metadata(tmp_path):
    net = tiny_net()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript is deprecated but must still load
        scripted = torch.jit.trace(net, X[:2])
        torch.jit.save(scripted, tmp_path / "with.pt",
                       _extra_files={"auditkit.json": json.dumps(META.to_dict())})
        torch.jit.save(scripted, tmp_path / "without.pt")
        with_meta = load_model(tmp_path / "with.pt")
        without = load_model(tmp_path / "without.pt")
    assert with_meta.format == without.format == "torchscript"
    assert with_meta.metadata == META
    assert without.metadata == ModelMetadata()
    _assert_same_function(with_meta.module, net)
    _assert_same_function(without.module, net)


def test_state_dict_loads_into_a_module_factory(tmp_path, factories):
    net = tiny_net(seed=5)
    path = tmp_path / "weights.pt"
    torch.save(net.state_dict(), path)
    loaded = load_model(path, arch=f"{factories}:tiny")
    assert loaded.format == "torch.save" and loaded.arch == f"{factories}:tiny"
    _assert_same_function(loaded.module, net)  # the factory's random init was replaced

    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path)
    assert "--arch" in _one_line_error(excinfo)


def test_wrong_architecture_is_one_clear_error(tmp_path, factories):
    path = tmp_path / "weights.pt"
    torch.save(tiny_net().state_dict(), path)
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path, arch=f"{factories}:wrong")
    message = _one_line_error(excinfo)
    assert f"--arch {factories}:wrong" in message and "do not fit" in message
    # The reason names what does not fit, not just torch's header line.
    assert "size mismatch" in message or "Missing key" in message or "Unexpected key" in message

    for arch, needle in [
        ("no_such_package_xyz:net", "no_such_package_xyz"),
        (f"{factories}:missing", "missing"),
        (f"{factories}:broken", "factory exploded"),
        (f"{factories}:not_a_module", "not an nn.Module"),
        ("resnet18", "torchvision:NAME or module:factory"),
    ]:
        with pytest.raises(AuditkitInputError) as excinfo:
            load_model(path, arch=arch)
        assert needle in _one_line_error(excinfo), arch


def test_state_dict_loads_into_a_torchvision_architecture(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = torchvision.models.mobilenet_v3_small(num_classes=7).eval()
    path = tmp_path / "mobilenet.bin"
    torch.save(net.state_dict(), path)
    loaded = load_model(path, arch="torchvision:mobilenet_v3_small")
    # num_classes=7 was read off the classifier's weight, so the weights fit.
    _assert_same_function(loaded.module.eval(), net, torch.rand(2, 3, 32, 32))
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path, arch="torchvision:not_a_network")
    assert "not_a_network" in _one_line_error(excinfo)


def test_safetensors_with_arch_and_embedded_metadata(tmp_path, factories):
    from safetensors.torch import save_file

    net = tiny_net(seed=7)
    path = tmp_path / "model.safetensors"
    save_file(net.state_dict(), path, metadata={"auditkit.json": json.dumps(META.to_dict())})
    loaded = load_model(path, arch=f"{factories}:tiny")
    assert loaded.format == "safetensors"
    assert loaded.metadata == META
    _assert_same_function(loaded.module, net)


def test_training_checkpoint_dict_with_data_parallel_prefix(tmp_path, factories):
    net = tiny_net(seed=9)
    checkpoint = {
        "epoch": 12,
        "state_dict": {f"module.{k}": v for k, v in net.state_dict().items()},
        "optimizer": {"lr": 0.1},
        "auditkit.json": META.to_dict(),
    }
    path = tmp_path / "checkpoint.ckpt"
    torch.save(checkpoint, path)
    loaded = load_model(path, arch=f"{factories}:tiny")
    _assert_same_function(loaded.module, net)
    assert loaded.metadata == META


@pytest.mark.parametrize("name", ["model.bin", "model.onnx", "model", "model.txt"])
def test_extension_is_ignored(tmp_path, export_file, name):
    path, net = export_file
    renamed = tmp_path / name
    shutil.copyfile(path, renamed)
    loaded = load_model(renamed)
    assert loaded.format == "torch.export"
    assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert loaded.metadata == META
    _assert_same_function(loaded.module, net)


# --- pickles ----------------------------------------------------------------------------------


def test_pickled_module_is_refused_and_explains_unsafe_pickle(tmp_path):
    path = tmp_path / "whole-model.pt"
    torch.save(tiny_net(), path)
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path)
    message = _one_line_error(excinfo)
    assert "--unsafe-pickle" in message and "refused" in message
    assert "torch.nn.modules.container.Sequential" in message  # says what it would import


def test_unsafe_pickle_loads_a_trusted_pickled_module(tmp_path):
    net = tiny_net(seed=11)
    torch.save(net, tmp_path / "torch-save.pt")
    with open(tmp_path / "plain.pkl", "wb") as fh:
        pickle.dump(net, fh)
    for name in ("torch-save.pt", "plain.pkl"):
        loaded = load_model(tmp_path / name, unsafe_pickle=True)
        assert isinstance(loaded.module, nn.Module), name
        _assert_same_function(loaded.module, net)


def _write_torch_save(obj, path):
    torch.save(obj, path)


def _write_legacy_torch_save(obj, path):
    torch.save(obj, path, _use_new_zipfile_serialization=False)


def _write_pickle(obj, path):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def _write_pickle_protocol0(obj, path):
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=0)


@pytest.mark.parametrize(
    "writer", [_write_torch_save, _write_legacy_torch_save, _write_pickle, _write_pickle_protocol0]
)
def test_malicious_pickle_executes_nothing(tmp_path, writer):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    writer({"weights": CreatesFile(marker)} if "torch" in writer.__name__ else CreatesFile(marker),
           path)
    assert not marker.exists()
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path)
    assert "--unsafe-pickle" in _one_line_error(excinfo)
    assert not marker.exists(), "refusing the file must not run its payload"
    with pytest.raises(AuditkitInputError):  # safe even when an --arch is given
        load_model(path, arch="torchvision:resnet18")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_the_payload_is_live_when_the_user_vouches_for_it(tmp_path):
    """Control for the test above: the same payload does run once --unsafe-pickle is passed."""
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    _write_torch_save(CreatesFile(marker), path)
    with pytest.raises(AuditkitInputError):  # the result is a file handle, not a model
        load_model(path, unsafe_pickle=True)
    assert marker.exists()


def _tamper_export(source, target, marker, member_suffix, config_flag=None):
    """Copy an export archive, replacing one member by a pickle that creates ``marker``."""
    buffer = io.BytesIO()
    torch.save(CreatesFile(marker), buffer)
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(target, "w") as out:
        for info in src.infolist():
            data = src.read(info.filename)
            if info.filename.endswith(member_suffix):
                data = buffer.getvalue()
            if config_flag and info.filename.endswith(config_flag[0]):
                config = json.loads(data)
                config["config"][config_flag[1]]["use_pickle"] = True
                data = json.dumps(config).encode()
            out.writestr(info, data)


@pytest.mark.parametrize(
    "member, config_flag",
    [
        # torch.export.load unpickles sample inputs with a silent weights_only=False fallback,
        ("sample_inputs/model.pt", None),
        # and weights marked use_pickle with weights_only=False.
        ("weights/weight_0", ("model_weights_config.json", "1.weight")),
    ],
)
def test_malicious_export_archive_executes_nothing(tmp_path, export_file, member, config_flag):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "crafted.pt2"
    _tamper_export(export_file[0], crafted, marker, member, config_flag)
    assert sniff_format(crafted) == "torch.export"
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(crafted)
    message = _one_line_error(excinfo)
    assert "--unsafe-pickle" in message and "pickled" in message
    assert not marker.exists(), "loading an export archive must not run pickled payloads"
    # Control: without auditkit's guard, torch.export.load itself runs the payload.
    with pytest.raises(AuditkitInputError):
        load_model(crafted, unsafe_pickle=True)
    assert marker.exists(), "torch no longer unpickles this member; revisit the guard"


# --- damaged and foreign files ----------------------------------------------------------------


def _formats(tmp_path, export_file, factories):
    net = tiny_net()
    files = {"export": export_file[0]}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(net, X[:2]), tmp_path / "script.pt")
    files["torchscript"] = tmp_path / "script.pt"
    torch.save(net.state_dict(), tmp_path / "state.pt")
    files["state_dict"] = tmp_path / "state.pt"
    from safetensors.torch import save_file

    save_file(net.state_dict(), tmp_path / "weights.safetensors")
    files["safetensors"] = tmp_path / "weights.safetensors"
    return files


def test_truncated_files_of_every_format_are_one_line_errors(tmp_path, export_file, factories):
    for kind, path in _formats(tmp_path, export_file, factories).items():
        # --arch only for weight files: a file carrying its own network refuses it.
        arch = f"{factories}:tiny" if kind in ("state_dict", "safetensors") else None
        assert load_model(path, arch=arch).module is not None  # intact loads
        data = path.read_bytes()
        for cut in (len(data) // 2, len(data) - 40, 100):
            broken = tmp_path / f"{kind}-cut{cut}.bin"
            broken.write_bytes(data[:cut])
            with pytest.raises(AuditkitInputError) as excinfo:
                load_model(broken, arch=arch)
            message = _one_line_error(excinfo)
            assert message.startswith(str(broken)), (kind, cut, message)


@pytest.mark.parametrize(
    "content, needle",
    [
        (b"", "empty"),
        (bytes([0x80]) + bytes(range(256)) * 4, "truncated or corrupt"),
        (bytes(reversed(range(256))) * 8, "not a model file"),
        (b"hello, this is a README\nnot a model\n", "not a model file"),
        (b"PK\x03\x04" + b"\x00" * 64, "truncated or corrupt"),
        (b"(lp0\n.", "truncated or corrupt"),  # a pickled empty list: not a model
    ],
    ids=["empty", "pickle-opcode-garbage", "random", "text", "zip-header-only", "empty-list"],
)
def test_foreign_files_are_one_line_errors(tmp_path, content, needle):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path)
    assert needle in _one_line_error(excinfo)


def test_missing_file_and_directory_are_named(tmp_path):
    with pytest.raises(AuditkitInputError, match="no such file"):
        load_model(tmp_path / "absent.pt2")
    with pytest.raises(AuditkitInputError, match="is a directory"):
        load_model(tmp_path)


def test_state_dict_that_is_not_weights_is_refused_clearly(tmp_path):
    path = tmp_path / "numbers.pt"
    torch.save({"epoch": 3, "loss": 0.5}, path)
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path, arch="torchvision:resnet18")
    assert "not a model file" in _one_line_error(excinfo)


def test_sha256_is_the_file_hash_for_every_format(tmp_path, export_file, factories):
    for kind, path in _formats(tmp_path, export_file, factories).items():
        arch = f"{factories}:tiny" if kind in ("state_dict", "safetensors") else None
        loaded = load_model(path, arch=arch)
        assert loaded.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
        assert loaded.path == str(path)


def test_save_model_restores_training_mode_and_fills_input_shape(tmp_path):
    net = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(64, 10)).train()
    path = save_model(net, tmp_path / "m.pt2", example_input=X[:2])
    assert net.training, "saving must not leave the caller's model in eval mode"
    loaded = load_model(path)
    assert loaded.metadata.input_shape == (1, 8, 8)
    net.eval()
    _assert_same_function(loaded.module, net)  # exported in eval mode: dropout off
    assert os.path.getsize(path) > 0


# --- someone else's export, scanned with --data alone -----------------------------------------


@pytest.fixture(scope="module")
def digits_linear(digits_data):
    """A linear classifier trained in a blink on normalized digits ((x - 0.3) / 0.4)."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    train = digits_data.train
    optimizer = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        nn.functional.cross_entropy(net((train.x - 0.3) / 0.4), train.y).backward()
        optimizer.step()
    net.eval()
    with torch.no_grad():
        accuracy = float((net((digits_data.x - 0.3) / 0.4).argmax(-1) == digits_data.y)
                         .float().mean())
    assert accuracy > 0.9
    return net, accuracy


def _cli_scan(model_file, out, *flags):
    from typer.testing import CliRunner

    from auditkit.cli import app

    res = CliRunner().invoke(app, ["scan", str(model_file), "--out", str(out), "--probes",
                                   "performance", "--device", "cpu", *flags])
    assert res.exit_code == 0, res.output
    return json.loads((out / "audit.json").read_text())


def test_foreign_export_scans_with_data_alone_and_flags_override(tmp_path, digits_linear,
                                                                  digits_data):
    net, accuracy = digits_linear
    path = tmp_path / "theirs.pt2"
    # Their export expects normalized inputs and has a fixed batch of 4; no auditkit metadata.
    torch.export.save(torch.export.export(net, (digits_data.x[:4],)), path)

    plain = _cli_scan(path, tmp_path / "plain", "--data", "digits")
    assert plain["model"]["format"] == "torch.export"
    assert plain["data"]["n"] == 540
    assert plain["model"]["adapter"]["input_shape"] == [1, 8, 8]
    assert plain["model"]["adapter"]["input_range"] == [0.0, 1.0]  # the data's box

    flagged = _cli_scan(path, tmp_path / "flagged", "--data", "digits", "--mean", "0.3",
                        "--std", "0.4", "--input-range", "0,2")
    assert flagged["probes"]["performance"]["metrics"]["accuracy"] == pytest.approx(accuracy)
    assert flagged["model"]["adapter"]["input_range"] == [0.0, 2.0]
    # Without the normalization it expects, the model is measurably worse: the flags matter.
    assert plain["probes"]["performance"]["metrics"]["accuracy"] < accuracy - 0.02


def test_unsafe_pickle_of_an_unimportable_class_is_one_line(tmp_path, monkeypatch):
    module = tmp_path / "gone_module.py"
    module.write_text("from torch import nn\n\nclass Gone(nn.Linear):\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module

    torch.save(gone_module.Gone(64, 10), tmp_path / "gone.pt")
    monkeypatch.delitem(sys.modules, "gone_module")
    module.unlink()  # the class's code is not installed where the audit runs
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(tmp_path / "gone.pt", unsafe_pickle=True)
    assert "gone_module" in _one_line_error(excinfo)


# --- malformed embedded metadata -----------------------------------------------------------------


def _export_with_metadata(net, path, metadata) -> str:
    """An export whose auditkit.json says ``metadata`` (dict dumped as JSON, or raw text)."""
    program = torch.export.export(net, (X[:2],), dynamic_shapes=({0: torch.export.Dim("b")},))
    text = metadata if isinstance(metadata, str) else json.dumps(metadata)
    torch.export.save(program, path, extra_files={"auditkit.json": text})
    return path


def test_a_scalar_mean_and_std_mean_one_value_for_every_channel(tmp_path, digits_linear):
    """A hand-written {"mean": 0.3} must not silently drop the normalization."""
    import auditkit

    net, accuracy = digits_linear
    good = META.to_dict()
    scalar = {**good, "mean": 0.3, "std": 0.4}
    _export_with_metadata(net, tmp_path / "scalar.pt2", scalar)
    loaded = load_model(tmp_path / "scalar.pt2")
    assert loaded.metadata.mean == (0.3,) and loaded.metadata.std == (0.4,)
    result = auditkit.scan(tmp_path / "scalar.pt2", "digits", probes=["performance"],
                           device="cpu")
    assert result.metrics["performance.accuracy"] == pytest.approx(accuracy)


@pytest.mark.parametrize(("field", "value", "flag"), [
    ("mean", "0.3", "--mean"),
    ("std", [0.4, "x"], "--std"),
    ("input_shape", [1, 8.5, 8], "--input-shape"),
    ("input_range", [1.0, 0.0], "--input-range"),
    ("class_names", "0123456789", None),
    ("extra", [1, 2], None),
])
def test_malformed_metadata_is_one_line_naming_the_file_and_field(tmp_path, field, value, flag):
    path = _export_with_metadata(tiny_net(), tmp_path / "odd.pt2", {**META.to_dict(), field: value})
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path)
    message = _one_line_error(excinfo)
    assert str(path) in message and f"{field}=" in message
    assert "auditkit.save_model" in message
    assert (flag in message) if flag else ("override" not in message)


def test_metadata_that_is_not_json_is_one_line(tmp_path):
    path = _export_with_metadata(tiny_net(), tmp_path / "odd.pt2", "{mean: [0.3]")
    with pytest.raises(AuditkitInputError) as excinfo:
        load_model(path)
    assert "not valid JSON" in _one_line_error(excinfo) and str(path) in str(excinfo.value)


def test_an_override_replaces_a_malformed_field_instead_of_reading_it(tmp_path):
    path = _export_with_metadata(tiny_net(), tmp_path / "odd.pt2",
                                 {**META.to_dict(), "mean": "0.3", "std": "0.4"})
    loaded = load_model(path, overrides=ModelMetadata(mean=(0.25,), std=(0.5,)))
    assert loaded.metadata.mean == (0.25,) and loaded.metadata.std == (0.5,)
    assert loaded.metadata.class_names == META.class_names  # the rest is still read


def test_weights_hash_covers_bfloat16_dtype_and_shape():
    from auditkit.loading import weights_sha256

    torch.manual_seed(0)
    net = nn.Linear(4, 2).to(torch.bfloat16)
    digest = weights_sha256(net)
    assert digest == weights_sha256(net)
    half = nn.Linear(4, 2)
    half.load_state_dict({k: v.float() for k, v in net.state_dict().items()})
    # Same values in another dtype are another model.
    assert weights_sha256(half.to(torch.float16)) != digest
    # Same bytes, other shape: the shapes are hashed too.
    flat = {k: v.reshape(-1) for k, v in net.state_dict().items()}
    reshaped = nn.Module()
    for k, v in flat.items():
        reshaped.register_buffer(k, v)
    squeezed = nn.Module()
    for k, v in net.state_dict().items():
        squeezed.register_buffer(k, v.clone())
    assert weights_sha256(squeezed) == digest
    assert weights_sha256(reshaped) != digest
