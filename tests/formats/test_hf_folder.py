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
