"""What a model file says about itself: ``ModelMetadata`` (embedded in the files auditkit
saves), its parsing (malformed fields are bad input, never dropped) and the file's identity.

The lowest room of ``auditkit.loading``: every format reader and ``archfile`` build on it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from auditkit import errors
from auditkit.errors import AuditkitInputError, one_line

METADATA_NAME = "auditkit.json"


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
