"""The memorization probe's options: declared once, parsed by ``auditkit.options``."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option

#: Per budget, how many training examples of the audited model its generalization gap is
#: measured on (not an option: it only bounds the cost of one prediction pass).
GAP_EXAMPLES = {"fast": 2000, "standard": 10_000, "thorough": 50_000}


@dataclass(frozen=True)
class MemorizationOptions:
    """``--set memorization.NAME=VALUE``.

    The epoch cap is the budget, so the verdict does not depend on machine speed; the time
    limit is only a safety net against a runaway model, set far above what the budget's epochs
    take (the demo CNN fits random labels in ~2 s at the fast budget on 2 CPU cores, ~30x below
    its limit). A run that the time limit stops makes the verdict inconclusive.
    """

    corruption_levels: tuple[float, ...] = option(
        (0.0, 0.2, 0.5, 1.0),
        "probabilities p of replacing a label at random (0: true labels, 1: random labels)",
        minimum=0.0,
        maximum=1.0,
    )
    random_pixels: bool = option(
        False, "also train on Gaussian-noise images (matched mean/std) with the true labels"
    )
    target_accuracy: float = option(
        0.95,
        "training accuracy that counts as fitted",
        minimum=0.0,
        maximum=1.0,
        exclusive_minimum=True,
    )
    train_size: int = option(
        1000,
        "audit examples a fresh copy is trained on (at most half the audit data)",
        minimum=2,
        budgets={"fast": 256, "standard": 1000, "thorough": 5000},
    )
    max_epochs: int = option(
        200,
        "epoch cap per corruption level (early stop at the target)",
        minimum=1,
        budgets={"fast": 100, "standard": 200, "thorough": 500},
    )
    time_limit_s: float = option(
        600.0,
        "wall-clock safety limit per level, in seconds",
        minimum=0.0,
        exclusive_minimum=True,
        budgets={"fast": 60.0, "standard": 600.0, "thorough": 3600.0},
    )
    learning_rate: float = option(
        1e-3,
        "Adam learning rate of the fixed training recipe",
        minimum=0.0,
        exclusive_minimum=True,
        warn_above=1.0,
    )
    batch_size: int = option(32, "batch size of the fixed training recipe", minimum=1)
    gap_threshold: float = option(
        0.10,
        "warn when the audited model's train − audit accuracy exceeds this",
        minimum=0.0,
    )

    @property
    def levels(self) -> tuple[float, ...]:
        """The corruption levels in increasing order, each once."""
        return tuple(sorted(set(self.corruption_levels)))
