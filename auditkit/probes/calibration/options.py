"""Options of the calibration probe, declared once (type, default, bounds, meaning, budget
defaults)."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option


@dataclass(frozen=True)
class CalibrationOptions:
    n_bins: int = option(
        15, "equal-width (and equal-mass) confidence bins for ECE; 15 as in Guo et al.", minimum=1
    )
    ood: str | None = option(
        None,
        "your out-of-distribution set: a data spec (.npz/.pt, image folder, CSV, built-in name), "
        "or from Python an AuditData or input tensor (none: generated noise sets)",
        data=True,
    )
    num_samples: int = option(
        20,
        "uncertainty samples per example (MC dropout, random passes or test-time augmentation)",
        minimum=2,
        budgets={"fast": 8, "standard": 20, "thorough": 50},
    )
    max_examples: int | None = option(
        2000,
        "evaluation examples that get uncertainty samples (none: all of them)",
        minimum=1,
        budgets={"fast": 500, "standard": 2000, "thorough": None},
    )
    ood_size: int = option(
        1000,
        "examples per OOD set",
        minimum=2,
        budgets={"fast": 256, "standard": 1000, "thorough": 2000},
    )
