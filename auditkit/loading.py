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
import os
import pickle
import pickletools
import re
import struct
import threading
import warnings
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditkit import errors, safety
from auditkit.errors import AuditkitInputError, one_line
from auditkit.formats import FORMAT_ONNX, FORMAT_SKOPS, timm_arch
from auditkit.safety import DEFAULT_LIMITS, LoadLimits

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
    def from_dict(
        cls, d: Mapping[str, Any] | None, *, skip: frozenset[str] | set[str] = frozenset()
    ) -> ModelMetadata:
        """Rebuild metadata from its JSON form, checking every field.

        A malformed field raises ``MetadataError`` naming it: silently dropping, say, a
        normalization would audit the model on inputs it never saw. Fields in ``skip`` are not
        read (the caller overrides them). A bare number is accepted for ``mean``/``std``: it
        means the same value for every channel, exactly as a one-element list does.
        """
        if not d:
            return cls()
        if not isinstance(d, Mapping):
            raise MetadataError("metadata", f"expected a JSON object, got {type(d).__name__}")

        def read(key: str, parse: Callable[[Any], Any]) -> Any:
            value = d.get(key)
            if value is None or key in skip:
                return None
            try:
                return parse(value)
            except (TypeError, ValueError) as exc:
                raise MetadataError(key, f"{key}={_short(value)}: {exc}") from None

        return cls(
            input_shape=read("input_shape", _parse_shape),
            input_range=read("input_range", _parse_range),
            mean=read("mean", _parse_stats),
            std=read("std", _parse_stats),
            class_names=read("class_names", _parse_names),
            dataset=read("dataset", _parse_text),
            modality=read("modality", _parse_text),
            extra=dict(read("extra", _parse_extra) or {}),
        )

    def merged(self, **overrides: Any) -> ModelMetadata:
        """A copy where every override that is not None wins."""
        return dataclasses.replace(self, **{k: v for k, v in overrides.items() if v is not None})


class MetadataError(ValueError):
    """A malformed field of embedded metadata (``field``: which one)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field


def _short(value: Any) -> str:
    return one_line(json.dumps(value, default=repr), 60)


def _numbers(value: Any) -> tuple[float, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)):
        raise TypeError("expected a list of numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        raise TypeError("expected a list of numbers")
    return tuple(float(v) for v in value)


def _parse_shape(value: Any) -> tuple[int, ...]:
    numbers = _numbers(value)
    if not numbers or any(n != int(n) or n < 1 for n in numbers):
        raise ValueError("expected positive integer sizes, e.g. [3, 32, 32]")
    return tuple(int(n) for n in numbers)


def _parse_range(value: Any) -> tuple[float, float]:
    numbers = _numbers(value)
    if len(numbers) != 2 or not numbers[0] < numbers[1]:
        raise ValueError("expected [low, high] with low < high")
    return numbers[0], numbers[1]


def _parse_stats(value: Any) -> tuple[float, ...]:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (float(value),)  # one value for every channel, as [value] would say
    numbers = _numbers(value)
    if not numbers:
        raise ValueError("expected at least one number")
    return numbers


def _parse_names(value: Any) -> tuple[str, ...]:
    # A bare string would otherwise become one class per character.
    if not isinstance(value, (list, tuple)) or not value:
        raise TypeError("expected a non-empty list of class names")
    if not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise TypeError("expected a list of class names")
    return tuple(str(v) for v in value)


def _parse_text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError("expected a string")
    return value


def _parse_extra(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise TypeError("expected a JSON object")
    return dict(value)


# Which flag overrides a metadata field (for the error message).
_OVERRIDE_FLAGS = {
    "input_shape": "--input-shape",
    "input_range": "--input-range",
    "mean": "--mean (and --std)",
    "std": "--std (and --mean)",
}


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


def _reason(exc: BaseException, limit: int = 200) -> str:
    """A third-party exception as one short line (its type when it has no message)."""
    return one_line(str(exc) or type(exc).__name__, limit)


_MEMORY_WORDS = ("can't allocate memory", "bad_alloc", "out of memory", "Cannot allocate memory")


def _torch_failed(path: Path, exc: BaseException, limits: LoadLimits | None = None) -> AuditkitInputError:
    """torch could not read the (already validated) file: name the real cause in one line."""
    text = str(exc)
    if isinstance(exc, MemoryError) or any(word in text for word in _MEMORY_WORDS):
        limit = safety.human_bytes((limits or DEFAULT_LIMITS).memory_bytes)
        return AuditkitInputError(safety.LOAD_MEMORY.format(path=path, limit=limit))
    return AuditkitInputError(errors.CORRUPT_ARCHIVE.format(path=path, reason=_reason(exc)))


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 over a module's parameters and buffers: the identity of an in-memory model, and
    how the memorization probe proves the audited weights were not touched."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        digest.update(key.encode())
        if not isinstance(tensor, torch.Tensor):  # extra state a module chose to store
            digest.update(repr(tensor).encode())
            continue
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{t.dtype}{tuple(t.shape)}".encode())
        # Raw bytes: numpy has no bfloat16 (or float8), so never go through .numpy().
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def sniff_format(path: str | Path, limits: LoadLimits | None = None) -> str:
    """Name the format of a model file from its bytes (the extension is ignored).

    Only a non-empty regular file is read (a FIFO, socket or device is refused unopened), and a
    zip archive is validated (``safety.validate_zip``: names, native code, sizes, ratios) before
    its names are trusted to say what it is.
    """
    path = Path(path)
    safety.check_regular_file(path)
    with open(path, "rb") as fh:
        head = fh.read(16)
    if not head:
        raise AuditkitInputError(errors.EMPTY_FILE.format(path=path))
    if head[:4] == b"PK\x03\x04":
        names = safety.validate_zip(path, limits or DEFAULT_LIMITS).names
        return _zip_format(path, names)
    if head[:1] == b"\x80":
        return FORMAT_LEGACY_PICKLE
    # Protocol 0/1 pickles (plain ``pickle.dump(..., protocol=0)``) start with an opcode byte;
    # only call it a pickle when the whole first stream decodes, so text files stay "unknown".
    if head[:1] in b"(c]}" and _pickle_globals(_read_prefix(path, limits)) is not None:
        return FORMAT_LEGACY_PICKLE
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        # Any length: a header claiming more than the file holds is a lying safetensors file
        # (refused by safety.check_safetensors), not a foreign one.
        if header_len > 0 and head[8:9] == b"{":
            return FORMAT_SAFETENSORS
    return _sniff_foreign(path, head, None)


def _sniff_foreign(path: Path, head: bytes, zip_names: list[str] | None) -> str:
    """ONNX and skops files (``auditkit.formats``); anything else is unknown."""
    from auditkit.formats import sniff_foreign

    fmt = sniff_foreign(head, zip_names)
    if fmt is None:
        raise AuditkitInputError(errors.UNKNOWN_FORMAT.format(path=path))
    return fmt


def _read_prefix(path: Path, limits: LoadLimits | None) -> bytes:
    with open(path, "rb") as fh:
        return fh.read((limits or DEFAULT_LIMITS).max_metadata_bytes)


def _zip_format(path: Path, names: list[str]) -> str:
    """Which torch format a (validated) zip archive is, from its entry names."""
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return FORMAT_EXPORT
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return FORMAT_TORCHSCRIPT
    if any(n.endswith("data.pkl") for n in names):
        return FORMAT_TORCH_SAVE
    return _sniff_foreign(path, b"", names)


_GLOBAL_OPCODES = {"GLOBAL", "INST"}
_CODE_OPCODES = {"GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD"}


def _pickle_globals(data: bytes) -> list[str] | None:
    """The Python names the first pickle stream in ``data`` would import; None if not a pickle.

    ``pickletools.genops`` only decodes opcodes: nothing is imported or called, so this is safe
    on hostile bytes.
    """
    names: list[str] = []
    strings: list[str] = []
    calls = False
    try:
        for opcode, arg, _pos in pickletools.genops(data):
            if opcode.name in _GLOBAL_OPCODES:
                names.append(str(arg).replace(" ", "."))
            elif opcode.name == "STACK_GLOBAL":
                names.append(".".join(strings[-2:]) if len(strings) >= 2 else "?")
            elif isinstance(arg, str):
                strings.append(arg)
            calls = calls or opcode.name in _CODE_OPCODES
    except Exception:  # any decoding failure means "not a well-formed pickle"
        return None
    if calls and not names:
        names.append("an object constructor")
    return names


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
    found = _pickle_globals(payload)
    if found:
        return one_line(f"it references {', '.join(dict.fromkeys(found))}", 160)
    return None


def _parse_metadata(
    text: str | bytes | None, path: Path, skip: frozenset[str] = frozenset()
) -> ModelMetadata:
    """The file's embedded metadata; a malformed one is bad input, never silently dropped."""
    if not text:
        return ModelMetadata()
    try:
        raw = json.loads(text)
    except (ValueError, TypeError) as exc:
        raise AuditkitInputError(
            errors.BAD_METADATA.format(
                path=path, reason=f"{METADATA_NAME} is not valid JSON: {_reason(exc, 80)}",
                override="",
            )
        ) from None
    try:
        return ModelMetadata.from_dict(raw, skip=skip)
    except MetadataError as exc:
        flag = _OVERRIDE_FLAGS.get(exc.field)
        override = f", or override the field with {flag}" if flag else ""
        raise AuditkitInputError(
            errors.BAD_METADATA.format(path=path, reason=str(exc), override=override)
        ) from None


def build_arch(arch: str | Callable[[], nn.Module], num_classes: int | None = None) -> nn.Module:
    """Build an untrained network from ``torchvision:NAME`` or ``package.module:factory``."""
    if callable(arch):
        return _checked_module(arch, _call_factory(arch, str(getattr(arch, "__name__", arch))))
    if ":" not in arch:
        raise AuditkitInputError(
            errors.BAD_ARCH.format(arch=arch, reason="expected torchvision:NAME or module:factory")
        )
    source, name = arch.split(":", 1)
    if source == "timm":  # issue 25: any timm model (auditkit.formats.timm_arch)
        from auditkit.formats.timm_arch import build_timm

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
    from auditkit.formats.skops_file import read_pickled_estimator

    return read_pickled_estimator(path)


def _load_foreign_file(path: Path, req: _Request) -> tuple[Any, ModelMetadata]:
    """ONNX and skops files: a model object that builds its own adapter (``auditkit.formats``)."""
    from auditkit.formats import load_foreign

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

# Formats whose file carries its own network: --arch would be silently ignored, so it is refused.
FORMATS_WITHOUT_ARCH = {
    FORMAT_EXPORT: "a torch.export archive", FORMAT_TORCHSCRIPT: "TorchScript",
    FORMAT_ONNX: "an ONNX model", FORMAT_SKOPS: "a scikit-learn skops file",
}
ARCH_NOT_NEEDED = (
    "--arch {arch}: {path} is {what}, which carries its own network, so --arch would be "
    "ignored; drop it"
)


def inspect_file(path: Path, fmt: str, limits: LoadLimits) -> None:
    """The format's own static checks, after ``sniff_format`` validated the container."""
    if fmt == FORMAT_SAFETENSORS:
        safety.check_safetensors(path, limits)
    elif fmt in (FORMAT_TORCH_SAVE, FORMAT_TORCHSCRIPT):
        safety.check_pickled_storages(path, limits)
    elif fmt == FORMAT_EXPORT:
        safety.check_export_archive(path, safety.validate_zip(path, limits), limits)


def _refuse_unsafe_pickle_early(path: Path, limits: LoadLimits) -> None:
    """A raw pickle naming globals the weights-only loader refuses: say so without a child."""
    try:
        decoded = safety.decode_pickle(_read_prefix(path, limits), streams=4)
    except Exception:  # not decodable here: the sandboxed loader reports it
        return
    try:
        from torch._weights_only_unpickler import _get_allowed_globals

        allowed = set(_get_allowed_globals())
    except (ImportError, AttributeError):  # another torch: let the loader decide
        return
    unsafe = [
        g for g in dict.fromkeys(decoded.globals)
        if g not in allowed and not (g.startswith("torch.") and g.endswith("Storage"))
    ]
    if unsafe:
        what = one_line(f"it references {', '.join(unsafe)}", 160)
        raise AuditkitInputError(errors.PICKLE_REFUSED.format(path=path, what=what))


def load_model(
    path: str | Path,
    *,
    arch: str | Callable[[], nn.Module] | None = None,
    unsafe_pickle: bool = False,
    overrides: ModelMetadata | None = None,
    limits: LoadLimits | None = None,
    debug: bool = False,
    _sandboxed: bool = False,
) -> LoadedModel:
    """Load a model file of any supported format without executing untrusted code.

    The file is checked before torch reads it (``auditkit.safety``): a regular file, a zip whose
    entries are safe and bounded, sizes that match their records. torch then reads it with a
    private temp folder and captured output; TorchScript and raw pickles are first trial-loaded
    in a child process under ``limits`` (time and memory).

    Args:
        path: the model file; its format is sniffed from the content.
        arch: network to load a state_dict / safetensors file into.
        unsafe_pickle: allow unpickling a whole ``nn.Module`` (runs code from the file).
        overrides: metadata the caller sets (``--mean``, ``--input-shape`` ...). Those fields win
            over the embedded ones and are not read from the file, so a malformed embedded
            field can be overridden instead of re-saving the model.
        limits: time, memory and archive limits (``LoadLimits``; defaults: 60 s, 8 GB).
        debug: write what torch printed while loading to stderr.

    Raises:
        AuditkitInputError: unreadable, unsafe or foreign file, or malformed embedded metadata.

    Example:
        >>> loaded = load_model("model.pt2")
        >>> loaded.format, loaded.metadata.input_shape
    """
    path = Path(path)
    limits = limits or DEFAULT_LIMITS
    if path.is_dir():  # a Hugging Face model folder (auditkit.formats.hf_folder)
        from auditkit.formats.hf_folder import load_hf_folder

        return load_hf_folder(path, arch=arch, unsafe_pickle=unsafe_pickle, limits=limits)
    fmt = sniff_format(path, limits)
    inspect_file(path, fmt, limits)
    if arch is not None and fmt in FORMATS_WITHOUT_ARCH:
        raise AuditkitInputError(
            ARCH_NOT_NEEDED.format(arch=arch, path=path, what=FORMATS_WITHOUT_ARCH[fmt])
        )
    digest = sha256_file(path)
    given = {
        k: v for k, v in dataclasses.asdict(overrides).items() if v not in (None, {})
    } if overrides is not None else {}
    skip = frozenset(given)

    def parse(text: str | bytes | None) -> ModelMetadata:
        return _parse_metadata(text, path, skip)

    arch_name = arch if isinstance(arch, str) else getattr(arch, "__name__", None)
    if fmt == FORMAT_LEGACY_PICKLE and not unsafe_pickle:
        _refuse_unsafe_pickle_early(path, limits)  # no child needed to refuse os.system
    # The child needs select, wait4 and process groups: POSIX. Elsewhere the checks still run.
    if (
        os.name == "posix" and not _sandboxed and not unsafe_pickle
        and fmt in (FORMAT_TORCHSCRIPT, FORMAT_LEGACY_PICKLE)
    ):
        from auditkit.sandbox import trial_load

        with safety.private_tempdir():
            trial_load(path, fmt, limits, debug=debug)
    request = _Request(arch=arch, unsafe_pickle=unsafe_pickle, parse=parse, limits=limits,
                       format=fmt, arch_name=arch_name)
    with safety.guarded_load(debug):
        module, metadata = FORMAT_LOADERS[fmt](path, request)
    if timm_arch.is_timm(arch) and isinstance(module, nn.Module):
        module, metadata = timm_arch.with_pretrained_config(module, metadata)
    if given:
        metadata = metadata.merged(**{k: getattr(overrides, k) for k in given})
    return LoadedModel(
        module=module, format=request.format, metadata=metadata, path=str(path), sha256=digest,
        arch=request.arch_name,
    )


def _load_arch_file(
    path: Path, parse: Callable[[str | None], ModelMetadata]
) -> tuple[nn.Module, ModelMetadata, str, str] | None:
    """Contract E: a safetensors file whose header names a registered architecture
    (``auditkit.archfile``) rebuilds itself; None for any other safetensors file."""
    from auditkit import archfile

    if archfile.read_header(path) is None:
        return None
    module, header = archfile.load_arch_model(path)
    metadata = parse(json.dumps(archfile.header_metadata(header)))
    return module, metadata, archfile.FORMAT_NAME, header["architecture"]["name"]


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
