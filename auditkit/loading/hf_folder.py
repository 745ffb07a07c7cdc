"""Hugging Face image classifiers from a local folder: ``auditkit scan ./vit-folder --data ...``.

A folder written by ``save_pretrained`` (``config.json`` + ``model.safetensors`` +
``preprocessor_config.json``, or a snapshot in the local hub cache) describes everything an
audit needs: the architecture (``model_type``), the class names (``id2label``) and the image
preprocessing (size, mean, std). The network is built by ``AutoModelForImageClassification``
with the hub offline and ``trust_remote_code=False``: a folder whose config asks for its own
Python code (``auto_map``) is refused, never run, and pickle weights (``pytorch_model.bin``)
are read only with ``--unsafe-pickle``. The processor's resize and normalisation happen inside
the audited model (``ResizeTo``, the adapter's mean/std), so attacks perturb the data's pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from auditkit.errors import AuditkitInputError, one_line

FORMAT_HF = "huggingface"
CONFIG = "config.json"
PROCESSOR = "preprocessor_config.json"
SAFETENSORS = ("model.safetensors", "model.safetensors.index.json")
PICKLES = ("pytorch_model.bin", "pytorch_model.bin.index.json")
#: Config fields that make transformers import Python code shipped with the model.
REMOTE_CODE_FIELDS = ("auto_map", "custom_pipelines")

NO_CONFIG = (
    "{path}: is a folder without {config}; pass a model file, or a Hugging Face model folder "
    "(config.json + model.safetensors + preprocessor_config.json)"
)
REMOTE_CODE = (
    "{path}: {file} field {field!r} asks for the model folder's own Python code ({value}); "
    "auditkit never runs remote code: use a model whose architecture transformers ships"
)
NOT_JSON = "{path}: {file} is not a JSON object ({reason}); re-save the folder with save_pretrained"
UNKNOWN_TYPE = (
    "{path}: config.json field 'model_type' = {value!r} is not an architecture transformers "
    "{version} ships; upgrade transformers or use a supported model"
)
NOT_IMAGE_CLASSIFIER = (
    "{path}: {value!r} models are not image classifiers (AutoModelForImageClassification has "
    "none); auditkit audits classifiers"
)
PICKLE_WEIGHTS = (
    "{path}: the weights are a pickle ({name}), which can run code when read; convert them to "
    "model.safetensors (save_pretrained(..., safe_serialization=True)), or pass --unsafe-pickle "
    "if you trust the folder"
)
NO_WEIGHTS = "{path}: no model.safetensors in the folder; save it with save_pretrained"
NO_TRANSFORMERS = (
    "{path}: is a Hugging Face model folder, and transformers is not installed in this "
    "environment; from auditkit's clone run pip install -e '.[hf]'"
)
ARCH_NOT_NEEDED = "--arch {arch}: {path} is a Hugging Face model folder, which names its own " \
    "architecture (config.json), so --arch would be ignored; drop it"


def _read_json(folder: Path, name: str, limit: int) -> dict[str, Any] | None:
    file = folder / name
    if not file.exists():
        return None
    from auditkit.loading import safety

    safety.check_regular_file(file)
    if file.stat().st_size > limit:
        raise AuditkitInputError(NOT_JSON.format(path=folder, file=name,
                                                 reason=f"larger than {limit} bytes"))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise AuditkitInputError(
            NOT_JSON.format(path=folder, file=name, reason=one_line(exc, 100))) from None
    if not isinstance(data, dict):
        raise AuditkitInputError(
            NOT_JSON.format(path=folder, file=name, reason=f"a {type(data).__name__}"))
    return data


def refuse_remote_code(folder: Path, file: str, config: dict[str, Any]) -> None:
    for field in REMOTE_CODE_FIELDS:
        if config.get(field):
            value = one_line(json.dumps(config[field]), 80)
            raise AuditkitInputError(
                REMOTE_CODE.format(path=folder, file=file, field=field, value=value))


def _weights(folder: Path, unsafe_pickle: bool, limits: Any) -> tuple[list[Path], bool]:
    """(weight files, whether they are safetensors), checked before transformers reads them."""
    from auditkit.loading import safety

    if (folder / SAFETENSORS[0]).is_file():
        files = [folder / SAFETENSORS[0]]
    elif (folder / SAFETENSORS[1]).is_file():
        index = _read_json(folder, SAFETENSORS[1], limits.max_metadata_bytes) or {}
        names = sorted(set((index.get("weight_map") or {}).values()))
        files = [folder / n for n in names]
        for file in files:
            if Path(file.name) != Path(file.relative_to(folder)) or not file.is_file():
                raise AuditkitInputError(f"{folder}: {SAFETENSORS[1]} names {file.name!r}, "
                                         "which is not a file in the folder")
    else:
        pickled = [n for n in PICKLES if (folder / n).is_file()]
        if not pickled:
            raise AuditkitInputError(NO_WEIGHTS.format(path=folder))
        if not unsafe_pickle:
            raise AuditkitInputError(PICKLE_WEIGHTS.format(path=folder, name=pickled[0]))
        return [folder / pickled[0]], False
    for file in files:
        safety.check_regular_file(file)
        safety.check_safetensors(file, limits)
    return files, True


@contextmanager
def _offline() -> Iterator[None]:
    """No network: the hub is told it is offline, whatever the user's environment says."""
    saved = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    os.environ.update({k: "1" for k in saved})
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _size(processor: dict[str, Any], config: dict[str, Any]) -> tuple[int, int] | None:
    """The (height, width) the processor resizes to (``shortest_edge`` taken as a square)."""
    size = processor.get("crop_size") if processor.get("do_center_crop") else None
    size = size or processor.get("size") or config.get("image_size")
    if isinstance(size, int):
        return (size, size)
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return (int(size[0]), int(size[1]))
    if isinstance(size, dict):
        if "height" in size and "width" in size:
            return (int(size["height"]), int(size["width"]))
        if "shortest_edge" in size:
            return (int(size["shortest_edge"]),) * 2
    return None


def _class_names(config: dict[str, Any]) -> tuple[str, ...] | None:
    labels = config.get("id2label")
    if not isinstance(labels, dict) or not labels:
        return None
    try:
        return tuple(str(labels[k]) for k in sorted(labels, key=int))
    except ValueError:
        return None


def _build(folder: Path, config: dict[str, Any], safetensors: bool) -> Any:
    try:
        import transformers
    except ImportError:
        raise AuditkitInputError(NO_TRANSFORMERS.format(path=folder)) from None
    from transformers import AutoConfig, AutoModelForImageClassification
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = config.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise AuditkitInputError(UNKNOWN_TYPE.format(
            path=folder, value=model_type, version=transformers.__version__))
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    with _offline():
        hf_config = AutoConfig.from_pretrained(str(folder), local_files_only=True,
                                               trust_remote_code=False)
        if type(hf_config) not in AutoModelForImageClassification._model_mapping:
            raise AuditkitInputError(NOT_IMAGE_CLASSIFIER.format(path=folder, value=model_type))
        try:
            return AutoModelForImageClassification.from_pretrained(
                str(folder), config=hf_config, local_files_only=True, trust_remote_code=False,
                use_safetensors=safetensors)
        except Exception as exc:  # shapes that do not match the config, a damaged file, ...
            raise AuditkitInputError(f"{folder}: transformers cannot build the model "
                                     f"({one_line(exc, 200)})") from None


def load_hf_folder(path: Path, *, arch: Any, unsafe_pickle: bool, limits: Any) -> Any:
    """A ``LoadedModel`` for a Hugging Face image-classifier folder."""
    from auditkit import errors
    from auditkit.loading.metadata import LoadedModel, ModelMetadata, sha256_file
    from auditkit.loading.timm_arch import ResizeTo

    config = _read_json(path, CONFIG, limits.max_metadata_bytes)
    if config is None:
        raise AuditkitInputError(errors.NOT_A_FILE.format(path=path))
    if arch is not None:
        raise AuditkitInputError(ARCH_NOT_NEEDED.format(arch=arch, path=path))
    refuse_remote_code(path, CONFIG, config)
    processor = _read_json(path, PROCESSOR, limits.max_metadata_bytes) or {}
    refuse_remote_code(path, PROCESSOR, processor)
    files, safetensors = _weights(path, unsafe_pickle, limits)
    model = _build(path, config, safetensors).eval()
    normalize = processor.get("do_normalize", bool(processor))
    channels = int(config.get("num_channels") or 3)

    def stats(key: str) -> tuple[float, ...] | None:
        values = processor.get(key) if normalize else None
        if values is None:
            return None
        values = [values] if isinstance(values, (int, float)) else list(values)
        return tuple(float(v) for v in values) * (channels if len(values) == 1 else 1)

    size = _size(processor, config)
    metadata = ModelMetadata(
        input_range=(0.0, 1.0), mean=stats("image_mean"), std=stats("image_std"),
        class_names=_class_names(config), modality="image",
        extra={"huggingface": {"model_type": config.get("model_type"),
                               "architectures": config.get("architectures"),
                               "resize_to": list(size) if size else None}},
    )
    digests = [sha256_file(f) for f in files]
    digest = digests[0] if len(digests) == 1 else hashlib.sha256("".join(digests).encode()).hexdigest()
    return LoadedModel(module=ResizeTo(model, size, output="logits"), format=FORMAT_HF,
                       metadata=metadata, path=str(path), sha256=digest,
                       arch=(config.get("architectures") or [config.get("model_type")])[0])
