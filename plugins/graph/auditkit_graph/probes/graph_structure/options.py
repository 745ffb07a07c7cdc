"""Options of graph_structure, declared once (auditkit.options)."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option

BASELINES = ("random", "dice")


@dataclass(frozen=True)
class StructureOptions:
    budgets: tuple[float, ...] = option(
        (0.01, 0.02, 0.05, 0.10, 0.20),
        "edge budgets: fractions of the graph's undirected edges an attack may flip",
        minimum=0.0, exclusive_minimum=True, maximum=1.0,
        budgets={"fast": (0.02, 0.05, 0.10), "standard": (0.01, 0.02, 0.05, 0.10, 0.20),
                 "thorough": (0.01, 0.02, 0.05, 0.10, 0.15, 0.20, 0.30)},
    )
    headline_budget: float = option(
        0.05, "the edge budget robust_accuracy is reported at (added to budgets)",
        minimum=0.0, exclusive_minimum=True, maximum=1.0,
    )
    baselines: tuple[str, ...] = option(
        BASELINES, "baseline structure attacks run beside PRBCD (which always runs)",
        choices=BASELINES,
    )
    prbcd_epochs: int = option(
        100, "PRBCD epochs with block resampling (half as many fine-tuning epochs follow)",
        minimum=1, budgets={"fast": 40, "standard": 100, "thorough": 200},
    )
    feature_eps: float = option(
        0.1, "L∞ radius of the feature attack: box widths, or feature stds when unbounded",
        minimum=0.0, warn_above=1.0,
    )
    feature_steps: int = option(
        20, "PGD steps of the feature attack", minimum=1,
        budgets={"fast": 10, "standard": 20, "thorough": 50},
    )
