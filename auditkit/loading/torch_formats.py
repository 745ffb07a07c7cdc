"""Loading and saving model files: format sniffed from content, never unpickling by default.

A model file is untrusted input. Pickled ``nn.Module`` objects are arbitrary code, so every
``torch.load`` here uses ``weights_only=True``; the only exception is the explicit
``unsafe_pickle=True`` path, which the user has to ask for by name.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import json
import pickle
import re
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditkit import errors
from auditkit.errors import AuditkitInputError, one_line
from auditkit.loading import safety
from auditkit.loading.foreign import FORMAT_ONNX, FORMAT_SKOPS
from auditkit.loading.metadata import METADATA_NAME, ModelMetadata, _reason
from auditkit.loading.pickles import pickle_globals
from auditkit.loading.safety import DEFAULT_LIMITS, LoadLimits
from auditkit.loading.sniff import (
    ARCH_NOT_NEEDED,
    FORMAT_EXPORT,
    FORMAT_LEGACY_PICKLE,
    FORMAT_SAFETENSORS,
    FORMAT_TORCH_SAVE,
    FORMAT_TORCHSCRIPT,
)

_MEMORY_WORDS = ("can't allocate memory", "bad_alloc", "out of memory", "Cannot allocate memory")


def _torch_failed(path: Path, exc: BaseException, limits: LoadLimits | None = None) -> AuditkitInputError:
    """torch could not read the (already validated) file: name the real cause in one line."""
    text = str(exc)
    if isinstance(exc, MemoryError) or any(word in text for word in _MEMORY_WORDS):
        limit = safety.human_bytes((limits or DEFAULT_LIMITS).memory_bytes)
        return AuditkitInputError(safety.LOAD_MEMORY.format(path=path, limit=limit))
    return AuditkitInputError(errors.CORRUPT_ARCHIVE.format(path=path, reason=_reason(exc)))


def _pickle_payload(path: Path) -> bytes:
    """The bytes torch would unpickle: ``*/data.pkl`` of a torch.save zip, else the file."""
    data = path.read_bytes()
    if data[:4] == b"PK\x03\x04":
        try:
            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                member = next((n for n in zf.namelist() if n.endswith("data.pkl")), None)
                return zf.read(member) if member else b""
        except (zipfile.BadZipFile, OSError, EOFError, ValueError):
            return b""
    return data


_GLOBAL_IN_MESSAGE = re.compile(r"GLOBAL ([\w.]+)")


def _refusal_reason(message: str, payload: bytes) -> str | None:
    """What makes a pickle unsafe (for the refusal message), or None if it is merely damaged."""
    named = _GLOBAL_IN_MESSAGE.findall(message)
    if named:
        return one_line(f"it references {', '.join(dict.fromkeys(named))}", 160)
    found = pickle_globals(payload)
    if found:
        return one_line(f"it references {', '.join(dict.fromkeys(found))}", 160)
    return None


def build_arch(arch: str | Callable[[], nn.Module], num_classes: int | None = None) -> nn.Module:
    """Build an untrained network from ``torchvision:NAME`` or ``package.module:factory``."""
    if callable(arch):
        return _checked_module(arch, _call_factory(arch, str(getattr(arch, "__name__", arch))))
    if ":" not in arch:
        raise AuditkitInputError(
            errors.BAD_ARCH.format(arch=arch, reason="expected torchvision:NAME or module:factory")
        )
    source, name = arch.split(":", 1)
    if source == "timm":  # issue 25: any timm model (auditkit.loading.timm_arch)
        from auditkit.loading.timm_arch import build_timm

        return build_timm(arch, num_classes=num_classes)
    if source == "torchvision":
        import torchvision

        kwargs: dict[str, Any] = {"weights": None}
        if num_classes:
            kwargs["num_classes"] = num_classes
        try:
            return torchvision.models.get_model(name, **kwargs)
        except (ValueError, KeyError, TypeError) as exc:
            raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=one_line(exc))) from None
    try:
        factory = getattr(importlib.import_module(source), name)
    except (ImportError, AttributeError) as exc:
        raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=one_line(exc))) from None
    if not callable(factory):
        raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=f"{name} is not callable"))
    return _checked_module(arch, _call_factory(factory, arch))


def _call_factory(factory: Callable[[], Any], arch: str) -> Any:
    try:
        return factory()
    except Exception as exc:  # the user's code: any failure is a bad --arch, not a crash
        reason = f"the factory failed ({type(exc).__name__}: {one_line(exc, 200)})"
        raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=reason)) from None


def _checked_module(arch: Any, built: Any) -> nn.Module:
    if not isinstance(built, nn.Module):
        reason = f"the factory returned a {type(built).__name__}, not an nn.Module"
        raise AuditkitInputError(errors.BAD_ARCH.format(arch=arch, reason=reason))
    return built


def _guess_num_classes(state_dict: Mapping[str, torch.Tensor]) -> int | None:
    # The last linear weight is the classifier head in virtually every torchvision-style network;
    # fully convolutional heads (SqueezeNet) end in a conv weight instead.
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.ndim >= 2]
    linear = [v for v in weights if v.ndim == 2]
    chosen = linear or weights
    return int(chosen[-1].shape[0]) if chosen else None


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
    from auditkit.loading import timm_arch

    if timm_arch.is_timm(arch):  # shaped by the weights (classes, input channels)
        module = timm_arch.build_timm(str(arch), state_dict)
    else:
        module = build_arch(arch, num_classes=_guess_num_classes(state_dict))
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as exc:
        # torch's first line is only "Error(s) in loading state_dict for X:"; the detail follows.
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        reason = one_line("; ".join(lines[1:3]) or (lines[0] if lines else type(exc).__name__), 240)
        raise AuditkitInputError(
            errors.STATE_DICT_MISMATCH.format(arch=arch, reason=reason)
        ) from None
    return module


def _safe_torch_load(path: Path, limits: LoadLimits | None = None) -> Any:
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols it is about to refuse; the refusal says enough.
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        what = _refusal_reason(str(exc), _pickle_payload(path))
        if what is None:
            raise AuditkitInputError(
                errors.CORRUPT_ARCHIVE.format(path=path, reason="not a readable pickle or torch file")
            ) from None
        raise AuditkitInputError(errors.PICKLE_REFUSED.format(path=path, what=what)) from None
    except Exception as exc:  # torch raises many types for damaged files; all are bad input
        raise _torch_failed(path, exc, limits) from None


def _unsafe_torch_load(path: Path) -> Any:
    # Reached only with --unsafe-pickle / unsafe_pickle=True: the user vouched for the file.
    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=False)  # noqa: S614
        except (RuntimeError, pickle.UnpicklingError):
            if zipfile.is_zipfile(path):
                raise
            # A plain ``pickle.dump`` of a module is not a torch file; torch.load rejects its
            # header, so read it as the plain pickle it is.
            with open(path, "rb") as fh:
                return pickle.load(fh)  # noqa: S301
    except Exception as exc:  # e.g. the pickled class's module is not importable here
        raise AuditkitInputError(
            errors.CORRUPT_ARCHIVE.format(
                path=path, reason=f"unpickling failed: {type(exc).__name__}: {_reason(exc)}"
            )
        ) from None


class _UnsafePayload(Exception):
    """Raised inside torch.export.load when the archive wants to unpickle a Python object."""


_EXPORT_LOAD_LOCK = threading.RLock()


@contextmanager
def _weights_only_everywhere() -> Iterator[None]:
    """Make ``torch.export.load`` unpickle nothing but tensors and plain containers.

    torch.export.load reads parts of the archive with ``torch.load(weights_only=False)`` (sample
    inputs, with a silent fallback; weights and constants marked ``use_pickle``) and with
    ``pickle.loads`` (opaque constants). A crafted archive can therefore run code while it is
    being *loaded*. For the duration of the call every ``torch.load`` is forced to
    ``weights_only=True`` and plain ``pickle.loads`` refuses.
    """
    original_load = torch.load

    def safe_load(f: Any, *args: Any, **kwargs: Any) -> Any:
        kwargs["weights_only"] = True
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return original_load(f, *args, **kwargs)
        except pickle.UnpicklingError as exc:
            named = _GLOBAL_IN_MESSAGE.findall(str(exc))
            raise _UnsafePayload(
                f"it references {', '.join(dict.fromkeys(named))}" if named
                else "an object the safe unpickler rejects"
            ) from None

    class _NoPickle:
        UnpicklingError = pickle.UnpicklingError

        @staticmethod
        def loads(*_args: Any, **_kwargs: Any) -> Any:
            raise _UnsafePayload("an opaque pickled constant")

        load = loads

    try:
        from torch.export.pt2_archive import _package
    except ImportError:  # another torch layout: torch.load is still patched
        _package = None
    with _EXPORT_LOAD_LOCK:
        torch.load = safe_load
        saved_pickle = getattr(_package, "pickle", None)
        if saved_pickle is not None:
            _package.pickle = _NoPickle
        try:
            yield
        finally:
            torch.load = original_load
            if saved_pickle is not None:
                _package.pickle = saved_pickle


class _StaticBatch(nn.Module):
    """Runs an exported program traced with a fixed batch size on batches of any size.

    Most exports in the wild use ``torch.export.export(model, (x,))`` without dynamic shapes, so
    the program only accepts exactly ``batch`` examples. Inputs are cut into chunks of that size
    and the last chunk is zero-padded; padding rows are dropped from the output (an exported
    program is in eval mode, so examples do not influence each other). Gradients flow through.
    """

    def __init__(self, program_module: nn.Module, batch: int) -> None:
        super().__init__()
        self.program = program_module
        self.batch = int(batch)

    def train(self, mode: bool = True) -> _StaticBatch:
        raise NotImplementedError("an exported program's train/eval mode is fixed at export")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(x)
        if n == self.batch:
            return self.program(x)
        outputs = []
        for start in range(0, n, self.batch):
            chunk = x[start : start + self.batch]
            short = self.batch - len(chunk)
            if short:
                chunk = torch.cat([chunk, chunk.new_zeros(short, *chunk.shape[1:])])
            out = self.program(chunk)
            outputs.append(out[: self.batch - short])
        return torch.cat(outputs)


def _export_input_shape(program: Any) -> tuple[int | None, tuple[int, ...] | None]:
    """(static batch size or None, per-example shape or None) of a one-input exported program."""
    try:
        user_inputs = list(program.graph_signature.user_inputs)
        if len(user_inputs) != 1:
            return None, None
        node = next(
            n for n in program.graph.nodes if n.op == "placeholder" and n.name == user_inputs[0]
        )
        shape = tuple(node.meta["val"].shape)
    except (AttributeError, KeyError, StopIteration, TypeError):
        return None, None
    if not shape:
        return None, None
    batch = int(shape[0]) if isinstance(shape[0], int) else None
    rest = shape[1:]
    example = tuple(int(s) for s in rest) if all(isinstance(s, int) for s in rest) else None
    return batch, example


def _load_export(
    path: Path, *, unsafe_pickle: bool, parse_metadata: Callable[[str | None], ModelMetadata]
) -> tuple[nn.Module, ModelMetadata]:
    extra = {METADATA_NAME: ""}
    try:
        with _never_load_native_code():
            if unsafe_pickle:
                program = torch.export.load(path, extra_files=extra)
            else:
                with _weights_only_everywhere():
                    program = torch.export.load(path, extra_files=extra)
    except _UnsafePayload as exc:
        raise AuditkitInputError(
            errors.EXPORT_PAYLOAD_REFUSED.format(path=path, what=str(exc))
        ) from None
    except Exception as exc:  # torch raises many types for a damaged archive
        raise _torch_failed(path, exc) from None
    metadata = parse_metadata(extra.get(METADATA_NAME))
    module = program.module()
    batch, example_shape = _export_input_shape(program)
    if batch is not None:
        module = _StaticBatch(module, batch)
    if metadata.input_shape is None and example_shape is not None:
        # A foreign export states its input shape; using it lets a data mismatch name both shapes.
        metadata = dataclasses.replace(metadata, input_shape=example_shape)
    return module, metadata


@contextmanager
def _never_load_native_code() -> Iterator[None]:
    """torch.export.load dlopens AOTInductor packages it finds in the archive; auditkit audits the
    exported program and needs none of them. Archives carrying native code are refused before
    this (``safety.validate_zip``); with ``--allow-native-code`` they load, without that part."""
    try:
        from torch.export.pt2_archive import _package
    except ImportError:
        yield
        return
    saved = getattr(_package, "_load_aoti", None)
    if saved is None:
        yield
        return
    with _EXPORT_LOAD_LOCK:
        _package._load_aoti = lambda *_args, **_kwargs: None
        try:
            yield
        finally:
            _package._load_aoti = saved


@dataclass
class _Request:
    """What a per-format loader needs besides the path.

    A loader that recognizes a more specific format inside its container (a self-describing
    safetensors "architecture file", say) may set ``format`` and ``arch_name``; ``load_model``
    reports those.
    """

    arch: str | Callable[[], nn.Module] | None
    unsafe_pickle: bool
    parse: Callable[[str | bytes | None], ModelMetadata]
    limits: LoadLimits
    format: str = ""
    arch_name: str | None = None


def _load_export_file(path: Path, req: _Request) -> tuple[nn.Module, ModelMetadata]:
    return _load_export(path, unsafe_pickle=req.unsafe_pickle, parse_metadata=req.parse)


def _load_torchscript_file(path: Path, req: _Request) -> tuple[nn.Module, ModelMetadata]:
    extra = {METADATA_NAME: ""}
    try:
        module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise _torch_failed(path, exc, req.limits) from None
    return module, req.parse(extra.get(METADATA_NAME))


def _load_safetensors_file(path: Path, req: _Request) -> tuple[nn.Module, ModelMetadata]:
    from safetensors import safe_open

    arch_file = _load_arch_file(path, req.parse)
    if arch_file is not None:  # an architecture file rebuilds itself (contract E)
        if req.arch is not None:
            raise AuditkitInputError(ARCH_NOT_NEEDED.format(
                arch=req.arch, path=path, what="an auditkit architecture file"
            ))
        module, metadata, req.format, req.arch_name = arch_file
        return module, metadata

    try:
        with safe_open(str(path), framework="pt") as fh:
            state = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118
            embedded = (fh.metadata() or {}).get(METADATA_NAME)
    except Exception as exc:  # SafetensorError, OSError, ValueError, ... on a damaged file
        raise AuditkitInputError(
            errors.CORRUPT_ARCHIVE.format(path=path, reason=_reason(exc))
        ) from None
    metadata = req.parse(embedded)
    return _module_from_weights(state, req.arch, path, "safetensors"), metadata


def _load_pickled_file(path: Path, req: _Request) -> tuple[nn.Module, ModelMetadata]:
    """A torch.save zip or a raw pickle stream: weights (with --arch), or a whole module only
    with --unsafe-pickle."""
    if req.unsafe_pickle:
        estimator = _unsafe_pickled_estimator(path)
        if estimator is not None:
            req.format = estimator.format
            return estimator, ModelMetadata()
    obj = _unsafe_torch_load(path) if req.unsafe_pickle else _safe_torch_load(path, req.limits)
    if isinstance(obj, nn.Module):
        if req.arch is not None:
            raise AuditkitInputError(ARCH_NOT_NEEDED.format(
                arch=req.arch, path=path, what="a whole pickled module"
            ))
        return obj, ModelMetadata()
    state = _unwrap_checkpoint(obj)
    if state is None:
        raise AuditkitInputError(errors.UNKNOWN_FORMAT.format(path=path))
    module = _module_from_weights(state, req.arch, path, "a state_dict")
    metadata = ModelMetadata()
    if isinstance(obj, Mapping) and isinstance(obj.get(METADATA_NAME), (str, dict)):
        meta = obj[METADATA_NAME]
        metadata = req.parse(meta if isinstance(meta, str) else json.dumps(meta))
    return module, metadata


def _unsafe_pickled_estimator(path: Path) -> Any:
    """With --unsafe-pickle only: a joblib/pickle file of a scikit-learn model (None when the
    pickle names no scikit-learn object)."""
    from auditkit.loading.skops import read_pickled_estimator

    return read_pickled_estimator(path)


def _load_foreign_file(path: Path, req: _Request) -> tuple[Any, ModelMetadata]:
    """ONNX and skops files: a model object that builds its own adapter (``auditkit.loading.foreign``)."""
    from auditkit.loading.foreign import load_foreign

    return load_foreign(req.format, path, unsafe_pickle=req.unsafe_pickle, parse_metadata=req.parse,
                        memory_bytes=req.limits.memory_bytes)


# One loader per format: (path, request) -> (module, metadata). A new format adds its sniffing
# and one entry here.
FORMAT_LOADERS: dict[str, Callable[[Path, _Request], tuple[nn.Module, ModelMetadata]]] = {
    FORMAT_EXPORT: _load_export_file,
    FORMAT_TORCHSCRIPT: _load_torchscript_file,
    FORMAT_SAFETENSORS: _load_safetensors_file,
    FORMAT_TORCH_SAVE: _load_pickled_file,
    FORMAT_LEGACY_PICKLE: _load_pickled_file,
    FORMAT_ONNX: _load_foreign_file,
    FORMAT_SKOPS: _load_foreign_file,
}


def _load_arch_file(
    path: Path, parse: Callable[[str | None], ModelMetadata]
) -> tuple[nn.Module, ModelMetadata, str, str] | None:
    """Contract E: a safetensors file whose header names a registered architecture
    (``auditkit.loading.archfile``) rebuilds itself; None for any other safetensors file."""
    from auditkit.loading import archfile

    if archfile.read_header(path) is None:
        return None
    module, header = archfile.load_arch_model(path)
    metadata = parse(json.dumps(archfile.header_metadata(header)))
    return module, metadata, archfile.FORMAT_NAME, header["architecture"]["name"]


