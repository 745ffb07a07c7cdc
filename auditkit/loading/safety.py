"""Untrusted model files: look before torch touches them.

Everything here reads a file's structure without running anything from it: zip central
directories, JSON configs, safetensors headers, and pickles decoded by a stub unpickler that
imports and calls nothing. A file that breaks a rule is refused with one line naming what was
found (``AuditkitInputError``, exit 2 in the CLI).

What torch does afterwards happens inside ``guard.guarded_load``: a private temporary folder (removed
afterwards, also on error, Ctrl-C or SIGTERM) and captured output, so no torch warning or
traceback reaches the terminal before auditkit's line. Formats whose loading can run code from
the file (TorchScript ``__setstate__``) or whose sizes cannot be checked up front (pre-1.6
pickles) are first loaded in a child process under a time and memory limit
(``auditkit.loading.sandbox``).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from auditkit.errors import AuditkitInputError, one_line
from auditkit.loading.limits import (  # noqa: F401 - re-exported: safety.LoadLimits, ...
    AOTI_MARKER,
    BAD_HEADER,
    BOMB,
    DANGLING_LINK,
    DEFAULT_LIMITS,
    LOAD_CRASHED,
    LOAD_MEMORY,
    LOAD_TIMEOUT,
    LYING_SIZES,
    NATIVE_CODE,
    NATIVE_MAGICS,
    NATIVE_SUFFIXES,
    NOT_REGULAR,
    TOO_BIG,
    UNREADABLE_PICKLE,
    UNSAFE_ENTRY,
    GiB,
    LoadLimits,
    MiB,
    human_bytes,
    with_limits,
)
from auditkit.loading.pickles import check_pickled_storages

# --- the file itself ---------------------------------------------------------------------------

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def check_regular_file(path: str | Path) -> os.stat_result:
    """Stat ``path`` (following symlinks) and refuse anything but a non-empty regular file.

    Nothing is opened: opening a FIFO would block, and a device can be endless.
    """
    from auditkit import errors

    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise AuditkitInputError(
                DANGLING_LINK.format(path=path, target=os.readlink(path))
            ) from None
        raise AuditkitInputError(errors.NOT_FOUND.format(path=path)) from None
    except OSError as exc:
        raise AuditkitInputError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise AuditkitInputError(errors.NOT_A_FILE.format(path=path))
    if not stat.S_ISREG(st.st_mode):
        kind = next((k for test, k in _KINDS if test(st.st_mode)), "not a plain file")
        raise AuditkitInputError(NOT_REGULAR.format(path=path, kind=kind))
    if st.st_size == 0:
        raise AuditkitInputError(errors.EMPTY_FILE.format(path=path))
    return st


# --- zip archives ------------------------------------------------------------------------------


@dataclass
class ZipSummary:
    """What a validated archive holds (names and sizes come from its central directory)."""

    names: list[str]
    sizes: dict[str, int]
    total_bytes: int
    native: list[str] = field(default_factory=list)


def _entry_name_problem(name: str) -> str | None:
    if "\x00" in name:
        return "contains a NUL byte"
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path"
    if ".." in re.split(r"[\\/]", name):
        return "climbs out of the archive with '..'"
    return None


def validate_zip(
    source: str | Path | IO[bytes],
    limits: LoadLimits = DEFAULT_LIMITS,
    *,
    label: str | Path | None = None,
    depth: int = 0,
) -> ZipSummary:
    """Check a zip archive's entries before anything extracts or maps them.

    Refuses: unsafe entry names (absolute, ``..``, NUL), duplicate names, symlink entries,
    encrypted entries, overlapping entries (the trick behind non-recursive zip bombs), native
    libraries and AOTInductor packages (unless ``limits.allow_native_code``), entries or a total
    above ``limits.memory_bytes``, and compression ratios above ``limits.max_ratio``. Nested zips
    (torch.save files inside a ``.pt2``) are checked the same way.
    """
    label = label if label is not None else source
    try:
        zf = zipfile.ZipFile(source)
    except zipfile.LargeZipFile as exc:
        raise AuditkitInputError(f"{label}: unsupported zip archive ({one_line(exc, 120)})") from None
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        from auditkit import errors

        raise AuditkitInputError(
            errors.CORRUPT_ARCHIVE.format(path=label, reason=one_line(str(exc) or type(exc).__name__, 160))
        ) from None
    with zf:
        infos = zf.infolist()
        if len(infos) > limits.max_entries:
            raise AuditkitInputError(
                f"{label}: the archive has {len(infos)} entries, more than {limits.max_entries}: "
                "refused"
            )
        seen: set[str] = set()
        total = 0
        native: list[str] = []
        sizes: dict[str, int] = {}
        for info in infos:
            name = info.filename
            why = _entry_name_problem(name)
            if why is None and name in seen:
                why = "appears twice (readers would disagree on which one counts)"
            if why is None and stat.S_ISLNK(info.external_attr >> 16):
                why = "is a symbolic link"
            if why is None and info.flag_bits & 0x1:
                why = "is encrypted"
            if why:
                raise AuditkitInputError(UNSAFE_ENTRY.format(path=label, entry=name, why=why))
            seen.add(name)
            if info.file_size > limits.memory_bytes:
                raise AuditkitInputError(TOO_BIG.format(
                    path=label, what=f"entry {name!r} unpacks to {human_bytes(info.file_size)}",
                    limit=human_bytes(limits.memory_bytes),
                ))
            if info.file_size > limits.ratio_floor_bytes and (
                info.compress_size == 0 or info.file_size / info.compress_size > limits.max_ratio
            ):
                raise AuditkitInputError(BOMB.format(
                    path=label, entry=name, ratio=info.file_size / max(info.compress_size, 1),
                    packed=human_bytes(info.compress_size), unpacked=human_bytes(info.file_size),
                ))
            total += info.file_size
            sizes[name] = info.file_size
            lowered = name.lower()
            if AOTI_MARKER in lowered or lowered.startswith(AOTI_MARKER.split("/", 1)[1]):
                native.append(name)
            elif lowered.endswith(NATIVE_SUFFIXES) or ".so." in lowered:
                native.append(name)
        if total > limits.memory_bytes:
            raise AuditkitInputError(TOO_BIG.format(
                path=label, what=f"the archive unpacks to {human_bytes(total)}",
                limit=human_bytes(limits.memory_bytes),
            ))
        _check_no_overlap(infos, label)
        nested: list[zipfile.ZipInfo] = []
        for info in infos:
            if info.is_dir() or info.file_size == 0:
                continue
            head = _read_head(zf, info, label)
            if head.startswith(NATIVE_MAGICS) and info.filename not in native:
                native.append(info.filename)
            if head.startswith(b"PK\x03\x04"):
                nested.append(info)
        if native and not limits.allow_native_code:
            shown = ", ".join(repr(n) for n in native[:2]) + (" ..." if len(native) > 2 else "")
            raise AuditkitInputError(NATIVE_CODE.format(path=label, what=shown))
        for info in nested:
            if depth >= 2:
                raise AuditkitInputError(UNSAFE_ENTRY.format(
                    path=label, entry=info.filename, why="nests zips more than two levels deep"
                ))
            with zf.open(info) as inner:
                validate_zip(
                    inner, limits, label=f"{label} (inside {info.filename})", depth=depth + 1
                )
                check_pickled_storages(inner, limits, label=f"{label} (inside {info.filename})")
        return ZipSummary(names=[i.filename for i in infos], sizes=sizes, total_bytes=total,
                          native=native)


def _check_no_overlap(infos: list[zipfile.ZipInfo], label: Any) -> None:
    ordered = sorted(infos, key=lambda i: i.header_offset)
    for before, after in zip(ordered, ordered[1:], strict=False):
        # 30 bytes of local header + the name: the least an entry occupies before its data.
        encoding = "utf-8" if before.flag_bits & 0x800 else "cp437"
        try:
            name_bytes = len(before.orig_filename.encode(encoding))
        except UnicodeEncodeError:
            name_bytes = len(before.orig_filename)
        end = before.header_offset + 30 + name_bytes + before.compress_size
        if end > after.header_offset:
            raise AuditkitInputError(UNSAFE_ENTRY.format(
                path=label, entry=after.filename,
                why=f"overlaps entry {before.filename!r} (an overlapping-entry zip bomb)",
            ))


def _read_head(zf: zipfile.ZipFile, info: zipfile.ZipInfo, label: Any) -> bytes:
    try:
        with zf.open(info) as fh:
            return fh.read(4)
    except zipfile.BadZipFile as exc:
        text = str(exc)
        if "differ" in text:  # central directory and local header disagree on the name
            raise AuditkitInputError(UNSAFE_ENTRY.format(
                path=label, entry=info.filename,
                why="has a different name in its local header (a zip smuggling trick)",
            )) from None
        from auditkit import errors

        raise AuditkitInputError(
            errors.CORRUPT_ARCHIVE.format(path=label, reason=one_line(text, 160))
        ) from None
    except (OSError, EOFError, ValueError, NotImplementedError, RuntimeError) as exc:
        from auditkit import errors

        raise AuditkitInputError(errors.CORRUPT_ARCHIVE.format(
            path=label, reason=one_line(str(exc) or type(exc).__name__, 160)
        )) from None


# --- torch.export archives ---------------------------------------------------------------------


def _as_int(value: Any) -> int:
    if isinstance(value, dict):
        value = value.get("as_int")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"not a concrete size: {one_line(json.dumps(value), 60)}")
    return value


_EXPORT_DTYPE_SIZES = {  # torch._export.serde.schema.ScalarType values
    1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 2, 7: 4, 8: 8, 9: 4, 10: 8, 11: 16, 12: 1, 13: 2,
    14: 1, 15: 1, 16: 1, 17: 1, 18: 2, 19: 2, 20: 4, 21: 8, 22: 1, 23: 1,
}


def check_export_archive(path: str | Path, summary: ZipSummary, limits: LoadLimits) -> None:
    """Every tensor a ``.pt2`` weights/constants config declares must fit in its record.

    ``torch.export.load`` allocates zeros for a declared tensor whose record is empty, so a
    1 kB archive can declare gigabytes. Opaque pickled constants are named here (the loader
    refuses them without ``--unsafe-pickle``).
    """
    configs = [n for n in summary.names if n.endswith(("_weights_config.json",
                                                       "_constants_config.json"))]
    total = 0
    with zipfile.ZipFile(path) as zf:
        for name in configs:
            if summary.sizes.get(name, 0) > limits.max_metadata_bytes:
                raise AuditkitInputError(TOO_BIG.format(
                    path=path, what=f"config {name!r} is {human_bytes(summary.sizes[name])}",
                    limit=human_bytes(limits.max_metadata_bytes),
                ))
            try:
                config = json.loads(zf.read(name)).get("config", {})
                items = list(config.items())
            except (ValueError, AttributeError, UnicodeDecodeError) as exc:
                raise AuditkitInputError(
                    LYING_SIZES.format(path=path, what=f"{name} is not valid JSON ({one_line(exc, 80)})")
                ) from None
            folder = name.rsplit("/", 1)[0]
            for fqn, meta in items:
                try:
                    needed, record = _declared_bytes(meta, folder)
                except (ValueError, TypeError, KeyError, AttributeError) as exc:
                    raise AuditkitInputError(LYING_SIZES.format(
                        path=path, what=f"{name} entry {fqn!r} is malformed ({one_line(exc, 80)})"
                    )) from None
                if record is None:
                    continue
                stored = summary.sizes.get(record)
                if stored is None or needed > stored:
                    held = "no record" if stored is None else f"a {human_bytes(stored)} record"
                    raise AuditkitInputError(LYING_SIZES.format(
                        path=path, what=f"{fqn!r} declares a {human_bytes(needed)} tensor over {held}",
                    ))
                total += needed
    if total > limits.memory_bytes:
        raise AuditkitInputError(TOO_BIG.format(
            path=path, what=f"its tensors need {human_bytes(total)}",
            limit=human_bytes(limits.memory_bytes),
        ))


def _declared_bytes(meta: dict[str, Any], folder: str) -> tuple[int, str | None]:
    path_name = meta["path_name"]
    if not isinstance(path_name, str) or _entry_name_problem(path_name):
        raise ValueError(f"path_name {path_name!r}")
    if meta.get("use_pickle") or meta.get("tensor_meta") is None:
        return 0, None  # a pickled payload: a nested zip, validated as one
    tensor = meta["tensor_meta"]
    sizes = [_as_int(s) for s in tensor["sizes"]]
    strides = [_as_int(s) for s in tensor["strides"]]
    offset = _as_int(tensor.get("storage_offset", 0))
    element = _EXPORT_DTYPE_SIZES.get(tensor["dtype"], 8)
    if any(s < 0 for s in sizes) or offset < 0 or len(sizes) != len(strides):
        raise ValueError("negative or mismatched sizes")
    if any(s == 0 for s in sizes):
        return 0, f"{folder}/{path_name}"
    extent = offset + 1 + sum((s - 1) * abs(st) for s, st in zip(sizes, strides, strict=True))
    return extent * element, f"{folder}/{path_name}"


# --- safetensors -------------------------------------------------------------------------------

_SAFETENSORS_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
    "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "F64": 8, "I64": 8, "U64": 8, "C64": 8,
    "F8_E8M0": 1, "F4": 1, "F6_E2M3": 1, "F6_E3M2": 1, "F8_E4M3FNUZ": 1, "F8_E5M2FNUZ": 1,
}


def check_safetensors(path: str | Path, limits: LoadLimits = DEFAULT_LIMITS) -> None:
    """A safetensors header must describe exactly the bytes that follow it.

    Each tensor's ``data_offsets`` must match dtype x shape, lie inside the file and not
    overlap another's; the header must be JSON of a bounded size.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            raise AuditkitInputError(BAD_HEADER.format(path=path, why="shorter than 8 bytes"))
        (header_len,) = struct.unpack("<Q", head)
        if header_len > size - 8:
            raise AuditkitInputError(BAD_HEADER.format(
                path=path, why=f"it claims {human_bytes(header_len)} of header in a "
                f"{human_bytes(size)} file",
            ))
        if header_len > limits.max_metadata_bytes:
            raise AuditkitInputError(TOO_BIG.format(
                path=path, what=f"the header is {human_bytes(header_len)}",
                limit=human_bytes(limits.max_metadata_bytes),
            ))
        raw = fh.read(header_len)
    try:
        header = json.loads(raw)
        if not isinstance(header, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise AuditkitInputError(
            BAD_HEADER.format(path=path, why=f"not JSON: {one_line(exc, 80)}")
        ) from None
    data_len = size - 8 - header_len
    spans = []
    for name, spec in header.items():
        if name == "__metadata__":
            if not isinstance(spec, dict) or not all(isinstance(v, str) for v in spec.values()):
                raise AuditkitInputError(
                    BAD_HEADER.format(path=path, why="__metadata__ must map strings to strings")
                )
            continue
        try:
            element = _SAFETENSORS_SIZES[spec["dtype"]]
            shape = [int(s) for s in spec["shape"] if not isinstance(s, bool) and s >= 0]
            if len(shape) != len(spec["shape"]):
                raise ValueError("negative size")
            begin, end = (int(v) for v in spec["data_offsets"])
        except (KeyError, TypeError, ValueError) as exc:
            raise AuditkitInputError(BAD_HEADER.format(
                path=path, why=f"tensor {name!r}: {one_line(repr(exc), 80)}"
            )) from None
        declared = math.prod(shape) * element
        if not 0 <= begin <= end <= data_len or end - begin != declared:
            raise AuditkitInputError(LYING_SIZES.format(path=path, what=(
                f"tensor {name!r} declares {spec['dtype']}{shape} ({human_bytes(declared)}) "
                f"at bytes {begin}..{end} of a {human_bytes(data_len)} data section"
            )))
        spans.append((begin, end, name))
    spans.sort()
    for (_b0, e0, n0), (b1, _e1, n1) in zip(spans, spans[1:], strict=False):
        if b1 < e0:
            raise AuditkitInputError(
                LYING_SIZES.format(path=path, what=f"tensors {n0!r} and {n1!r} overlap")
            )


