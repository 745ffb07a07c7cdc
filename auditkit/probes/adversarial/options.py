"""The adversarial probe's options: declared once, parsed by ``auditkit.options``."""

from __future__ import annotations

from dataclasses import dataclass

from auditkit.options import option

#: Radii of the accuracy-vs-eps curves per budget, as multiples of the headline eps (an explicit
#: ``sweep`` option gives absolute radii instead).
BUDGET_SWEEPS: dict[str, dict[str, tuple[float, ...]]] = {
    "fast": {"sweep": (0, 0.5, 1, 2, 5), "l2_sweep": ()},
    "standard": {"sweep": (0, 0.25, 0.5, 1, 1.5, 2, 3, 5), "l2_sweep": (0, 0.5, 1, 2, 4)},
    "thorough": {"sweep": (0, 0.25, 0.5, 1, 1.5, 2, 3, 5), "l2_sweep": (0, 0.5, 1, 2, 4)},
}


@dataclass(frozen=True)
class AdversarialOptions:
    """``--set adversarial.NAME=VALUE``; ``none`` picks the data's or the device's default."""

    eps: float | None = option(
        None,
        "headline radius (input units; feature stds for unbounded inputs); none: the "
        "data's default (digits 0.1, MNIST-like 0.3, other images 8/255, tables 0.1 std)",
        minimum=0.0,
        # Beyond 1 an L∞ ball covers a whole [0, 1] image (or a feature's full spread).
        warn_above=1.0,
    )
    norm: str = option("Linf", "headline threat model", choices=("Linf", "L2"))
    sweep: tuple[float, ...] | None = option(
        None,
        "radii of the accuracy-vs-eps curve (the headline eps is always added); none: "
        "the budget's multiples of eps",
        minimum=0.0,
        # No warn_above: these are L2 radii under an L2 headline, where 2 or 4 is ordinary.
    )
    l2_sweep: tuple[float, ...] | None = option(
        None,
        "radii of the L2 curve beside an L∞ headline (l2_eps is always added); none: the "
        "budget's multiples of l2_eps",
        minimum=0.0,
    )
    l2_attacks: bool = option(
        True,
        "also attack under L2 at l2_eps beside an L∞ headline (FGSM, PGD, noise); the "
        "time-aware plan drops them last, never when a policy gates an L2 metric",
    )
    l2_eps: float | None = option(
        None,
        "radius of the L2 attacks reported beside an L∞ headline; none: the data's default",
        minimum=0.0,
        # L2 radii grow with sqrt(input size); past 10 even 224x224 RGB images are swamped.
        warn_above=10.0,
    )
    steps: int = option(
        20,
        "PGD iterations per restart",
        minimum=1,
        budgets={"fast": 10, "standard": 20, "thorough": 50},
    )
    restarts: int = option(
        2,
        "PGD random restarts at the headline eps",
        minimum=1,
        budgets={"fast": 1, "standard": 2, "thorough": 5},
    )
    n_examples: int = option(
        1000,
        "audit examples attacked (a seeded random subset)",
        minimum=1,
        budgets={"fast": 200, "standard": 1000, "thorough": 5000},
    )
    eot_samples: int = option(
        8,
        "transformation draws per EOT step",
        minimum=1,
        budgets={"fast": 8, "standard": 8, "thorough": 16},
    )
    eot_transforms: bool | None = option(
        None,
        "draw rotation/scale/translation/brightness/noise in EOT; none: yes for a "
        "deterministic model, no for a random one (its own randomness is the distribution)",
    )
    eval_samples: int = option(
        16,
        "forward passes averaged to predict with a random model",
        minimum=1,
        budgets={"fast": 8, "standard": 16, "thorough": 32},
    )
    noise_draws: int = option(
        8,
        "random-noise draws per example for the noise baseline",
        minimum=1,
        budgets={"fast": 4, "standard": 8, "thorough": 16},
    )
    batch_size: int | None = option(
        None,
        "examples per attack batch; none: the largest that fits a quarter of the device's "
        "free memory, at most 1024 on a GPU and 256 on the CPU",
        minimum=1,
    )
    autoattack: bool = option(
        False,
        "also run AutoAttack at the headline eps",
        budgets={"fast": False, "standard": False, "thorough": True},
    )
    mixed_precision: bool = option(
        False,
        "bf16 autocast for the attacks on a GPU, kept only when robust accuracy on a sample "
        "stays within one point of float32 (verdicts are always float32)",
    )
    queries: int = option(
        1000,
        "queries per example of the gradient-free attacks (Square on scores, HopSkipJump on "
        "labels only)",
        minimum=1,
        budgets={"fast": 300, "standard": 1000, "thorough": 5000},
    )
    gradient_free: str = option(
        "auto",
        "gradient-free attacks: auto (models without gradients; Square beside PGD for ONNX "
        "files, scored by their own runtime), always (Square beside PGD for every model), "
        "never (models without gradients are skipped)",
        choices=("auto", "always", "never"),
    )
