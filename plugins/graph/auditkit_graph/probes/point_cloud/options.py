"""Options of point_cloud, declared once (auditkit.options)."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option


@dataclass(frozen=True)
class PointCloudOptions:
    eps: float = option(0.05, "L∞ radius of the point attacks, in coordinate units", minimum=0.0,
                        warn_above=0.5)
    examples: int = option(500, "evaluation clouds used (the first of the evaluation split)",
                           minimum=1, budgets={"fast": 100, "standard": 500, "thorough": 5000})
    permutations: int = option(5, "random shuffles of each cloud's points", minimum=1,
                               budgets={"fast": 3, "standard": 5, "thorough": 10})
    rotations: int = option(16, "random rotations per cloud (and EOT evaluation draws)", minimum=1,
                            budgets={"fast": 8, "standard": 16, "thorough": 32})
    steps: int = option(20, "PGD steps", minimum=1, budgets={"fast": 10, "standard": 20, "thorough": 50})
    eot_samples: int = option(8, "rotations averaged per EOT-PGD step", minimum=1,
                              budgets={"fast": 4, "standard": 8, "thorough": 16})
