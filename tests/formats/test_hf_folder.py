"""Hugging Face image classifiers from a local folder: built offline from config + safetensors,
preprocessed inside the model, refused when the folder asks for its own code or pickles."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from auditkit.cli import app

transformers = pytest.importorskip("transformers")

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
LABELS = {"id2label": dict(enumerate(NAMES)), "label2id": {n: i for i, n in enumerate(NAMES)}}


def _save_vit(folder):
    """A tiny ViT (1 channel, 8x8 images, random weights) and its image processor."""
    from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor

    torch.manual_seed(0)
    config = ViTConfig(image_size=8, patch_size=4, num_channels=1, hidden_size=16,
                       num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, **LABELS)
    ViTForImageClassification(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 8, "width": 8}, image_mean=[0.4],
                      image_std=[0.3]).save_pretrained(folder)
    return folder


def _save_resnet(folder):
    """A tiny ResNet whose processor resizes to 16x16 (the digits are 8x8)."""
    from transformers import ConvNextImageProcessor, ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    config = ResNetConfig(num_channels=1, embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1],
                          layer_type="basic", **LABELS)
    ResNetForImageClassification(config).save_pretrained(folder)
    ConvNextImageProcessor(size={"shortest_edge": 16}, image_mean=[0.5],
                           image_std=[0.25]).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory):
    return _save_vit(tmp_path_factory.mktemp("hf") / "tiny-vit")


@pytest.fixture(scope="module")
def resnet_folder(tmp_path_factory):
    return _save_resnet(tmp_path_factory.mktemp("hf") / "tiny-resnet")


def _scan(folder, out, *flags):
    return CliRunner().invoke(app, ["scan", str(folder), "--data", "digits", "--out", str(out),
                                    *flags])


def _one_line_exit_2(res):
    assert res.exit_code == 2, res.output
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in res.output
    return lines[0]


@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_a_saved_pretrained_folder_scans_with_its_own_classes_and_preprocessing(
        kind, vit_folder, resnet_folder, tmp_path):
    folder = {"vit": vit_folder, "resnet": resnet_folder}[kind]
    assert (folder / "model.safetensors").is_file()
    res = _scan(folder, tmp_path / "out", "--probes", "performance,calibration")
    assert res.exit_code in (0, 1), res.output  # random weights: the grade is not the point
    audit = json.loads((tmp_path / "out" / "audit.json").read_text())
    model = audit["model"]
    assert model["format"] == "huggingface"
    assert model["metadata"]["class_names"] == NAMES  # from id2label
    mean, std = {"vit": ([0.4], [0.3]), "resnet": ([0.5], [0.25])}[kind]
    assert model["adapter"]["mean"] == pytest.approx(mean)  # from the image processor
    assert model["adapter"]["std"] == pytest.approx(std)
    assert model["adapter"]["supports_gradients"]
    assert audit["probes"]["performance"]["status"] != "error"


def test_the_adapter_gives_what_the_processor_and_model_give(vit_folder, digits_data):
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    from auditkit.adapters import TorchModelAdapter
    from auditkit.loading import load_model

    loaded = load_model(vit_folder)
    meta = loaded.metadata
    adapter = TorchModelAdapter(loaded.module, input_shape=(1, 8, 8), input_range=(0.0, 1.0),
                                mean=meta.mean, std=meta.std, device="cpu")
    x = digits_data.x[:32]
    processor = AutoImageProcessor.from_pretrained(vit_folder)
    model = AutoModelForImageClassification.from_pretrained(vit_folder).eval()
    pixels = processor(list(x.numpy()), do_rescale=False, input_data_format="channels_first",
                       return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        expected = model(pixel_values=pixels).logits
    assert torch.allclose(adapter.predict_logits(x), expected, atol=1e-5)


def test_a_resnet_is_resized_inside_the_model(resnet_folder, digits_data):
    from auditkit.loading import load_model

    module = load_model(resnet_folder).module
    seen = []
    handle = module.model.register_forward_pre_hook(
        lambda _m, _args, kwargs: seen.append(tuple(kwargs["pixel_values"].shape)),
        with_kwargs=True)
    try:
        module(digits_data.x[:4])
    finally:
        handle.remove()
    assert seen == [(4, 1, 16, 16)]


@pytest.mark.slow  # every probe, memorization's re-training included: minutes on 2 cores
@pytest.mark.parametrize("kind", ["vit", "resnet"])
def test_a_folder_scans_with_no_flags_but_data(kind, vit_folder, resnet_folder, tmp_path,
                                               monkeypatch):
    folder = {"vit": vit_folder, "resnet": resnet_folder}[kind]
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(app, ["scan", str(folder), "--data", "digits"])
    assert res.exit_code in (0, 1), res.output
    audit = json.loads((tmp_path / "auditkit-out" / "audit.json").read_text())
    assert audit["model"]["format"] == "huggingface"
    assert all(p["status"] != "error" for p in audit["probes"].values())


def test_a_config_asking_for_remote_code_is_refused_naming_the_field(
        vit_folder, tmp_path, monkeypatch):
    import shutil

    import transformers.dynamic_module_utils as dynamic

    folder = tmp_path / "remote"
    shutil.copytree(vit_folder, folder)
    config = json.loads((folder / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    (folder / "config.json").write_text(json.dumps(config))

    def never(*_args, **_kwargs):
        raise AssertionError("the folder's own code was imported")

    monkeypatch.setattr(dynamic, "get_class_from_dynamic_module", never)
    line = _one_line_exit_2(_scan(folder, tmp_path / "out"))
    assert "'auto_map'" in line and "remote code" in line


def test_pickle_weights_need_unsafe_pickle(vit_folder, tmp_path):
    from transformers import AutoModelForImageClassification

    folder = tmp_path / "pickled"
    model = AutoModelForImageClassification.from_pretrained(vit_folder)
    model.save_pretrained(folder)  # transformers 5 writes safetensors only: pickle by hand
    (folder / "model.safetensors").unlink()
    torch.save(model.state_dict(), folder / "pytorch_model.bin")
    line = _one_line_exit_2(_scan(folder, tmp_path / "out"))
    assert "pytorch_model.bin" in line and "--unsafe-pickle" in line


# --- hf:ORG/NAME: a snapshot in the local hub cache, offline ----------------------------------
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _cache(root, name, folder):
    """``folder`` laid out as the hub cache holds a download: blobs, a snapshot of links to
    them, and ``refs/main`` naming the snapshot's commit."""
    import hashlib
    import os
    import shutil

    repo = root / ("models--" + name.replace("/", "--"))
    blobs, snapshot = repo / "blobs", repo / "snapshots" / COMMIT
    blobs.mkdir(parents=True)
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        blob = blobs / hashlib.sha256(file.read_bytes()).hexdigest()
        shutil.copy(file, blob)
        (snapshot / file.name).symlink_to(os.path.relpath(blob, snapshot))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    return snapshot


@pytest.fixture()
def offline(monkeypatch):
    """Any attempt to open a network connection fails the test."""
    import socket

    def no_network(*_args, **_kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)


@pytest.mark.parametrize(("kind", "variable"), [("vit", "HF_HUB_CACHE"), ("resnet", "HF_HOME")])
def test_a_model_in_the_hub_cache_scans_by_name_offline(
        kind, variable, vit_folder, resnet_folder, tmp_path, monkeypatch, offline):
    cache = tmp_path / "cache"
    _cache(cache / "hub" if variable == "HF_HOME" else cache, f"tiny/{kind}",
           {"vit": vit_folder, "resnet": resnet_folder}[kind])
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(cache))
    monkeypatch.chdir(tmp_path)
    res = _scan(f"hf:tiny/{kind}", tmp_path / "out", "--probes", "performance")
    assert res.exit_code in (0, 1), res.output
    model = json.loads((tmp_path / "out" / "audit.json").read_text())["model"]
    assert model["format"] == "huggingface" and model["path"] == f"hf:tiny/{kind}"
    assert model["metadata"]["class_names"] == NAMES
    hub = model["metadata"]["extra"]["huggingface"]
    assert hub["name"] == f"tiny/{kind}" and hub["revision"] == COMMIT


def test_a_name_not_in_the_cache_says_where_it_looked_and_how_to_download(
        tmp_path, monkeypatch, offline):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    line = _one_line_exit_2(_scan("hf:tiny/missing", tmp_path / "out"))
    assert str(tmp_path / "cache" / "models--tiny--missing") in line
    assert "hf download tiny/missing" in line and "never downloads" in line


def test_a_revision_the_cache_lacks_is_named(vit_folder, tmp_path, monkeypatch, offline):
    _cache(tmp_path / "cache", "tiny/vit", vit_folder)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    line = _one_line_exit_2(_scan("hf:tiny/vit@v2", tmp_path / "out"))
    assert "no revision 'v2'" in line and COMMIT in line


@pytest.mark.parametrize("name", ["hf:../models--x", "hf:/etc/passwd", "hf:a/b/c",
                                  "hf:tiny/vit@../../x", "hf:tiny/.."])
def test_a_malformed_hub_name_is_refused_in_one_line(name, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    line = _one_line_exit_2(_scan(name, tmp_path / "out"))
    assert "not a Hugging Face model name" in line and "hf:ORG/NAME" in line


def test_a_cached_model_asking_for_remote_code_is_refused(vit_folder, tmp_path, monkeypatch):
    snapshot = _cache(tmp_path / "cache", "tiny/remote", vit_folder)
    config = json.loads((snapshot / "config.json").read_text())
    config["auto_map"] = {"AutoModelForImageClassification": "modeling_evil.EvilModel"}
    (snapshot / "config.json").unlink()
    (snapshot / "config.json").write_text(json.dumps(config))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    line = _one_line_exit_2(_scan("hf:tiny/remote", tmp_path / "out"))
    assert "'auto_map'" in line and "remote code" in line
