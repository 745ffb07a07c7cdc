"""Options, declared once: the schema is the documentation, the parser and the validation."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option


@dataclass(frozen=True)
class NoiseOptions:
    sigmas: tuple[float, ...] = option(
        (0.0, 0.05, 0.1, 0.2, 0.4), "noise levels: std of the Gaussian noise, in box widths",
        minimum=0.0, warn_above=1.0,
    )
    headline_sigma: float = option(
        0.1, "the noise level the headline metric is reported at (added to sigmas)",
        minimum=0.0, warn_above=1.0,
    )
    draws: int = option(2, "noisy copies per example and level", minimum=1,
                        budgets={"fast": 1, "standard": 4, "thorough": 8})
    n_examples: int = option(500, "audit examples used (a seeded random subset)", minimum=1,
                             budgets={"fast": 200, "standard": 500, "thorough": 2000})
    max_drop: float = option(0.2, "largest accepted accuracy drop at the headline level",
                             minimum=0.0, maximum=1.0)
