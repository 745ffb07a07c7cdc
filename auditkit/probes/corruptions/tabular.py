"""Table corruptions at five severities: what goes wrong with rows in production.

Each column is treated on its own scale, measured on the audit table: numeric columns get noise
in their own standard deviation and stay inside their observed range; a missing value becomes
the column's typical value (the median of a numeric column, the most frequent code of a
categorical one), which is what a pipeline's imputer would put there; categorical columns (text
columns held as codes, or columns of at most ``MAX_CATEGORY_CODES`` distinct whole numbers) get
their value swapped for another observed category, drawn by its frequency, at low rates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

#: A numeric column with at most this many distinct whole-number values is a category code.
MAX_CATEGORY_CODES = 10

TABLE_LEVELS = {
    "feature_noise": (0.1, 0.2, 0.3, 0.5, 0.8),
    "missing_values": (0.05, 0.1, 0.2, 0.3, 0.5),
    "category_swap": (0.01, 0.02, 0.05, 0.1, 0.2),
}
TABLE_MEANING = {
    "feature_noise": "σ of Gaussian noise per numeric column, in that column's own std "
    "(clipped to its observed range)",
    "missing_values": "share of cells set to the column's typical value (median, or most "
    "frequent category)",
    "category_swap": "share of categorical cells swapped for another observed category",
}
TABLE_CORRUPTIONS = tuple(TABLE_LEVELS)


@dataclass(frozen=True)
class ColumnStats:
    """What the corruptions need to know about each column, measured on the audit table."""

    categorical: np.ndarray  # bool per column
    std: np.ndarray
    low: np.ndarray
    high: np.ndarray
    typical: np.ndarray
    values: list[np.ndarray]  # categorical columns: observed codes
    weights: list[np.ndarray]  # and their frequencies

    @property
    def n_categorical(self) -> int:
        return int(self.categorical.sum())


def column_stats(x: torch.Tensor, categorical_names: set[str], names: list[str] | None) -> ColumnStats:
    """Per-column scale, range, typical value and categories of the table ``x`` (N, F)."""
    table = x.detach().cpu().double().numpy().reshape(len(x), -1)
    n_features = table.shape[1]
    names = list(names or [])
    categorical = np.zeros(n_features, bool)
    values, weights = [], []
    typical = np.median(table, axis=0)
    for j in range(n_features):
        column = table[:, j]
        codes, counts = np.unique(column, return_counts=True)
        named = j < len(names) and names[j] in categorical_names
        whole = len(codes) <= MAX_CATEGORY_CODES and np.all(codes == np.round(codes))
        if named or (whole and len(codes) > 1):
            categorical[j] = True
            typical[j] = codes[np.argmax(counts)]
        values.append(codes)
        weights.append(counts / counts.sum())
    return ColumnStats(
        categorical=categorical,
        std=table.std(axis=0),
        low=table.min(axis=0),
        high=table.max(axis=0),
        typical=typical,
        values=values,
        weights=weights,
    )


def corrupt_table(
    x: torch.Tensor, name: str, severity: int, stats: ColumnStats, generator: torch.Generator
) -> torch.Tensor:
    """``x`` (N, F) under table corruption ``name`` at ``severity`` (1–5)."""
    level = TABLE_LEVELS[name][severity - 1]
    rng = np.random.default_rng(int(torch.randint(2**31 - 1, (1,), generator=generator)))
    table = x.detach().cpu().double().numpy().reshape(len(x), -1).copy()
    numeric = ~stats.categorical
    if name == "feature_noise":
        noise = rng.standard_normal(table.shape) * stats.std * level
        table[:, numeric] = np.clip(
            table[:, numeric] + noise[:, numeric], stats.low[numeric], stats.high[numeric]
        )
    elif name == "missing_values":
        hit = rng.random(table.shape) < level
        table = np.where(hit, stats.typical[None, :], table)
    elif name == "category_swap":
        hit = rng.random(table.shape) < level
        for j in np.flatnonzero(stats.categorical):
            rows = np.flatnonzero(hit[:, j])
            codes, weights = stats.values[j], stats.weights[j]
            for i in rows:
                others = codes != table[i, j]
                if others.any():
                    p = weights[others] / weights[others].sum()
                    table[i, j] = rng.choice(codes[others], p=p)
    else:
        raise KeyError(name)
    return torch.from_numpy(table).to(x.dtype).reshape(x.shape).to(x.device)
