"""Sniff: name a model file's format from its bytes (the extension is ignored).

The first step of loading: only a regular, non-empty file is read, and a zip is validated
(``safety.validate_zip``) before its entry names are trusted to say what it is.
"""

from __future__ import annotations

import struct
from pathlib import Path

from auditkit import errors
from auditkit.errors import AuditkitInputError
from auditkit.loading import safety
from auditkit.loading.onnx import FORMAT_ONNX
from auditkit.loading.pickles import pickle_globals
from auditkit.loading.safety import DEFAULT_LIMITS, LoadLimits
from auditkit.loading.skops import FORMAT_SKOPS

FORMAT_EXPORT = "torch.export"


FORMAT_TORCHSCRIPT = "torchscript"


FORMAT_TORCH_SAVE = "torch.save"  # zip written by torch.save: a state_dict or a pickled module


FORMAT_LEGACY_PICKLE = "pickle"  # pre-1.6 torch.save or a plain pickle


FORMAT_SAFETENSORS = "safetensors"


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
    if head[:1] in b"(c]}" and pickle_globals(_read_prefix(path, limits)) is not None:
        return FORMAT_LEGACY_PICKLE
    if len(head) >= 9:
        (header_len,) = struct.unpack("<Q", head[:8])
        # Any length: a header claiming more than the file holds is a lying safetensors file
        # (refused by safety.check_safetensors), not a foreign one.
        if header_len > 0 and head[8:9] == b"{":
            return FORMAT_SAFETENSORS
    return _sniff_foreign(path, head, None)


def _sniff_foreign(path: Path, head: bytes, zip_names: list[str] | None) -> str:
    """ONNX and skops files (``auditkit.loading.foreign``); anything else is unknown."""
    from auditkit.loading.foreign import sniff_foreign

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


# Formats whose file carries its own network: --arch would be silently ignored, so it is refused.
FORMATS_WITHOUT_ARCH = {
    FORMAT_EXPORT: "a torch.export archive", FORMAT_TORCHSCRIPT: "TorchScript",
    FORMAT_ONNX: "an ONNX model", FORMAT_SKOPS: "a scikit-learn skops file",
}


ARCH_NOT_NEEDED = (
    "--arch {arch}: {path} is {what}, which carries its own network, so --arch would be "
    "ignored; drop it"
)
