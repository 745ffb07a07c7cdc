"""CSV and parquet tables: feature columns, a label column, sensitive columns as the groups;
text columns coded to integers the same way for the audit and training tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from auditkit.data.checks import check_finite
from auditkit.data.core import AuditData
from auditkit.errors import AuditkitInputError


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
    check_finite(x, f"--data {path}")
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
