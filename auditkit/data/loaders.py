"""Reading user data: built-in names, .npz/.pt tensors, image folders, CSV/parquet tables."""

from __future__ import annotations

import csv
import pickle
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit.data.core import AuditData, as_group_columns, one_hot_message
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
        _check_data_file(path)  # a FIFO would block the CSV reader forever
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
    _check_data_file(path)
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
    _check_finite(x, f"--data {path}")
    groups = as_group_columns({c: arrays[c] for c in columns}, n)
    return AuditData(
        name=path.name, x=torch.from_numpy(x), y=torch.from_numpy(_int_labels(arrays["y"], path)),
        groups=groups, modality=modality, input_range=box, source=str(path),
    )


def _check_data_file(path: Path) -> None:
    from auditkit.loading import safety

    try:
        safety.check_regular_file(path)
        with open(path, "rb") as fh:
            is_zip = fh.read(4) == b"PK\x03\x04"
        if is_zip:
            safety.validate_zip(path)
            safety.check_pickled_storages(path)
    except AuditkitInputError as exc:
        text = str(exc)
        raise AuditkitInputError(
            text if text.startswith("--data") else f"--data {text}"
        ) from None


def _check_finite(x: np.ndarray, where: str) -> None:
    # NaN inputs give NaN logits and silently wrong metrics; say so up front.
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).reshape(len(x), -1).any(axis=1).sum())
        raise AuditkitInputError(
            f"{where}: {bad} examples contain NaN or infinite values; clean or drop them"
        )


def complete_class_names(data: AuditData, num_classes: int | None) -> None:
    """Name every model output: data whose labels cover only some classes (a two-class model
    audited on one-class data) gets its class names from its labels, fewer than the outputs.
    The missing ones are named by index, so every per-class table has a row per output."""
    names = data.class_names
    if names and num_classes and len(names) < num_classes:
        data.class_names = [*names, *(str(i) for i in range(len(names), num_classes))]


def check_input_box(data: AuditData, box: tuple[float, float] | None) -> None:
    """Refuse data outside the declared input box: attacks clamp to the box, so pixels in
    [0, 16] audited as [0, 1] would be "attacked" by the clamp alone."""
    if box is None or not len(data.x) or not torch.is_floating_point(data.x):
        return
    lo, hi = float(data.x.min()), float(data.x.max())
    slack = 1e-4 * (box[1] - box[0])
    if lo < box[0] - slack or hi > box[1] + slack:
        raise AuditkitInputError(
            f"data {data.name}: values span [{lo:.4g}, {hi:.4g}] but the model's input box is "
            f"[{box[0]:g}, {box[1]:g}] (--input-range or the model file's metadata); rescale "
            f"the data, or pass --input-range {lo:.4g},{hi:.4g} if that is the model's real range"
        )


def _int_labels(values: Any, path: Path) -> np.ndarray:
    raw = np.asarray(values)
    if raw.ndim == 2 and raw.shape[1] > 1:
        raise AuditkitInputError(one_hot_message(f"--data {path}", tuple(raw.shape)))
    y = raw.reshape(-1)
    if not np.issubdtype(y.dtype, np.number) or (
        np.issubdtype(y.dtype, np.floating) and not np.array_equal(y, np.round(y))
    ):
        raise AuditkitInputError(
            f"--data {path}: labels 'y' must be integer class indices 0..K-1 (got {y.dtype})"
        )
    # The range (0..K-1, K = the model's outputs) is checked once, in pipeline.build_context,
    # where the model's class count is known; here only that they are integers.
    return y.astype(np.int64)


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


def load_table(
    path: Path,
    *,
    target: str | None,
    sensitive: Sequence[str] = (),
    keep_sensitive_features: bool = False,
    raw_table: bool = False,
    model_columns: Sequence[str] | None = None,
    categories: Mapping[str, Sequence[Any]] | None = None,
) -> AuditData:
    """CSV/parquet: numeric feature columns, a ``--target`` label column, ``--sensitive`` groups.

    Sensitive columns are group labels, kept out of the features by default. A model trained
    with them as inputs needs ``keep_sensitive_features=True`` (``--keep-sensitive-features``):
    they then stay among the features too, in the table's column order (they must be numeric).
    A model that reads the raw table (``raw_table``, a scikit-learn pipeline) may take text
    columns, held as category codes, and keeps the sensitive columns it was fitted on
    (``model_columns``) among its features without the flag.
    """
    import pandas as pd

    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        else:
            from auditkit._deps import require

            require("pyarrow", "reading parquet files")
            frame = pd.read_parquet(path)
    except Exception as exc:
        raise AuditkitInputError(f"--data {path}: cannot read the table ({exc})") from None
    if target is None:
        raise AuditkitInputError(f"--data {path}: a table needs --target COLUMN (the label)")
    missing = [c for c in [target, *sensitive] if c not in frame.columns]
    if missing:
        raise AuditkitInputError(
            f"--data {path}: no column {', '.join(missing)} (columns: {', '.join(frame.columns)})"
        )
    if not len(frame):
        raise AuditkitInputError(f"--data {path}: no examples (the table has no rows)")
    if keep_sensitive_features and not raw_table:
        text = [c for c in sensitive if not pd.api.types.is_numeric_dtype(frame[c])]
        if text:
            raise AuditkitInputError(
                f"--keep-sensitive-features: sensitive column {', '.join(text)} of {path.name} "
                "is not numeric, so it cannot be a model input; encode it as numbers"
            )
    inputs = set(model_columns or ())
    dropped = [c for c in sensitive if not keep_sensitive_features and c not in inputs]
    features = frame.drop(columns=[target, *dropped])
    non_numeric = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    if non_numeric and not raw_table:
        raise AuditkitInputError(
            f"--data {path}: non-numeric feature columns {', '.join(non_numeric)}; encode them, "
            "or name them in --sensitive if they are group labels"
        )
    coded: dict[str, list[Any]] = {}
    if non_numeric:
        features = features.copy()
        for column in non_numeric:
            codes, coded[column] = _category_codes(features[column], (categories or {}).get(column))
            features[column] = codes
    labels = frame[target]
    if labels.isna().any():
        raise AuditkitInputError(
            f"--data {path}: the target column {target!r} has {int(labels.isna().sum())} empty "
            "values; drop those rows"
        )
    values = labels.to_numpy()
    if (
        pd.api.types.is_numeric_dtype(labels)
        and np.array_equal(values, np.round(values))
        and values.min() >= 0
    ):
        # Integer class indices: keep them, so label k is the model's output k.
        y = values.astype(np.int64)
        class_names = [str(c) for c in range(int(y.max()) + 1)]
    else:
        codes, uniques = pd.factorize(labels, sort=True)
        y, class_names = codes.astype(np.int64), [str(u) for u in uniques]
    x = features.to_numpy(dtype=np.float32, copy=True)  # pandas may hand out a read-only view
    _check_finite(x, f"--data {path}")
    return AuditData(
        name=path.name,
        x=torch.from_numpy(x),
        y=torch.from_numpy(y),
        groups={c: frame[c].astype(str).to_numpy() for c in sensitive},
        class_names=class_names,
        modality="tabular",
        input_range=None,
        source=str(path),
        feature_names=list(features.columns),
        categories=coded,
        exact_values=_exact_values(features, x) if raw_table else {},
    )


def _category_codes(values: Any, known: Sequence[Any] | None) -> tuple[np.ndarray, list[Any]]:
    """Codes of a text column and the values they stand for (an empty cell is a value too: NaN):
    the sorted distinct values, or ``known`` followed by the values it lacks."""
    import pandas as pd

    try:
        _, uniques = pd.factorize(values, sort=True, use_na_sentinel=False)
    except TypeError:  # values of several types do not sort
        _, uniques = pd.factorize(values, use_na_sentinel=False)
    seen = list(known or [])
    have = {v for v in seen if not pd.isna(v)}
    missing = not any(pd.isna(v) for v in seen)
    for value in uniques.tolist():
        if pd.isna(value):
            if missing:
                seen.append(np.nan)
                missing = False
        elif value not in have:
            seen.append(value)
            have.add(value)
    codes = pd.Index(seen, dtype=object).get_indexer(values.astype(object))
    return codes.astype(np.float32), seen


def _exact_values(features: Any, x: np.ndarray) -> dict[str, np.ndarray]:
    """For the numeric columns whose values float32 rounds: their sorted distinct float64 values
    (a model that reads the raw table gets those back for cells no probe has moved)."""
    exact: dict[str, np.ndarray] = {}
    for k, column in enumerate(features.columns):
        values = features[column].to_numpy(dtype=np.float64)
        if not np.array_equal(values, x[:, k].astype(np.float64)):
            exact[str(column)] = np.unique(values)
    return exact


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
