"""How the bias probe cuts the audit data into groups: sensitive columns, their intersections,
and labelled proxy slices (true class, image statistics) when there are none."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from auditkit.errors import AuditkitInputError
from auditkit.functional.fairness import image_statistics, quantile_slices
from auditkit.probes.bias.missing import with_missing_group

PROXY_NOTE = "proxy slice, not a demographic"
SINGLE_GROUP = (
    "every sensitive column has a single group ({columns}); a bias audit compares at least two "
    "groups: pass a column with two or more values"
)
NO_COLUMNS = (
    "the data has no sensitive columns and proxy_slices is 'never'; pass group columns "
    "(--sensitive, or group arrays in .npz/.pt) to audit groups"
)


@dataclass
class Slicing:
    """One way of cutting the audit data into groups (a column, an intersection, a proxy)."""

    name: str
    kind: str  # "sensitive" | "proxy"
    frame: pd.DataFrame
    definition: str
    rates: bool = True  # False when slicing by the true label makes rates meaningless
    order: list[str] | None = None
    members: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Plan:
    """What the audit will slice: the slicings, the columns behind them, or why it cannot run."""

    slicings: list[Slicing]
    columns: list[str]  # sensitive columns audited
    single_group_columns: dict[str, str]  # ignored columns → their only value
    skip_reason: str | None = None
    missing_values: dict[str, int] = field(default_factory=dict)  # column → rows without one


def plan(context, opts) -> Plan:
    """The slicings to audit and the group columns behind them (or the reason to skip)."""
    sensitive, proxy_slices = opts.sensitive, opts.proxy_slices
    data = context.data
    wanted = list(sensitive or data.groups)
    missing = [c for c in wanted if c not in data.groups]
    if missing:
        raise AuditkitInputError(
            f"--set bias.sensitive: no column {', '.join(missing)} in the data "
            f"(it has: {', '.join(data.groups) or 'no sensitive columns'})"
        )
    cleaned = {c: with_missing_group(data.groups[c]) for c in wanted}
    columns = {c: labels for c, (labels, _) in cleaned.items()}
    missing_values = {c: n for c, (_, n) in cleaned.items() if n}
    usable = [c for c in wanted if len(np.unique(columns[c])) >= 2]
    single = {c: str(columns[c][0]) for c in wanted if c not in usable}
    if single and not usable:
        described = ", ".join(f"{c}: {v}" for c, v in single.items())
        return Plan([], [], {}, SINGLE_GROUP.format(columns=described))
    slicings = [
        Slicing(c, "sensitive", categorical({c: columns[c]}), f"sensitive column {c}")
        for c in usable
    ]
    if len(usable) > 1 and opts.intersections:
        slicings.append(
            Slicing(
                " × ".join(usable),
                "sensitive",
                categorical({c: columns[c] for c in usable}),
                f"intersections of {', '.join(usable)}",
            )
        )
    if not usable and proxy_slices == "never":
        return Plan([], [], {}, NO_COLUMNS)
    if not usable or proxy_slices == "always":
        slicings.extend(proxy_slicings(context, opts.proxy_quantiles))
    if not slicings:
        return Plan([], usable, single, "no slicing has two or more groups to compare")
    for s in slicings:
        s.members = group_members(s.frame, s.kind)
    return Plan(slicings, usable, single, missing_values=missing_values)


def proxy_slicings(context, quantiles: int) -> list[Slicing]:
    """True class, and image brightness / contrast / ink-coverage quantiles — proxies only."""
    data = context.data
    names = class_names(context)
    y = data.y.numpy()
    out: list[Slicing] = []
    present = np.unique(y)
    if len(present) >= 2:
        labels = np.array([f"class {names[int(v)]}" for v in y], dtype=object)
        present_order = [f"class {names[int(v)]}" for v in present]
        out.append(
            Slicing(
                "class (proxy)",
                "proxy",
                categorical({"class (proxy)": labels}, present_order),
                f"true class of the example — {PROXY_NOTE}",
                rates=False,
                order=present_order,
            )
        )
    if data.modality == "image" and data.x.dim() >= 3:
        stats = image_statistics(data.x, data.input_range)
        explain = {
            "brightness": "mean pixel value",
            "contrast": "standard deviation of pixel values",
            "ink_coverage": "fraction of pixels brighter than the middle of the input range",
        }
        for stat, values in stats.items():
            labels, order = quantile_slices(values, int(quantiles), stat.replace("_", " "))
            if len(order) < 2:
                continue
            title = f"{stat.replace('_', ' ')} (proxy)"
            out.append(
                Slicing(
                    title,
                    "proxy",
                    categorical({title: labels}, order),
                    f"{explain[stat]}, cut at quantiles — {PROXY_NOTE}",
                    order=order,
                )
            )
    return out


def classes_of_interest(context, y: np.ndarray, positive_class) -> list[int]:
    """The positive class (index or name), 1 for binary tasks, else every class present."""
    k = context.adapter.num_classes
    names = class_names(context)
    if positive_class is not None:
        if isinstance(positive_class, str) and not positive_class.lstrip("-").isdigit():
            if positive_class not in names:
                raise AuditkitInputError(
                    f"--set bias.positive_class={positive_class}: no such class "
                    f"(classes: {', '.join(names)})"
                )
            return [names.index(positive_class)]
        index = int(positive_class)
        if not 0 <= index < k:
            raise AuditkitInputError(
                f"--set bias.positive_class={positive_class}: must be a class index in 0..{k - 1}"
            )
        return [index]
    if k == 2:
        return [1]
    return [int(c) for c in np.unique(y)]


def class_names(context) -> list[str]:
    names = context.data.class_names
    k = context.adapter.num_classes
    return list(names) if names and len(names) >= k else [str(i) for i in range(k)]


# --- helpers --------------------------------------------------------------------------------
def categorical(columns: dict[str, np.ndarray], order: list[str] | None = None) -> pd.DataFrame:
    """Group columns as categoricals: MetricFrame groups them faster than strings, and the
    category order is the display order (class index, quantile rank)."""
    return pd.DataFrame(
        {
            name: pd.Categorical(values, categories=order or sorted(set(values.tolist())))
            for name, values in columns.items()
        }
    )


def group_label(key, columns: list[str], kind: str) -> str:
    key = key if isinstance(key, tuple) else (key,)
    if kind == "proxy":
        return ", ".join(str(k) for k in key)
    return ", ".join(f"{c}={k}" for c, k in zip(columns, key, strict=True))


def group_members(frame: pd.DataFrame, kind: str) -> dict[str, np.ndarray]:
    """Boolean membership mask of every non-empty group of a slicing, by label."""
    columns = list(frame.columns)
    out: dict[str, np.ndarray] = {}
    for key, rows in frame.groupby(columns, observed=True).indices.items():
        mask = np.zeros(len(frame), dtype=bool)
        mask[rows] = True
        out[group_label(key, columns, kind)] = mask
    return out
