"""Reading user data: built-in names, .npz/.pt tensors, image folders, CSV/parquet tables."""

from __future__ import annotations

import csv
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit.data.checks import check_data_file, check_finite, int_labels
from auditkit.data.core import AuditData, as_group_columns
from auditkit.data.tables import load_table
from auditkit.errors import AuditkitInputError, one_line

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
TABLE_SUFFIXES = {".csv", ".parquet", ".pq"}

DATASET_GROUP = "auditkit.datasets"


def build_registered(
    builder: Callable[..., Any], label: str, *, fix: str = "", **params: Any
) -> AuditData:
    """Call a registered data set builder (a built-in or a plugin's ``auditkit.datasets`` entry)
    with ``params``; a failure or a return value that is not ``AuditData`` is one line of bad
    input starting with ``label`` and ending with ``fix``, never a crash."""
    try:
        data = builder(**params)
    except AuditkitInputError:
        raise
    except Exception as exc:  # a plugin's data set failing to build is bad input, not a crash
        raise AuditkitInputError(
            f"{label}: the data set failed to build ({type(exc).__name__}: "
            f"{one_line(str(exc) or type(exc).__name__, 200)}){fix}"
        ) from None
    if not isinstance(data, AuditData):
        raise AuditkitInputError(
            f"{label}: the data set plugin returned a {type(data).__name__}, not AuditData{fix}"
        )
    return data


def builtin_datasets() -> dict[str, Callable[..., AuditData]]:
    """Built-in data sets plus those plugins register under the ``auditkit.datasets`` group."""
    from auditkit.data import builtin

    found: dict[str, Callable[..., AuditData]] = {"digits": builtin.digits}
    from auditkit.registry import iter_entry_points

    for ep in iter_entry_points(DATASET_GROUP):
        # Imported only when that data set is asked for: a broken plugin costs nothing otherwise.
        found.setdefault(ep.name, _lazy(ep.load))
    return found


def _lazy(loader: Callable[[], Callable[..., AuditData]]) -> Callable[..., AuditData]:
    def build(**kwargs: Any) -> AuditData:
        return loader()(**kwargs)

    return build


def load_data(
    spec: str | Path,
    *,
    target: str | None = None,
    sensitive: Sequence[str] | None = None,
    groups_file: str | Path | None = None,
    keep_sensitive_features: bool = False,
    raw_table: bool = False,
    model_columns: Sequence[str] | None = None,
    categories: Mapping[str, Sequence[Any]] | None = None,
) -> AuditData:
    """Load audit data from a built-in name or a file/folder path.

    Args:
        spec: ``digits``, ``credit``, a ``.npz``/``.pt`` file, an image folder, a CSV/parquet.
        target: label column of a table.
        sensitive: sensitive-feature columns (tables, npz/pt keys, sidecar CSV columns).
        groups_file: sidecar CSV for image folders, keyed by the file path relative to the folder.
        keep_sensitive_features: tables only: the sensitive columns stay among the model's
            input features too (``--keep-sensitive-features``; for models trained with them).
            Other sources keep inputs and group columns apart already, so it changes nothing.
        raw_table: tables only: the model reads the raw table (a scikit-learn pipeline with its
            own encoders): text feature columns stay, as category codes with the code -> value
            lists in ``AuditData.categories`` (otherwise they are an error), and numbers that
            float32 rounds keep their own values in ``AuditData.exact_values``.
        model_columns: tables only: the columns the model was fitted on (``feature_names_in_``);
            sensitive columns among them stay among the features too (and are still groups).
        categories: tables only: category lists to extend rather than start afresh, so that a
            second table (``--train-data``) codes the same values with the same codes.

    Example:
        >>> data = load_data("credit.csv", target="default", sensitive=["sex", "age_band"])
    """
    sensitive = list(sensitive or [])
    builtins = builtin_datasets()
    if isinstance(spec, str) and spec in builtins:
        data = build_registered(builtins[spec], f"--data {spec}")
        return _keep_sensitive(data, sensitive)
    path = Path(spec)
    if not path.exists():
        names = ", ".join(sorted(builtins))
        raise AuditkitInputError(
            f"--data {spec}: no such file or folder, and not a built-in data set ({names})"
        )
    if path.is_dir():
        return load_image_folder(path, groups_file=groups_file, sensitive=sensitive)
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return load_arrays(path, sensitive=sensitive)
    if suffix == ".pt":
        return load_arrays(path, sensitive=sensitive)
    if suffix in TABLE_SUFFIXES:
        check_data_file(path)  # a FIFO would block the CSV reader forever
        return load_table(
            path, target=target, sensitive=sensitive,
            keep_sensitive_features=keep_sensitive_features, raw_table=raw_table,
            model_columns=model_columns, categories=categories,
        )
    raise AuditkitInputError(
        f"--data {spec}: unsupported data file type {suffix!r}; use .npz, .pt, .csv, .parquet "
        "or an image folder"
    )


def _keep_sensitive(data: AuditData, sensitive: Sequence[str]) -> AuditData:
    missing = [c for c in sensitive if c not in data.groups]
    if missing:
        raise AuditkitInputError(
            f"--sensitive {','.join(missing)}: not in data set {data.name} "
            f"(it has: {', '.join(sorted(data.groups)) or 'no sensitive columns'})"
        )
    return data


def _image_like(x: np.ndarray) -> tuple[np.ndarray, str, tuple[float, float] | None]:
    """Integers 0–255 become floats in [0, 1]; 3-D (N, H, W) gains a channel axis."""
    if x.ndim >= 3:
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float32) / 255.0
        if x.ndim == 3:
            x = x[:, None]
        elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
            x = np.moveaxis(x, -1, 1)  # NHWC → NCHW
        lo, hi = float(x.min()), float(x.max())
        box = (0.0, 1.0) if lo >= 0.0 and hi <= 1.0 else None
        return x.astype(np.float32), "image", box
    return x.astype(np.float32), "tabular", None


def load_arrays(path: Path, *, sensitive: Sequence[str] = ()) -> AuditData:
    """``.npz`` or ``.pt`` with keys ``x`` and ``y`` (plus optional group columns).

    A data file is as untrusted as a model file: it must be a regular file, and a zip (every
    ``.npz``, a modern ``.pt``) is validated before numpy or torch reads it (no bombs, no
    declared sizes beyond what is stored; ``auditkit.loading.safety``).
    """
    check_data_file(path)
    try:
        if path.suffix.lower() == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                arrays = {k: archive[k] for k in archive.files}
        else:
            obj = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(obj, dict):
                raise AuditkitInputError(f"--data {path}: expected a dict with keys 'x' and 'y'")
            arrays = {
                k: v.numpy() if isinstance(v, torch.Tensor) else np.asarray(v)
                for k, v in obj.items()
            }
    except AuditkitInputError:
        raise
    except pickle.UnpicklingError:
        raise AuditkitInputError(
            f"--data {path}: the file holds pickled Python objects, which auditkit does not load "
            "(they could run code); save plain tensors: torch.save({'x': x, 'y': y}, path)"
        ) from None
    except Exception as exc:
        raise AuditkitInputError(f"--data {path}: cannot read it ({one_line(exc, 200)})") from None
    for key in ("x", "y"):
        if key not in arrays:
            raise AuditkitInputError(
                f"--data {path}: missing array {key!r} (found: {', '.join(sorted(arrays))}); "
                "save inputs as 'x' and labels as 'y'"
            )
    if np.size(arrays["x"]) == 0:
        raise AuditkitInputError(
            f"--data {path}: no examples (x has shape {np.shape(arrays['x'])}, y has shape "
            f"{np.shape(arrays['y'])}); save at least one example"
        )
    x, modality, box = _image_like(np.asarray(arrays["x"]))
    n = len(x)
    columns = list(sensitive) or [
        k for k, v in arrays.items() if k not in ("x", "y") and np.ndim(v) == 1 and len(v) == n
    ]
    missing = [c for c in columns if c not in arrays]
    if missing:
        raise AuditkitInputError(
            f"--sensitive {','.join(missing)}: not in {path.name} (keys: {', '.join(sorted(arrays))})"
        )
    bad = [c for c in columns if np.ndim(arrays[c]) != 1 or len(arrays[c]) != n]
    if bad:
        raise AuditkitInputError(
            f"--sensitive {bad[0]}: in {path.name} it must be one value per example ({n}), "
            f"got shape {np.shape(arrays[bad[0]])}"
        )
    check_finite(x, f"--data {path}")
    groups = as_group_columns({c: arrays[c] for c in columns}, n)
    return AuditData(
        name=path.name, x=torch.from_numpy(x), y=torch.from_numpy(int_labels(arrays["y"], path)),
        groups=groups, modality=modality, input_range=box, source=str(path),
    )


def load_image_folder(
    root: Path, *, groups_file: str | Path | None = None, sensitive: Sequence[str] = ()
) -> AuditData:
    """``root/<class>/<image>`` → an image data set in [0, 1]; optional sidecar groups CSV."""
    from auditkit._deps import require

    image_module = require("PIL.Image", "reading image folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if not classes:
        raise AuditkitInputError(
            f"--data {root}: an image folder needs one subfolder per class (root/<class>/<img>)"
        )
    if sensitive and groups_file is None:
        raise AuditkitInputError(
            f"--sensitive {','.join(sensitive)}: an image folder has no group columns; pass "
            "--groups-file CSV with a 'path' column (relative to the folder) and those columns"
        )
    files, labels, rel_paths = [], [], []
    for label, name in enumerate(classes):
        for file in sorted((root / name).rglob("*")):
            if file.suffix.lower() in IMAGE_SUFFIXES:
                files.append(file)
                labels.append(label)
                rel_paths.append(file.relative_to(root).as_posix())
    images, grey = [], True
    for file in files:
        try:
            with image_module.open(file) as img:
                grey = grey and img.mode in ("1", "L", "LA", "I", "I;16", "F")
                images.append(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise AuditkitInputError(
                f"--data {root}: cannot read image {file.relative_to(root)} ({one_line(exc, 150)})"
            ) from None
    # A folder of greyscale images stays single-channel, as a model trained on it expects.
    images = [
        (np.asarray(im.convert("L"), dtype=np.float32)[..., None] if grey
         else np.asarray(im, dtype=np.float32)) / 255.0
        for im in images
    ]
    if not images:
        raise AuditkitInputError(f"--data {root}: no images found under the class folders")
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise AuditkitInputError(
            f"--data {root}: images have different sizes {sorted(shapes)[:3]}; resize them to one"
        )
    x = np.moveaxis(np.stack(images), -1, 1)
    groups: dict[str, np.ndarray] = {}
    if groups_file is not None:
        groups = _sidecar_groups(Path(groups_file), rel_paths, sensitive)
    return AuditData(
        name=root.name, x=torch.from_numpy(x), y=torch.tensor(labels), groups=groups,
        class_names=classes, modality="image", input_range=(0.0, 1.0), source=str(root),
    )


def _sidecar_groups(
    path: Path, rel_paths: list[str], sensitive: Sequence[str]
) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise AuditkitInputError(f"--groups-file {path}: cannot read it ({one_line(exc, 150)})") from None
    if not rows or "path" not in rows[0]:
        raise AuditkitInputError(
            f"--groups-file {path}: needs a 'path' column (image path relative to the folder)"
        )
    by_path = {_norm_rel(row["path"]): row for row in rows}
    columns = list(sensitive) or [c for c in rows[0] if c != "path"]
    absent = [c for c in columns if c not in rows[0]]
    if absent:
        have = ", ".join(c for c in rows[0] if c != "path") or "none"
        raise AuditkitInputError(
            f"--sensitive {','.join(absent)}: not a column of {path.name} (columns: {have})"
        )
    missing = [p for p in rel_paths if p not in by_path]
    if missing:
        raise AuditkitInputError(
            f"--groups-file {path}: no row for {len(missing)} images (e.g. {missing[0]})"
        )
    return {c: np.array([by_path[p][c] for p in rel_paths]) for c in columns}


def _norm_rel(text: str) -> str:
    """Sidecar paths may be written ``./cat/1.png`` or ``cat\\1.png``; compare them as ``cat/1.png``."""
    return text.strip().replace("\\", "/").removeprefix("./")


def from_tensors(
    x: Any,
    y: Any,
    *,
    groups: dict[str, Any] | None = None,
    name: str = "in-memory",
    class_names: list[str] | None = None,
    input_range: tuple[float, float] | None | str = "auto",
) -> AuditData:
    """Build ``AuditData`` from arrays/tensors (the Python API's path)."""
    x_arr = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    y_arr = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
    if x_arr.ndim >= 3 and not np.issubdtype(x_arr.dtype, np.integer):
        modality = "image"
        lo, hi = float(x_arr.min()), float(x_arr.max())
        box = (0.0, 1.0) if lo >= 0 and hi <= 1 else None
    else:
        x_arr, modality, box = _image_like(x_arr)
    if input_range != "auto":
        box = input_range
    return AuditData(
        name=name, x=torch.from_numpy(np.ascontiguousarray(x_arr, dtype=np.float32)),
        y=torch.from_numpy(y_arr.astype(np.int64)),
        groups=as_group_columns(groups, len(y_arr)), class_names=class_names,
        modality=modality, input_range=box, source="in-memory",
    )


def from_dataloader(loader: Any, *, name: str = "dataloader", **kwargs: Any) -> AuditData:
    """Concatenate a DataLoader's ``(x, y)`` batches into ``AuditData``."""
    xs, ys = [], []
    for batch in loader:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise AuditkitInputError("data: a DataLoader must yield (inputs, labels) batches")
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]))
    if not xs:
        raise AuditkitInputError("data: the DataLoader yielded no batches")
    return from_tensors(torch.cat(xs), torch.cat(ys), name=name, **kwargs)
