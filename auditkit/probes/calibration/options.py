"""Options of the calibration probe (interim: the old dict and its checks until auditkit.options
lands)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from auditkit.data.core import AuditData
from auditkit.errors import AuditkitInputError

# samples per example, examples used for uncertainty, examples per OOD set
BUDGET = {
    "fast": (8, 500, 256),
    "standard": (20, 2000, 1000),
    "thorough": (50, None, 2000),
}

OPTIONS: dict[str, Any] = {
    "n_bins": 15,
    "ood": None,
    "num_samples": None,
    "max_examples": None,
    "ood_size": None,
}


def validate(config: dict[str, Any]) -> None:
    _positive_int("n_bins", config["n_bins"])
    for key, least in (("num_samples", 2), ("max_examples", 1), ("ood_size", 2)):
        if config[key] is not None:
            _positive_int(key, config[key], least)
    ood = config["ood"]
    if ood is not None and not isinstance(ood, (str, Path, AuditData, torch.Tensor)):
        raise AuditkitInputError(
            f"--set calibration.ood: expected a data path, got {type(ood).__name__}"
        )


def _positive_int(key: str, value: Any, least: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise AuditkitInputError(
            f"--set calibration.{key}={value!r}: expected an integer ≥ {least}"
        )
