"""Options of the bias probe, declared once (type, default, bounds, meaning, budget defaults)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from auditkit.options import option

N_BOOT = {"fast": 50, "standard": 100, "thorough": 500}  # bootstrap resamples per budget


@dataclass(frozen=True)
class BiasOptions:
    sensitive: tuple[str, ...] | None = option(
        None, "sensitive columns to audit (none: every group column in the data)"
    )
    intersections: bool = option(True, "also audit the intersections of several sensitive columns")
    positive_class: str | None = option(
        None,
        "class whose selection rate, TPR and FPR are compared, as an index or a name (none: 1 "
        "for binary tasks, every class one-vs-rest otherwise)",
    )
    min_group_size: int = option(
        30, "groups with fewer examples are shown and flagged but never ranked", minimum=1
    )
    # Fewer resamples cannot estimate a standard error; intervals would be fiction.
    n_boot: int = option(
        100,
        "bootstrap resamples behind every interval",
        minimum=10,
        budgets=N_BOOT,
    )
    confidence: float = option(
        0.95,
        "confidence level of the intervals",
        minimum=0.0,
        maximum=1.0,
        exclusive_minimum=True,
        exclusive_maximum=True,
    )
    max_accuracy_difference: float | None = option(
        0.05,
        "largest acceptable accuracy gap between groups, judged at the low end of its interval "
        "(none: report only)",
        minimum=0.0,
    )
    max_equalized_odds_difference: float | None = option(
        0.10, "largest acceptable TPR or FPR gap between groups (none: report only)", minimum=0.0
    )
    max_demographic_parity_difference: float | None = option(
        None,
        "largest acceptable selection-rate gap between groups (none: reported, not judged: it "
        "also moves with legitimate base-rate differences)",
        minimum=0.0,
    )
    max_robust_accuracy_difference: float | None = option(
        0.10,
        "largest acceptable robust-accuracy gap (adversarial probe's examples); warns only",
        minimum=0.0,
    )
    max_ece_difference: float | None = option(
        0.05, "largest acceptable ECE gap (calibration probe's examples); warns only", minimum=0.0
    )
    proxy_slices: Literal["auto", "always", "never"] = option(
        "auto",
        "audit proxy slices (true class, image statistics): auto = only without sensitive columns",
    )
    proxy_quantiles: int = option(
        4,
        "quantile bins per image statistic (brightness, contrast, ink) for proxy slices",
        minimum=2,
    )
