"""ONNX external data: every sidecar location checked before onnx or onnxruntime opens it.

Exporters (``torch.onnx.export``'s default dynamo path among them) write large tensors to a
``model.onnx.data`` file next to the model and record, per tensor, a ``location`` with an
``offset`` and ``length``. The location is text from an untrusted file, so it must not choose
what else on disk is read: it has to be a relative path inside the model's folder (no absolute
path, no ``..``, no symlink leading out), name a regular file, and every byte range must lie
within that file. Only ``os.stat`` is used here, so a refused location is never opened. The
total is counted against ``--load-memory``, because the twin holds the weights in memory.

Locations are resolved against the model file's folder, never the working directory: onnx
resolves them against the folder it is given, onnxruntime against the model path.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from auditkit.errors import AuditkitInputError

BAD_EXTERNAL = (
    "{path}: external data of tensor {tensor!r} at location {location!r} {why}; auditkit only "
    "reads external data stored next to the model (a regular file inside its folder), so "
    "re-export the model with its sidecar beside it"
)
TOO_MUCH_EXTERNAL = (
    "{path}: its external data holds {total} bytes, more than --load-memory allows ({limit}); "
    "raise --load-memory if this machine has the memory"
)


@dataclass(frozen=True)
class ExternalData:
    """What the checks found: the sidecar files and the bytes they contribute."""

    files: tuple[str, ...] = ()
    total_bytes: int = 0


def _external_tensors(proto: Any) -> list[Any]:
    from onnx.external_data_helper import _get_all_tensors

    return [t for t in _get_all_tensors(proto) if t.data_location == 1]  # TensorProto.EXTERNAL


def _entries(tensor: Any) -> dict[str, str]:
    return {e.key: e.value for e in tensor.external_data}


def _number(text: str | None, default: int | None) -> int | None:
    if text is None or text == "":
        return default
    try:
        value = int(text)
    except ValueError:
        return -1
    return value


def check_external_data(proto: Any, path: Path, memory_bytes: int | None = None) -> ExternalData:
    """Validate every external-data record of ``proto`` (loaded without external data).

    Raises:
        AuditkitInputError: a location outside the folder, not a regular file, a byte range past
            its end, or more bytes in all than ``memory_bytes``; the message names the tensor.
    """
    folder = Path(os.path.abspath(path.parent))
    real_folder = folder.resolve()
    files: dict[str, int] = {}
    total = 0

    def refuse(tensor: Any, location: str, why: str) -> AuditkitInputError:
        return AuditkitInputError(BAD_EXTERNAL.format(
            path=path, tensor=tensor.name, location=location, why=why))

    for tensor in _external_tensors(proto):
        entries = _entries(tensor)
        location = entries.get("location", "")
        pure = PurePosixPath(location.replace("\\", "/"))
        if not location:
            raise refuse(tensor, location, "is empty")
        if pure.is_absolute() or ":" in location or location.startswith("~"):
            raise refuse(tensor, location, "is an absolute path")
        if ".." in pure.parts:
            raise refuse(tensor, location, "leaves the model's folder ('..')")
        target = folder / pure
        real = target.resolve()
        if not real.is_relative_to(real_folder):
            raise refuse(tensor, location, "leaves the model's folder (through a symlink)")
        try:
            info = os.stat(real)
        except OSError:
            raise refuse(tensor, location, "does not exist") from None
        if not stat.S_ISREG(info.st_mode):
            raise refuse(tensor, location, "is not a regular file")
        size = info.st_size
        offset = _number(entries.get("offset"), 0)
        length = _number(entries.get("length"), None)
        if offset is None or offset < 0 or (length is not None and length < 0):
            raise refuse(tensor, location, "has a malformed offset or length")
        if length is None:
            length = max(size - offset, 0)
        if offset + length > size:
            raise refuse(tensor, location, f"asks for bytes {offset}..{offset + length} of a "
                         f"{size}-byte file (past its end)")
        files[str(pure)] = size
        total += length
        if memory_bytes is not None and total > memory_bytes:
            from auditkit.loading.limits import human_bytes

            raise AuditkitInputError(TOO_MUCH_EXTERNAL.format(
                path=path, total=f"at least {total}", limit=human_bytes(memory_bytes)))
    return ExternalData(files=tuple(files), total_bytes=total)


def load_external_weights(proto: Any, path: Path) -> Any:
    """A copy of ``proto`` with its (already validated) external data read into it."""
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    full = onnx.ModelProto()
    full.CopyFrom(proto)
    if _external_tensors(full):
        load_external_data_for_model(full, os.path.abspath(path.parent))
    return full


def proto_has_external(proto: Any) -> bool:
    """Whether any tensor of ``proto`` keeps its bytes in a sidecar file."""
    return bool(_external_tensors(proto))
