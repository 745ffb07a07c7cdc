"""Loading and saving model files: format sniffed from content, never unpickling by default.

A model file is untrusted input. Pickled ``nn.Module`` objects are arbitrary code, so every
``torch.load`` here uses ``weights_only=True``; the only exception is the explicit
``unsafe_pickle=True`` path, which the user has to ask for by name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import pickle
import struct
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditkit import errors
from auditkit.errors import AuditkitInputError

METADATA_NAME = "auditkit.json"

FORMAT_EXPORT = "torch.export"
FORMAT_TORCHSCRIPT = "torchscript"
FORMAT_TORCH_SAVE = "torch.save"  # zip written by torch.save: a state_dict or a pickled module
FORMAT_LEGACY_PICKLE = "pickle"  # pre-1.6 torch.save or a plain pickle
FORMAT_SAFETENSORS = "safetensors"


@dataclass(frozen=True)
class ModelMetadata:
    """What auditkit needs to know about a model, embedded in the files it saves.

    Args:
        input_shape: shape of one example, e.g. ``(1, 8, 8)``.
        input_range: the box inputs live in, e.g. ``(0.0, 1.0)`` for images.
        mean, std: per-channel normalization applied *inside* the adapter.
        class_names: one name per output.
        dataset: name of the data set the model was trained on (the default ``--data``).
        modality: ``image``, ``tabular``, ... (probes pick defaults by it).
    """

    input_shape: tuple[int, ...] | None = None
    input_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    class_names: tuple[str, ...] | None = None
    dataset: str | None = None
    modality: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int | None:
        return len(self.class_names) if self.class_names else None

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> ModelMetadata:
        if not d:
            return cls()

        def tup(key: str, cast: Callable[[Any], Any]) -> tuple | None:
            v = d.get(key)
            return tuple(cast(x) for x in v) if v is not None else None

        return cls(
            input_shape=tup("input_shape", int),
            input_range=tup("input_range", float),
            mean=tup("mean", float),
            std=tup("std", float),
            class_names=tup("class_names", str),
            dataset=d.get("dataset"),
            modality=d.get("modality"),
            extra=dict(d.get("extra") or {}),
        )

    def merged(self, **overrides: Any) -> ModelMetadata:
        """A copy where every override that is not None wins."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


@dataclass
class LoadedModel:
    """A model read from disk, with the facts ``audit.json`` records about the file."""

    module: nn.Module
    format: str
    metadata: ModelMetadata
    path: str | None = None
    sha256: str | None = None
    arch: str | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "format": self.format,
            "arch": self.arch,
            "num_classes": self.metadata.num_classes,
        }


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sniff_format(path: str | Path) -> str:
    """Name the format of a model file from its bytes (the extension is ignored)."""
    path = Path(path)
    if not path.is_file():
        raise AuditkitInputError(errors.NOT_FOUND.format(path=path))
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise AuditkitInputError(errors.EMPTY_FILE.format(path=path))
    if head[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(path) as zf:
                names = zf.namelist()
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise AuditkitInputError(
                errors.CORRUPT_ARCHIVE.format(path=path, reason=str(exc) or type(exc).__name__)
            ) from None
        if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
            return FORMAT_EXPORT
        if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
            return FORMAT_TORCHSCRIPT
        if any(n.endswith("data.pkl") for n in names):
            return FORMAT_TORCH_SAVE
        raise AuditkitInputError(errors.UNKNOWN_FORMAT.format(path=path))
    if head[:1] == b"\x80":
        return FORMAT_LEGACY_PICKLE
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        if 0 < header_len < 100_000_000 and head[8:9] == b"{":
            return FORMAT_SAFETENSORS
    raise AuditkitInputError(errors.UNKNOWN_FORMAT.format(path=path))


def _parse_metadata(text: str | bytes | None) -> ModelMetadata:
    if not text:
        return ModelMetadata()
    try:
        return ModelMetadata.from_dict(json.loads(text))
    except (ValueError, TypeError):
        return ModelMetadata()


def build_arch(arch: str | Callable[[], nn.Module], num_classes: int | None = None) -> nn.Module:
    """Build an untrained network from ``torchvision:NAME`` or ``package.module:factory``."""
    if callable(arch):
        return arch()
    if ":" not in arch:
        raise AuditkitInputError(
            errors.BAD_ARCH.format(arch=arch, reason="expected torchvision:NAME or module:factory")
        )
    source, name = arch.split(":", 1)
    if source == "torchvision":
        import torchvision

        kwargs = {"weights": None}
        if num_classes:
            kwargs["num_classes"] = num_classes
        try:
            return torchvision.models.get_model(name, **kwargs)
        except (ValueError, KeyError) as exc:
            raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=str(exc))) from None
    try:
        factory = getattr(importlib.import_module(source), name)
    except (ImportError, AttributeError) as exc:
        raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=str(exc))) from None
    return factory()


def _guess_num_classes(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    # The last 2-D weight is the classifier head in virtually every torchvision-style network.
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim == 2]
    return int(weights[-1].shape[0]) if weights else None


def _unwrap_checkpoint(obj: Any) -> Mapping[str, torch.Tensor] | None:
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
        if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
            return {str(k).removeprefix("module."): v for k, v in obj.items()}
    return None


def _module_from_weights(
    state_dict: Mapping[str, torch.Tensor], arch: str | Callable | None, path: Path, kind: str
) -> nn.Module:
    if arch is None:
        raise AuditkitInputError(errors.NEEDS_ARCH.format(path=path, kind=kind))
    module = build_arch(arch, num_classes=_guess_num_classes(state_dict))
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AuditkitInputError(
            errors.STATE_DICT_MISMATCH.format(arch=arch, reason=reason)
        ) from None
    return module


def _safe_torch_load(path: Path) -> Any:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        what = str(exc).split("\n")[0][:200]
        if "GLOBAL" in str(exc) or "global" in str(exc) or "Unsupported" in str(exc):
            what = "it references Python classes or functions, e.g. a whole nn.Module"
        raise AuditkitInputError(errors.PICKLE_REFUSED.format(path=path, what=what)) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, struct.error) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise AuditkitInputError(errors.CORRUPT_ARCHIVE.format(path=path, reason=reason)) from None


def _unsafe_torch_load(path: Path) -> Any:
    # Reached only with --unsafe-pickle / unsafe_pickle=True: the user vouched for the file.
    return torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614


def load_model(
    path: str | Path,
    *,
    arch: str | Callable[[], nn.Module] | None = None,
    unsafe_pickle: bool = False,
) -> LoadedModel:
    """Load a model file of any supported format without executing untrusted code.

    Args:
        path: the model file; its format is sniffed from the content.
        arch: network to load a state_dict / safetensors file into.
        unsafe_pickle: allow unpickling a whole ``nn.Module`` (runs code from the file).

    Example:
        >>> loaded = load_model("model.pt2")
        >>> loaded.format, loaded.metadata.input_shape
    """
    path = Path(path)
    fmt = sniff_format(path)
    digest = sha256_file(path)
    metadata = ModelMetadata()
    arch_name = arch if isinstance(arch, str) else getattr(arch, "__name__", None)

    if fmt == FORMAT_EXPORT:
        extra = {METADATA_NAME: ""}
        try:
            program = torch.export.load(path, extra_files=extra)
        except Exception as exc:  # torch raises many types for a damaged archive
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise AuditkitInputError(
                errors.CORRUPT_ARCHIVE.format(path=path, reason=reason)
            ) from None
        module = program.module()
        metadata = _parse_metadata(extra.get(METADATA_NAME))
    elif fmt == FORMAT_TORCHSCRIPT:
        extra = {METADATA_NAME: ""}
        try:
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        except Exception as exc:
            reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
            raise AuditkitInputError(
                errors.CORRUPT_ARCHIVE.format(path=path, reason=reason)
            ) from None
        metadata = _parse_metadata(extra.get(METADATA_NAME))
    elif fmt == FORMAT_SAFETENSORS:
        from safetensors import SafetensorError, safe_open

        try:
            with safe_open(str(path), framework="pt") as fh:
                state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
                metadata = _parse_metadata((fh.metadata() or {}).get(METADATA_NAME))
        except (SafetensorError, OSError, ValueError) as exc:
            raise AuditkitInputError(
                errors.CORRUPT_ARCHIVE.format(path=path, reason=str(exc)[:200])
            ) from None
        module = _module_from_weights(state, arch, path, "safetensors")
    else:  # torch.save zip or a raw pickle stream
        if unsafe_pickle:
            obj = _unsafe_torch_load(path)
        else:
            obj = _safe_torch_load(path)
        if isinstance(obj, nn.Module):
            module = obj
        else:
            state = _unwrap_checkpoint(obj)
            if state is None:
                raise AuditkitInputError(errors.UNKNOWN_FORMAT.format(path=path))
            module = _module_from_weights(state, arch, path, "a state_dict")
            if isinstance(obj, Mapping) and isinstance(obj.get(METADATA_NAME), (str, dict)):
                meta = obj[METADATA_NAME]
                metadata = _parse_metadata(meta if isinstance(meta, str) else json.dumps(meta))
    return LoadedModel(
        module=module, format=fmt, metadata=metadata, path=str(path), sha256=digest, arch=arch_name
    )


def save_model(
    model: nn.Module,
    path: str | Path,
    *,
    example_input: torch.Tensor,
    metadata: ModelMetadata | None = None,
) -> Path:
    """Save ``model`` as a self-describing ``torch.export`` archive (batch dimension dynamic).

    The metadata (input shape, value range, normalization, class names, data set) travels inside
    the archive, so ``auditkit scan PATH`` needs no flags.

    Example:
        >>> save_model(net, "digits.pt2", example_input=x[:2], metadata=ModelMetadata(...))
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = model.training
    model.eval()
    try:
        batch = torch.export.Dim("batch")
        program = torch.export.export(
            model, (example_input,), dynamic_shapes=({0: batch},), strict=False
        )
    finally:
        model.train(was_training)
    meta = metadata or ModelMetadata(input_shape=tuple(example_input.shape[1:]))
    if meta.input_shape is None:
        meta = dataclasses.replace(meta, input_shape=tuple(example_input.shape[1:]))
    buffer = io.BytesIO()
    torch.export.save(program, buffer, extra_files={METADATA_NAME: json.dumps(meta.to_dict())})
    path.write_bytes(buffer.getvalue())
    return path
