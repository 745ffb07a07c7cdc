"""Data files and folders: declared sizes checked before anything is decoded.

A ``--data`` file is as untrusted as a model file (README, "Untrusted files"). The torch
checks (``auditkit.loading.safety``) cover zips; these cover what the zip holds and the other kinds:
``.npz`` members' ``.npy`` headers (shape x dtype, no object arrays), parquet footers (rows x
columns), ``.pt`` tensors (no stride-0 or overlapping views that expand when copied), image
folders (Pillow's own decompression-bomb limit per image, decoded bytes for the folder), and
graph files (the same checks as ``scan --data``). Each total is bounded by ``--load-memory``
(``LoadLimits.memory_bytes``), set for the scan with ``using(limits)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import warnings
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from auditkit.errors import AuditkitInputError, one_line

#: Decoded bytes per image pixel while a folder is read (PIL RGB + float32 copy + the stack).
IMAGE_BYTES_PER_PIXEL = 16
#: Bytes per table cell once read (a float64 column, or a pointer to a string).
TABLE_BYTES_PER_CELL = 8

_LIMITS: contextvars.ContextVar[Any] = contextvars.ContextVar("auditkit_data_limits", default=None)


@contextlib.contextmanager
def using(limits: Any) -> Iterator[None]:
    """Data read inside this block is bounded by ``limits`` (``LoadLimits``; None: defaults)."""
    token = _LIMITS.set(limits)
    try:
        yield
    finally:
        _LIMITS.reset(token)


def current_limits() -> Any:
    from auditkit.loading.safety import DEFAULT_LIMITS

    return _LIMITS.get() or DEFAULT_LIMITS


def _human(n: int) -> str:
    from auditkit.loading.safety import human_bytes

    return human_bytes(n)


def _too_big(flag: str, path: Path, what: str, need: int, limit: int) -> AuditkitInputError:
    return AuditkitInputError(
        f"{flag} {path}: {what} would need {_human(need)} once read, more than --load-memory "
        f"({_human(limit)}): refused before reading; pass a smaller sample, or raise "
        "--load-memory for a file you trust"
    )


def check_data_file(path: Path, flag: str = "--data") -> None:
    """A data file: regular, non-empty, its zip safe, its declared sizes within the limit."""
    from auditkit.loading import safety

    limits = current_limits()
    try:
        safety.check_regular_file(path)  # a FIFO would block a reader, a device never end
    except AuditkitInputError as exc:
        text = str(exc)
        if path.is_file() and path.stat().st_size == 0:
            text = (f"{path}: the file is empty; pass a data file with a header row and "
                    "examples (or .npz/.pt arrays x, y)")
        raise AuditkitInputError(text if text.startswith(flag) else f"{flag} {text}") from None
    try:
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
        if is_zip:
            safety.validate_zip(path, limits)
            safety.check_pickled_storages(path, limits)
    except AuditkitInputError as exc:
        text = str(exc)
        raise AuditkitInputError(text if text.startswith(flag) else f"{flag} {text}") from None
    suffix = path.suffix.lower()
    if suffix == ".npz":
        check_npz(path, limits, flag)
    elif suffix in (".parquet", ".pq"):
        check_parquet(path, limits, flag)


def check_npz(path: Path, limits: Any, flag: str = "--data") -> None:
    """Every ``.npy`` member's header: no object arrays, and shape x dtype within the limit."""
    total = 0
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    continue
                with zf.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    if version == (1, 0):
                        shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                if dtype.hasobject:
                    raise AuditkitInputError(
                        f"{flag} {path}: array {info.filename[:-4]!r} holds Python objects, "
                        "which auditkit does not load (they could run code); store plain arrays"
                    )
                total += math.prod(int(d) for d in shape) * dtype.itemsize
    except AuditkitInputError:
        raise
    except Exception as exc:  # a damaged header: numpy would fail the same way, later
        raise AuditkitInputError(
            f"{flag} {path}: not a readable .npz ({one_line(exc, 160)})"
        ) from None
    if total > limits.memory_bytes:
        raise _too_big(flag, path, "its arrays", total, limits.memory_bytes)


def check_parquet(path: Path, limits: Any, flag: str = "--data") -> None:
    """The footer's rows x columns (and each column chunk's value count) within the limit.

    Run-length and dictionary encoding let a few kB hold billions of values; the footer says
    how many there are before any page is decoded.
    """
    try:
        import pyarrow.parquet as pq

        meta = pq.ParquetFile(path).metadata
    except ImportError:
        return  # the table reader says what to install
    except Exception as exc:
        raise AuditkitInputError(
            f"{flag} {path}: not a readable parquet file ({one_line(exc, 160)})"
        ) from None
    rows = max(int(meta.num_rows), 0)
    columns = max(int(meta.num_columns), 1)
    values = 0
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            values += max(int(group.column(c).num_values), 0)
    need = max(rows * columns, values) * TABLE_BYTES_PER_CELL
    if need > limits.memory_bytes:
        raise _too_big(flag, path, f"{rows} rows x {columns} columns", need, limits.memory_bytes)


def check_tensors(obj: Mapping[str, Any], path: Path, flag: str = "--data") -> None:
    """``.pt`` data: no tensor larger than its storage (stride 0 or overlapping views expand
    when copied), and all of them within the limit."""
    import torch

    limits = current_limits()
    total = 0
    for key, value in obj.items():
        if isinstance(value, Mapping):
            check_tensors(value, path, flag)
            continue
        if not isinstance(value, torch.Tensor):
            continue
        need = value.numel() * value.element_size()
        stored = value.untyped_storage().nbytes()
        expands = any(s == 0 and n > 1 for s, n in zip(value.stride(), value.shape, strict=True))
        if expands or need > stored:
            raise AuditkitInputError(
                f"{flag} {path}: tensor {key!r} of shape {list(value.shape)} is a view that "
                f"repeats {_human(stored)} of storage (stride {list(value.stride())}), which "
                "would expand when copied: refused; save it with .contiguous().clone()"
            )
        total += need
    if total > limits.memory_bytes:
        raise _too_big(flag, path, "its tensors", total, limits.memory_bytes)


class ImageBudget:
    """Decoded bytes of an image folder so far, checked per image before it is decoded."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.limits = current_limits()
        self.pixels = 0

    @contextlib.contextmanager
    def open(self, image_module: Any, file: Path) -> Iterator[Any]:
        """``PIL.Image.open`` of ``file`` with Pillow's decompression-bomb limit as an error and
        the folder's decoded size bounded; Pillow reads only the header here."""
        rel = file.relative_to(self.root)
        limit = image_module.MAX_IMAGE_PIXELS
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", image_module.DecompressionBombWarning)
                img = image_module.open(file)
        except (image_module.DecompressionBombError, image_module.DecompressionBombWarning):
            raise AuditkitInputError(
                f"--data {self.root}: image {rel} has more pixels than Pillow's "
                f"decompression-bomb limit ({limit}): refused before decoding; resize it"
            ) from None
        with img:
            width, height = img.size
            if limit and width * height > limit:  # formats that skip Pillow's own check
                raise AuditkitInputError(
                    f"--data {self.root}: image {rel} is {width}x{height}, more than Pillow's "
                    f"decompression-bomb limit ({limit} pixels): refused; resize it"
                )
            self.pixels += width * height
            need = self.pixels * IMAGE_BYTES_PER_PIXEL
            if need > self.limits.memory_bytes:
                raise _too_big("--data", self.root, "its images", need, self.limits.memory_bytes)
            yield img


def metadata_dataset(name: str, builtins: Mapping[str, Any]) -> str:
    """The data set a model file's metadata names, if auditkit may read it on the file's word.

    Only built-in names: a path in a model file would let the file choose what auditkit reads
    from disk (and records in the report), so it is ignored and the user passes ``--data``.
    """
    if name in builtins:
        return name
    raise AuditkitInputError(
        f"no data: the model file names {one_line(name, 80)!r} as its data set, which is not a "
        f"built-in data set ({', '.join(sorted(builtins))}); a path in a model file is never "
        "read: pass --data"
    )


def check_groups_file(groups_file: Any, data: Path) -> None:
    """``--groups-file`` applies to image folders; elsewhere it is refused, never ignored."""
    if groups_file is None or data.is_dir():
        return
    raise AuditkitInputError(
        f"--groups-file {groups_file}: applies to image folders only; {data.name} carries its "
        "own group columns: name them with --sensitive (npz/pt keys or table columns)"
    )
