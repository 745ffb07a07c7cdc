"""Plan: which attacks run, at which eps and with how many steps, from the options and the data.

The first half of measuring (``measure`` runs the plan): a pure function of the options, the
budget, the data's shape and box, and whether the model is stochastic.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from auditkit.attacks import Transformations
from auditkit.probes.adversarial.options import BUDGET_SWEEPS, AdversarialOptions

UNBOUNDED_STD_EPS = 100.0


#: Largest step of the unbounded attack, in box widths (bounded inputs) or feature stds
#: (unbounded; L2: times √dim). With a huge eps, 2.5 · eps / steps would jump tens of stds per
#: step and overshoot every nearby decision boundary.
UNBOUNDED_STEP_BOX = 0.25


UNBOUNDED_STEP_STD = 1.0


#: Examples that survive the unbounded attack are attacked again from the clean input, each time
#: with a 4× smaller step, this many times.
UNBOUNDED_RETRIES = 3


@dataclass(frozen=True)
class ThreatDefaults:
    """Default headline radii for a data set, in box widths (or feature stds) and why."""

    linf: float
    l2: float
    reason: str


def default_threat(name: str, input_shape: tuple[int, ...], bounded: bool) -> ThreatDefaults:
    """The default L∞ / L2 radii for data called ``name`` with examples of ``input_shape``.

    Example:
        >>> default_threat("digits", (1, 8, 8), True).linf
        0.1
    """
    if not bounded:
        return ThreatDefaults(0.1, 0.5, "unbounded inputs: eps in feature standard deviations")
    if name.lower().startswith("digits") or tuple(input_shape) == (1, 8, 8):
        return ThreatDefaults(
            0.1,
            0.5,
            "8×8 digits have 64 coarse pixels and 17 grey levels: 8/255 is below one grey "
            "level, so the default is 0.1 (~1.6 levels), with a sweep up to 0.5",
        )
    if tuple(input_shape) == (1, 28, 28):
        return ThreatDefaults(0.3, 2.0, "28×28 grey images: Madry et al.'s MNIST setting")
    return ThreatDefaults(8 / 255, 0.5, "images: the CIFAR-10 / RobustBench setting")


@dataclass(frozen=True)
class Plan:
    """What the attacks will do, resolved from the options, the budget and the data."""

    norm: str = "Linf"
    eps: float = 0.1
    sweep: tuple[float, ...] = (0.0, 0.1)
    l2_eps: float | None = None
    l2_sweep: tuple[float, ...] = ()
    steps: int = 10
    restarts: int = 1
    n_examples: int = 200
    eot_samples: int = 8
    eval_samples: int = 8
    noise_draws: int = 4
    transform: Transformations | None = None
    autoattack: bool = False
    batch_size: int = 256
    units: str = "input units"
    defaults_reason: str = ""
    mixed_precision: bool = False
    bf16_check: dict[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        return {
            "norm": self.norm,
            "eps": self.eps,
            "sweep": list(self.sweep),
            "l2_eps": self.l2_eps,
            "l2_sweep": list(self.l2_sweep),
            "steps": self.steps,
            "step_size": "2.5 · eps / steps (Madry et al.); the unbounded attack caps it",
            "restarts": self.restarts,
            "n_examples": self.n_examples,
            "eot_samples": self.eot_samples,
            "eval_samples_for_random_models": self.eval_samples,
            "noise_draws": self.noise_draws,
            "eot_transformations": self.transform.to_dict() if self.transform else None,
            "autoattack": self.autoattack,
            "batch_size": self.batch_size,
            "mixed_precision": self.mixed_precision,
            "bf16_check": self.bf16_check,
            "eps_units": self.units,
            "defaults": self.defaults_reason,
        }


def make_plan(opts: AdversarialOptions, budget: str, context: Any, stochastic: bool) -> Plan:
    """Resolve the options against the data: default radii, sweeps, batch size, EOT."""
    adapter, data = context.adapter, context.data
    sweeps = BUDGET_SWEEPS[budget]
    box = adapter.input_range
    width = (box[1] - box[0]) if box is not None else 1.0
    defaults = default_threat(data.name, tuple(adapter.input_shape), box is not None)
    norm = opts.norm
    linf_eps = defaults.linf * width
    l2_default = defaults.l2 * width
    if opts.eps is not None:
        eps = opts.eps
    else:
        eps = (
            linf_eps if norm == "Linf" else (opts.l2_eps if opts.l2_eps is not None else l2_default)
        )
    limit = unbounded_eps(norm, box, adapter.input_shape)
    if opts.sweep is not None:
        sweep = tuple(sorted({*opts.sweep, eps}))
    else:
        sweep = tuple(sorted(_multiples(eps, sweeps["sweep"], limit) | {eps}))
    l2_eps, l2_sweep = None, ()
    if norm == "Linf" and opts.l2_attacks:
        l2_eps = opts.l2_eps if opts.l2_eps is not None else l2_default
        l2_limit = unbounded_eps("L2", box, adapter.input_shape)
        if opts.l2_sweep is not None:  # () : no curve, the attacks at l2_eps only
            l2_sweep = tuple(sorted({*opts.l2_sweep, l2_eps})) if opts.l2_sweep else ()
        else:
            l2_sweep = tuple(
                sorted(
                    _multiples(l2_eps, sweeps["l2_sweep"], l2_limit)
                    | ({l2_eps} if sweeps["l2_sweep"] else set())
                )
            )
    use_transforms = opts.eot_transforms if opts.eot_transforms is not None else not stochastic
    cuda = adapter.device.type == "cuda"
    return Plan(
        norm=norm,
        eps=float(eps),
        sweep=sweep,
        l2_eps=float(l2_eps) if l2_eps is not None else None,
        l2_sweep=l2_sweep,
        steps=opts.steps,
        restarts=opts.restarts,
        n_examples=opts.n_examples,
        eot_samples=opts.eot_samples,
        eval_samples=opts.eval_samples,
        noise_draws=opts.noise_draws,
        transform=Transformations() if use_transforms else None,
        autoattack=bool(opts.autoattack),
        batch_size=opts.batch_size or _gradient_batch(adapter, cuda),
        mixed_precision=bool(opts.mixed_precision),
        units="input units" if box is not None else "feature standard deviations",
        defaults_reason=defaults.reason,
    )


def _multiples(eps: float, factors: tuple[float, ...], limit: float) -> set[float]:
    """``eps`` times each factor (rounded for display), capped at ``limit``; factor 1 is ``eps``
    itself, so rounding never adds a near-copy of the headline (8/255 beside 0.0313725490)."""
    return {eps if m == 1 else min(round(m * eps, 10), limit) for m in factors}


def unbounded_eps(norm: str, box: tuple[float, float] | None, shape: tuple[int, ...]) -> float:
    """A radius that reaches every point of the box (or 100 stds when there is no box)."""
    width = (box[1] - box[0]) if box is not None else UNBOUNDED_STD_EPS
    return float(width if norm == "Linf" else width * math.sqrt(math.prod(shape)))


def _gradient_batch(adapter: Any, cuda: bool) -> int:
    """The adapter's memory-aware batch for gradient passes (the usual sizes when it has none)."""
    auto = getattr(adapter, "auto_batch_size", None)
    return int(auto("gradient")) if callable(auto) else (1024 if cuda else 256)
