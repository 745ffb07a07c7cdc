"""scikit-learn estimators and pipelines on the raw table, as black boxes.

A fitted pipeline takes the table's columns as they are (its own scaler and encoders do the
preprocessing), so the adapter hands it the audit table's columns by name, in the order the
pipeline was fitted on. Columns the pipeline one-hot / ordinal encodes are categorical: an
attacker may not move them by a fraction of a standard deviation, so they are frozen
(``feature_mask``) and the report says so. Text columns arrive as category codes
(``AuditData.categories``); the adapter turns them back into the table's values before each call,
and they are always frozen. A sensitive column the pipeline was fitted on is one of its inputs
(and still the bias probe's group column). No input gradients: the adversarial probe uses
gradient-free attacks; the memorization probe re-fits ``sklearn.base.clone`` of the estimator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from auditkit.adapters.base import Diagnostics, ModelAdapter, class_indices
from auditkit.errors import AuditkitInputError, one_line

#: Transformers whose input columns are categories, not quantities.
CATEGORICAL_ENCODERS = ("OneHotEncoder", "OrdinalEncoder", "TargetEncoder")


def is_estimator(obj: Any) -> bool:
    """A fitted-or-not scikit-learn style classifier (``fit`` and ``predict``)."""
    return hasattr(obj, "fit") and hasattr(obj, "predict") and hasattr(obj, "get_params")


def _categorical_columns(estimator: Any, names: Sequence[str]) -> list[str]:
    """Columns that a ColumnTransformer inside ``estimator`` sends to a categorical encoder."""
    found: list[str] = []
    stack = [estimator]
    while stack:
        node = stack.pop()
        if hasattr(node, "steps"):  # Pipeline
            stack.extend(step for _, step in node.steps)
        if hasattr(node, "transformers_"):  # fitted ColumnTransformer
            for _, transformer, columns in node.transformers_:
                inner = [transformer]
                if hasattr(transformer, "steps"):
                    inner = [s for _, s in transformer.steps]
                if not any(type(t).__name__ in CATEGORICAL_ENCODERS for t in inner):
                    continue
                for column in np.atleast_1d(columns):
                    if isinstance(column, (int, np.integer)) and 0 <= int(column) < len(names):
                        found.append(str(names[int(column)]))
                    elif isinstance(column, (bool, np.bool_)):
                        continue
                    else:
                        found.append(str(column))
                if isinstance(columns, np.ndarray) and columns.dtype == bool:
                    found.extend(str(n) for n, keep in zip(names, columns, strict=False) if keep)
    return list(dict.fromkeys(found))


def _decode(codes: np.ndarray, values: Sequence[Any]) -> np.ndarray:
    """The table's values for category codes. A code some probe moved (noise, generated
    out-of-distribution rows) becomes the nearest category: the model only ever sees values
    of the table."""
    lookup = np.empty(len(values), dtype=object)
    lookup[:] = list(values)
    index = np.clip(np.rint(np.nan_to_num(codes)), 0, max(len(values) - 1, 0)).astype(np.int64)
    return lookup[index]


def _exact(column: np.ndarray, values: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """Cells equal to the float32 of one of the table's float64 ``values`` get that value back
    (``keys``: ``values`` as float32, in the same order); moved cells stay as they are."""
    at = np.clip(np.searchsorted(keys, column), 0, len(keys) - 1)
    return np.where(keys[at] == column, values[at], column)


class SklearnAdapter(ModelAdapter):
    """A scikit-learn classifier (or pipeline) on the audit table's raw columns.

    Args:
        estimator: a fitted classifier with ``predict`` (``predict_proba`` or
            ``decision_function`` give scores; ``predict`` alone gives labels only).
        input_shape: ``(n_columns,)`` of the audit table.
        feature_names: the audit table's column names (matched to ``feature_names_in_``).
        class_names: the data's classes, to map the estimator's ``classes_`` onto.
        format: how the model arrived (``skops``, ``scikit-learn``).
        categories: text columns held as codes, ``{column: [value of code 0, ...]}``
            (``AuditData.categories``); the estimator gets the values.
        exact_values: float64 values of columns that float32 rounds (``AuditData.exact_values``);
            the estimator gets them for unmoved cells, so its answers are its own on the table.
        sensitive: the data's sensitive columns (a note says which ones the model reads).

    Example:
        >>> adapter = SklearnAdapter(pipeline, input_shape=(8,), feature_names=data.feature_names,
        ...                          class_names=data.class_names)
    """

    supports_gradients = False

    def __init__(
        self,
        estimator: Any,
        *,
        input_shape: Sequence[int],
        feature_names: Sequence[str] | None = None,
        class_names: Sequence[str] | None = None,
        num_classes: int | None = None,
        format: str = "scikit-learn",
        categories: Mapping[str, Sequence[Any]] | None = None,
        exact_values: Mapping[str, np.ndarray] | None = None,
        sensitive: Sequence[str] = (),
    ) -> None:
        if not hasattr(estimator, "classes_"):
            raise AuditkitInputError(
                f"the {type(estimator).__name__} has no classes_: auditkit audits fitted "
                "classifiers (a regressor or an unfitted estimator cannot be audited)"
            )
        self.estimator = estimator
        self.format = format
        self.device = torch.device("cpu")
        self.input_shape = tuple(int(s) for s in input_shape)
        if len(self.input_shape) != 1:
            raise AuditkitInputError(
                f"scikit-learn models take tables; the data has examples of shape "
                f"{self.input_shape}"
            )
        self.input_range = None
        self.table_names = list(feature_names) if feature_names else None
        self.class_names = list(class_names) if class_names else None
        self.categories = {str(c): list(v) for c, v in (categories or {}).items()}
        self.sensitive = list(sensitive)
        self.exact_values = {str(c): np.asarray(v, dtype=np.float64)
                             for c, v in (exact_values or {}).items() if len(v)}
        self._keys = {c: v.astype(np.float32).astype(np.float64)
                      for c, v in self.exact_values.items()}
        self.columns, self.model_names = self._columns()
        self.class_columns = self._class_columns()
        width = max(self.class_columns) + 1 if self.class_columns else 0
        self.num_classes = int(max(num_classes or 0, width, len(self.class_names or [])))
        self.outputs = self._outputs()
        names = self.table_names or [str(i) for i in range(self.input_shape[0])]
        self.text_features = tuple(c for c in names if c in self.categories)
        encoded = [c for c in _categorical_columns(estimator, names) if c in names]
        # Text columns are categories whatever the pipeline does with them: never perturbed.
        self.frozen_features = tuple(dict.fromkeys([*encoded, *self.text_features]))
        mask = torch.ones(self.input_shape)
        for column in self.frozen_features:
            mask[names.index(column)] = 0.0
        unused = [i for i in range(self.input_shape[0]) if i not in set(self.columns)]
        mask[unused] = 0.0  # columns the model never reads: moving them proves nothing
        self.feature_mask = mask
        self.diagnostics = Diagnostics(output_kind=self.outputs, notes=self._notes())

    # --- columns and classes --------------------------------------------------------------
    def _columns(self) -> tuple[list[int], list[str] | None]:
        wanted = getattr(self.estimator, "feature_names_in_", None)
        width = self.input_shape[0]
        if wanted is not None:
            wanted = [str(c) for c in wanted]
            if self.table_names is None:
                if len(wanted) != width:
                    raise AuditkitInputError(
                        f"the model was fitted on columns {', '.join(wanted)} but the data has "
                        f"{width} unnamed features; pass the table (CSV/parquet) it was fitted on"
                    )
                return list(range(width)), wanted
            missing = [c for c in wanted if c not in self.table_names]
            if missing:
                raise AuditkitInputError(
                    f"the model needs columns the data lacks: {', '.join(missing)} (data "
                    f"columns: {', '.join(self.table_names)}); pass the table it was fitted on"
                )
            return [self.table_names.index(c) for c in wanted], wanted
        expected = getattr(self.estimator, "n_features_in_", width)
        if int(expected) != width:
            from auditkit import errors

            raise AuditkitInputError(errors.shape_mismatch((width,), (int(expected),)))
        return list(range(width)), None

    def _class_columns(self) -> list[int]:
        """For each entry of the estimator's ``classes_``, the data's class index."""
        return class_indices(self.estimator.classes_, self.class_names)

    def _outputs(self) -> str:
        if hasattr(self.estimator, "predict_proba"):
            return "probabilities"
        if hasattr(self.estimator, "decision_function"):
            return "logits"
        return "labels"

    def _notes(self) -> list[str]:
        notes = [f"scikit-learn {type(self.estimator).__name__}: no input gradients; "
                 "gradient-free attacks perturb its numeric columns within their observed range"]
        if self.frozen_features:
            notes.append(f"categorical columns {', '.join(self.frozen_features)} are held fixed "
                         "by the attacks")
        if self.text_features:
            notes.append(f"text columns {', '.join(self.text_features)} reach the model as the "
                         "table's values (the audit holds them as category codes) and are never "
                         "perturbed")
        read = [c for c in self.sensitive if self.model_names and c in self.model_names]
        if read:
            notes.append(f"sensitive column{'s' if len(read) > 1 else ''} {', '.join(read)}: "
                         "an input the pipeline was fitted on, handed to it from the table and "
                         "still the bias probe's group column (no --keep-sensitive-features "
                         "needed)")
        if self.outputs == "labels":
            notes.append("the model has no predict_proba / decision_function: labels only "
                         "(one-hot probabilities, decision-based attack)")
        return notes

    # --- the model ------------------------------------------------------------------------
    def table(self, x: torch.Tensor | np.ndarray) -> Any:
        """The rows the estimator sees: the fitted columns, by name when it has names."""
        values = np.asarray(x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x,
                            dtype=np.float64)[:, self.columns]
        names = self._names_of_columns()
        for k, name in enumerate(names):
            if name in self.exact_values:
                values[:, k] = _exact(values[:, k], self.exact_values[name], self._keys[name])
        text = {k: self.categories[n] for k, n in enumerate(names) if n in self.categories}
        if self.model_names is None:
            if not text:
                return values
            rows = values.astype(object)
            for k, values_of in text.items():
                rows[:, k] = _decode(values[:, k], values_of)
            return rows
        import pandas as pd

        # One frame from whole columns (no column replaced afterwards): its cost is per call,
        # and the attacks call once per step.
        return pd.DataFrame({
            name: _decode(values[:, k], text[k]) if k in text else values[:, k]
            for k, name in enumerate(self.model_names)
        }, copy=False)

    def _names_of_columns(self) -> list[str]:
        """The audit table's name of each column the estimator reads, in its order."""
        if self.table_names is None:
            return [str(i) for i in self.columns]
        return [self.table_names[i] for i in self.columns]

    def _scores(self, x: torch.Tensor) -> torch.Tensor:
        rows = self.table(x)
        out = np.zeros((len(x), self.num_classes), dtype=np.float32)
        try:
            if self.outputs == "probabilities":
                out[:, self.class_columns] = self.estimator.predict_proba(rows)
            elif self.outputs == "logits":
                scores = np.asarray(self.estimator.decision_function(rows), dtype=np.float32)
                if scores.ndim == 1:  # binary: one score, positive for classes_[1]
                    scores = np.stack([-scores / 2, scores / 2], axis=1)
                out[:, self.class_columns] = scores
            else:
                predicted = self.estimator.predict(rows)
                index = self._class_columns_of(predicted)
                out[np.arange(len(x)), index] = 1.0
        except AuditkitInputError:
            raise
        except Exception as exc:  # the user's estimator: a failure is bad input, named
            raise AuditkitInputError(
                f"the {type(self.estimator).__name__} fails on the audit table "
                f"({type(exc).__name__}: {one_line(exc, 200)})"
            ) from None
        return torch.from_numpy(out)

    def _class_columns_of(self, predicted: np.ndarray) -> np.ndarray:
        lookup = {str(c): k for c, k in zip(self.estimator.classes_, self.class_columns,
                                            strict=True)}
        # One look-up per distinct answer, not per row.
        distinct, inverse = np.unique(np.asarray(predicted), return_inverse=True)
        columns = np.asarray([lookup[str(p)] for p in distinct], dtype=np.int64)
        return columns[inverse.reshape(-1)]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        scores = self._scores(x)
        if self.outputs == "logits":
            return scores
        return torch.log(scores.clamp_min(1e-12))

    def diagnose(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Diagnostics:
        first, second = self._scores(x), self._scores(x)
        diff = float((first - second).abs().max()) if first.numel() else 0.0
        self.diagnostics = Diagnostics(
            output_kind=self.outputs, stochastic=diff > 1e-5, stochastic_max_diff=diff,
            notes=self._notes(),
        )
        return self.diagnostics

    def refit_clone(self, x: torch.Tensor, y: torch.Tensor) -> SklearnAdapter:
        """An unfitted ``sklearn.base.clone`` of the estimator fitted on ``(x, y)`` (the
        memorization probe's random-label test); the audited estimator is not touched."""
        from sklearn.base import clone

        fresh = clone(self.estimator)
        labels = np.asarray(self.estimator.classes_)[
            [self.class_columns.index(int(k)) if int(k) in self.class_columns else 0
             for k in y.tolist()]
        ]
        fresh.fit(self.table(x), labels)
        return SklearnAdapter(fresh, input_shape=self.input_shape, feature_names=self.table_names,
                              class_names=self.class_names, num_classes=self.num_classes,
                              format=self.format, categories=self.categories,
                              exact_values=self.exact_values, sensitive=self.sensitive)

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "path": "black-box: scikit-learn on the raw table (gradient-free attacks)",
            "estimator": type(self.estimator).__name__,
            "outputs": self.outputs,
            "columns": self.model_names,
            "frozen_features": list(self.frozen_features),
            "text_features": list(self.text_features),
        }
