"""Missing values in a sensitive column form their own group, named so, and never merge with a
real value.

A table loaded with pandas turns an empty cell into NaN, and ``astype(str)`` turns that into the
string ``"nan"``: the audit then reported a group ``male=nan`` (or, for ``None``, ``"None"``)
as if it were a category of people. Here every spelling of "no value" becomes one explicit group,
``missing``, counted so the judge can name it in a finding: people whose group is unknown are
often the ones a model serves worst, and a reviewer must see that they were audited as such.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

MISSING = "missing"
#: What a missing value has become once a loader cast the column to strings.
MISSING_SPELLINGS = frozenset({"nan", "NaN", "None", "<NA>", "NaT", ""})


def with_missing_group(values: Any) -> tuple[np.ndarray, int]:
    """``values`` as strings, every missing value replaced by one group label, and how many
    there were. The label is ``missing``, or ``missing (no value)`` where a real value is
    already spelled ``missing``."""
    raw = np.asarray(values, dtype=object).reshape(-1)
    absent = np.array(pd.isna(pd.Series(raw, dtype=object)), dtype=bool)
    labels = raw.astype(str)
    absent |= np.isin(labels, list(MISSING_SPELLINGS))
    if not absent.any():
        return labels, 0
    name = MISSING if MISSING not in set(labels[~absent]) else f"{MISSING} (no value)"
    labels = labels.astype(object)
    labels[absent] = name
    return labels.astype(str), int(absent.sum())
