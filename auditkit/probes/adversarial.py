"""Adversarial robustness: FGSM, PGD and EOT, worst case per example, and a validity checklist.

Most published robustness claims that later collapsed were evaluation mistakes (Athalye et al.
2018; Carlini et al. 2019), so next to the numbers the probe runs the checks that catch them
and reports each one with its numbers. A failed check marks the probe ``warned``.

Threat model. Perturbations ``δ`` with ``‖δ‖ ≤ eps`` (L∞ by default, L2 as well) such that
``x + δ`` stays in the adapter's input box. Defaults per data (options override):

==================================  ===========  ========  ==================================
data                                L∞ eps       L2 eps    why
==================================  ===========  ========  ==================================
``digits`` / any 1×8×8 images        0.1          0.5       64 coarse pixels: 8/255 barely
                                                            moves them; 0.1 is ~1.6 grey levels
1×28×28 images (MNIST-like)         0.3          2.0       Madry et al.'s MNIST setting
other images                        8/255        0.5       CIFAR-10 / RobustBench setting
unbounded inputs (tables)           0.1 std      0.5 std   a tenth of each feature's spread
==================================  ===========  ========  ==================================

Image defaults are fractions of the box width (a ``[0, 255]`` box gets 255× larger values).
For an unbounded box (``input_range`` None, e.g. standardized tables) nothing is clamped and
``eps`` is measured in feature standard deviations (estimated on the audit data): the attack
runs on ``x / std`` with the model wrapped to undo it (EOT's transformations of images still
act on the pixels, not on ``x / std``).

Accuracies count an example as correct only if it is classified correctly clean *and* under
the attack (attacks run on the correctly classified examples only, as in AutoAttack), so every
attack accuracy is ≤ ``clean_accuracy`` and eps = 0 reproduces it exactly — except EOT, which
also requires the transformations to leave the example correct, so at eps = 0 it reproduces
``transform_accuracy``. ``robust_accuracy`` is correct under every attack at the headline eps:
FGSM, PGD (every restart, and the doubled-step run), EOT-PGD (under its transformations),
random noise and, in the thorough budget, AutoAttack. A model that answers NaN on an input an
attack tried is fooled there, never robust; NaN / inf logits or gradients met by any attack
fail the gradient check.

How results are judged:

- A deterministic model is judged by the attack's own margins (largest wrong logit minus the
  true logit of the best iterate): exact, and no second forward pass.
- A random model (two passes differ) is judged by its averaged prediction — the softmax
  averaged over ``eval_samples`` passes — in fixed chunks with fixed seeds (common random
  numbers), so equal inputs always get equal verdicts; its clean accuracy is judged the same
  way, not by the single shared clean pass. Best-iterate tracking is off for it (single-pass
  margins are noise) and EOT averages over its own randomness.
- EOT (deterministic model): the perturbation is optimized against random rotation, scale,
  translation, brightness and noise (``Transformations``), then judged under freshly drawn
  transformations: an example is EOT-robust only if the prediction expected under the draws is
  right for the clean input *and* for the adversarial one (the attacker may always pick
  δ = 0), so a model that the transformations alone break is not robust under EOT.
  ``transform_accuracy`` is the clean half alone; ``eot_accuracy_given_transform_correct`` is
  the attack's own effect, on the examples that the transformations leave correct.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.attacks import (
    EOTPGD,
    FGSM,
    PGD,
    AutoAttack,
    RandomNoise,
    Transformations,
    check_norm,
    margin,
)
from auditkit.attacks._base import BoxAttack
from auditkit.errors import AuditkitInputError
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import Check, Finding, ProbeResult

CHECK_NAMES = (
    "iterative_beats_single_step",
    "accuracy_decreases_with_eps",
    "unbounded_attack_succeeds",
    "converged_in_steps",
    "attack_beats_random_noise",
    "gradients_nonzero_and_finite",
    "stochastic_model_attacked_with_eot",
)

#: Budget settings. ``sweep`` and ``l2_sweep`` are multiples of the headline eps.
BUDGET_SETTINGS: dict[str, dict[str, Any]] = {
    "fast": {
        "n_examples": 200, "steps": 10, "restarts": 1, "sweep": (0, 0.5, 1, 2, 5),
        "l2_sweep": (), "eot_samples": 8, "eval_samples": 8, "noise_draws": 4,
        "autoattack": False,
    },
    "standard": {
        "n_examples": 1000, "steps": 20, "restarts": 2, "sweep": (0, 0.25, 0.5, 1, 1.5, 2, 3, 5),
        "l2_sweep": (0, 0.5, 1, 2, 4), "eot_samples": 8, "eval_samples": 16, "noise_draws": 8,
        "autoattack": False,
    },
    "thorough": {
        "n_examples": 5000, "steps": 50, "restarts": 5, "sweep": (0, 0.25, 0.5, 1, 1.5, 2, 3, 5),
        "l2_sweep": (0, 0.5, 1, 2, 4), "eot_samples": 16, "eval_samples": 32, "noise_draws": 16,
        "autoattack": True,
    },
}

#: Tolerances of the checklist (absolute accuracy); each is at least 2 examples' worth.
ITERATIVE_TOLERANCE = 0.01
MONOTONE_TOLERANCE = 0.01
STEPS_TOLERANCE = 0.02
NOISE_TOLERANCE = 0.01
#: An unbounded attack must leave at most this accuracy (and never more than chance).
UNBOUNDED_MAX_ACCURACY = 0.05
#: Minimum share of examples with a non-zero input gradient.
GRADIENT_NONZERO_MIN = 0.99
UNBOUNDED_STD_EPS = 100.0
#: Largest step of the unbounded attack, in box widths (bounded inputs) or feature stds
#: (unbounded; L2: times √dim). With a huge eps, 2.5 · eps / steps would jump tens of stds per
#: step and overshoot every nearby decision boundary.
UNBOUNDED_STEP_BOX = 0.25
UNBOUNDED_STEP_STD = 1.0
#: Examples that survive the unbounded attack are attacked again from the clean input, each time
#: with a 4× smaller step, this many times.
UNBOUNDED_RETRIES = 3
GALLERY_SIZE = 6


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
            0.1, 0.5,
            "8×8 digits have 64 coarse pixels and 17 grey levels: 8/255 is below one grey "
            "level, so the default is 0.1 (~1.6 levels), with a sweep up to 0.5",
        )
    if tuple(input_shape) == (1, 28, 28):
        return ThreatDefaults(0.3, 2.0, "28×28 grey images: Madry et al.'s MNIST setting")
    return ThreatDefaults(8 / 255, 0.5, "images: the CIFAR-10 / RobustBench setting")


@dataclass(frozen=True)
class _Plan:
    norm: str
    eps: float
    sweep: tuple[float, ...]
    l2_eps: float | None
    l2_sweep: tuple[float, ...]
    steps: int
    restarts: int
    n_examples: int
    eot_samples: int
    eval_samples: int
    noise_draws: int
    transform: Transformations | None
    autoattack: bool
    batch_size: int
    units: str
    defaults_reason: str

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
            "eps_units": self.units,
            "defaults": self.defaults_reason,
        }


class _Standardized(nn.Module):
    """The model seen from feature-std units: ``z ↦ model(z · std)`` (unbounded inputs)."""

    def __init__(self, model: nn.Module, scale: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", scale, persistent=False)

    def train(self, mode: bool = True) -> _Standardized:
        self.training = mode  # never reaches the wrapped model
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z * self.scale)


@dataclass
class _Space:
    """Where the attacks run: the adapter's pixels, or feature-std units for unbounded boxes."""

    module: nn.Module
    box: tuple[float, float] | None
    scale: torch.Tensor | None = None

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.scale is None else x / self.scale.cpu()

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.scale is None else z * self.scale.to(z.device)

    def scale_on(self, device: torch.device) -> torch.Tensor | None:
        return None if self.scale is None else self.scale.to(device)

    def transform(
        self, z: torch.Tensor, transform: Transformations, params: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """EOT's transformations of attack-space inputs, applied to the pixels they stand for."""
        return transform.apply(z, params, box=self.box, scale=self.scale_on(z.device))


@dataclass
class _Runner:
    """Runs one attack over the correctly classified examples and judges every result.

    A deterministic model is judged by the attack's own margins (exact, no second pass). A
    random model is judged by its averaged prediction (softmax averaged over ``eval_samples``
    passes), always in the same chunks of all attacked examples with the same seeds — common
    random numbers — so two attacks that return the same input get the same verdict, and an
    attack that changes nothing (eps = 0) reproduces the clean verdict exactly. A non-finite
    answer (NaN logits) is never a right one; the examples where an attack met one are counted
    in ``nonfinite`` for the gradient check.
    """

    space: _Space
    z: torch.Tensor
    y: torch.Tensor
    clean_correct: np.ndarray
    device: torch.device
    batch_size: int
    stochastic: bool
    eval_samples: int
    seed_of: Callable[[str], torch.Generator]
    int_seed_of: Callable[[str], int]
    timings: dict[str, float] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)
    _clean_transformed: np.ndarray | None = None

    @property
    def targets(self) -> np.ndarray:
        return np.flatnonzero(self.clean_correct)

    def correct(
        self,
        tag: str,
        attack_class: type[BoxAttack],
        *,
        keep: bool = False,
        judge: str = "default",
        seed_tag: str | None = None,
        among: np.ndarray | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """Per example: correct clean and still correct under the attack; optionally the
        adversarial examples (attack space, CPU). ``seed_tag`` names the random stream
        (default ``tag``): two runs with the same one start from the same random points.
        ``among`` (a subset of the clean-correct examples) limits whom the attack targets;
        the others keep their clean verdict."""
        started = time.perf_counter()
        targets = self.targets if among is None else np.flatnonzero(among & self.clean_correct)
        adversarial = self.z.clone()
        correct = self.clean_correct.copy()
        if len(targets):
            attack = attack_class(self.space.module, box=self.space.box,
                                  generator=self.seed_of(seed_tag or tag), **kwargs)
            per_batch = self.batch_size
            if isinstance(attack, EOTPGD):
                per_batch = max(1, self.batch_size // attack.samples)
            margins, nonfinite = [], 0
            for start in range(0, len(targets), per_batch):
                index = torch.as_tensor(targets[start : start + per_batch])
                out = attack.perturb(self.z[index].to(self.device), self.y[index].to(self.device))
                margins.append(out.margin.cpu())
                adversarial[index] = out.adversarial.cpu()
                if out.nonfinite is not None:
                    nonfinite += int(out.nonfinite.sum())
            if nonfinite:
                self.nonfinite[tag] = nonfinite
            if judge == "eot":
                fooled = self.fooled_under_transformations(adversarial, kwargs.get("transform"))
            elif self.stochastic:
                fooled = self.fooled_random(adversarial)
            else:
                fooled = np.zeros(len(self.z), dtype=bool)
                fooled[targets] = (torch.cat(margins) > 0).numpy()
            correct[targets] = ~fooled[targets]
        self.timings[tag] = round(time.perf_counter() - started, 4)
        return correct, adversarial if keep else None

    def _chunks(self) -> range:
        return range(0, len(self.z), self.batch_size)

    def probabilities(self, x: torch.Tensor, tag: str) -> torch.Tensor:
        """Softmax of one batch, averaged over ``eval_samples`` passes for a random model."""
        samples = self.eval_samples if self.stochastic else 1
        torch.manual_seed(self.int_seed_of(tag))  # the model's own randomness, reproducibly
        with torch.no_grad():
            copies = x.unsqueeze(0).expand(samples, *x.shape).reshape(-1, *x.shape[1:])
            logits = self.space.module(copies).float().view(samples, len(x), -1)
        return torch.softmax(logits, dim=-1).mean(dim=0)

    def all_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``probabilities`` of every attacked example, in the fixed judging chunks."""
        return torch.cat([
            self.probabilities(x[s : s + self.batch_size].to(self.device), f"judge/{s}").cpu()
            for s in self._chunks()
        ])

    def fooled_random(self, x: torch.Tensor) -> np.ndarray:
        return ~_right(self.all_probabilities(x), self.y)

    def _transformed_right(self, x: torch.Tensor, transform: Transformations,
                           start: int) -> np.ndarray:
        """Whether the prediction expected under transformation — the softmax averaged over
        ``eval_samples`` fresh draws — is right; the draws and the model's randomness are fixed
        by chunk, so every input of a chunk meets the very same draws."""
        samples = self.eval_samples
        xb = x[start : start + self.batch_size].to(self.device)
        yb = self.y[start : start + self.batch_size].to(self.device)
        copies = xb.unsqueeze(0).expand(samples, *xb.shape).reshape(-1, *xb.shape[1:])
        with torch.no_grad():
            params = transform.sample(copies.shape, generator=self.seed_of(f"eot-draws/{start}"),
                                      device=copies.device)
            copies = self.space.transform(copies, transform, params)
            torch.manual_seed(self.int_seed_of(f"eot-judge/{start}"))
            logits = self.space.module(copies).float().view(samples, len(xb), -1)
        expected = torch.softmax(logits, dim=-1).mean(dim=0)
        return _right(expected.cpu(), yb.cpu())

    def clean_transformed_right(self, transform: Transformations) -> np.ndarray:
        """``_transformed_right`` of every clean input (computed once)."""
        if self._clean_transformed is None:
            right = [self._transformed_right(self.z, transform, s) for s in self._chunks()]
            self._clean_transformed = np.concatenate(right) if right else np.zeros(0, bool)
        return self._clean_transformed

    def fooled_under_transformations(
        self, x: torch.Tensor, transform: Transformations | None
    ) -> np.ndarray:
        """Misclassified in expectation over fresh draws of the transformations — the
        adversarial input, or the clean one under the very same draws and model randomness
        (the attacker may always choose δ = 0, so transformations that break the model on
        their own count against it). Without transformations this is the ordinary verdict."""
        if transform is None:
            return self.fooled_random(x) if self.stochastic else self._fooled_deterministic(x)
        right = [self._transformed_right(x, transform, s) for s in self._chunks()]
        adversarial_right = np.concatenate(right) if right else np.zeros(0, dtype=bool)
        return ~(adversarial_right & self.clean_transformed_right(transform))

    def _fooled_deterministic(self, x: torch.Tensor) -> np.ndarray:
        with torch.no_grad():
            return np.concatenate([
                (margin(self.space.module(x[s : s + self.batch_size].to(self.device)).float(),
                        self.y[s : s + self.batch_size].to(self.device)) > 0).cpu().numpy()
                for s in self._chunks()
            ]) if len(x) else np.zeros(0, dtype=bool)

    def transform_correct(self, transform: Transformations) -> np.ndarray:
        """Correct clean and in expectation over freshly transformed copies (no perturbation)."""
        return self.clean_correct & self.clean_transformed_right(transform)


class AdversarialProbe(Probe):
    """FGSM, PGD (restarts, best iterate) and EOT under L∞ and L2, with a validity checklist.

    Options (``--set adversarial.NAME=VALUE``; ``None`` picks the budget / data default):
        eps: headline radius (input units; feature stds for unbounded inputs).
        norm: headline threat model, ``Linf`` or ``L2``.
        sweep: radii of the accuracy-vs-eps curve (the headline eps is always added).
        l2_eps: radius of the L2 attacks reported beside an L∞ headline.
        steps, restarts: PGD iterations and random restarts at the headline eps.
        n_examples: how many audit examples to attack (a seeded random subset).
        eot_samples: transformation draws per EOT step.
        eot_transforms: draw rotation/scale/translation/brightness/noise in EOT. Default: yes
            for a deterministic model; no for a random one, whose own randomness is the
            distribution EOT averages over (stacking transformations on top would judge it
            under a harder threat model than the one it is used in).
        eval_samples: forward passes averaged to predict with a random model.
        noise_draws: random-noise draws per example for the noise baseline.
        batch_size: examples per attack batch.
        autoattack: run AutoAttack at the headline eps (default: thorough budget only).

    Example:
        >>> AdversarialProbe(budget="fast", eps=0.1).run(build_context(adapter, data))
    """

    name = "adversarial"
    title = "Adversarial robustness"
    description = (
        "Does a small, deliberately chosen change to an input flip the model's answer — and "
        "can that number be trusted?"
    )
    order = 20
    needs_gradients = True
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy on the attacked examples, unperturbed"),
        "fgsm_accuracy": MetricSpec("higher", "accuracy under FGSM at the headline eps"),
        "pgd_accuracy": MetricSpec(
            "higher", "accuracy under PGD (best iterate, worst restart) at the headline eps"
        ),
        "eot_accuracy": MetricSpec(
            "higher",
            "accuracy under EOT-PGD at the headline eps, judged on freshly transformed copies: "
            "right in expectation for both the clean and the adversarial input",
        ),
        "robust_accuracy": MetricSpec(
            "higher",
            "worst case per example over every attack and restart at the headline eps",
        ),
        "eps": MetricSpec(
            None,
            "headline radius: the largest change allowed per input (input units; feature stds "
            "if unbounded)",
        ),
        "noise_accuracy": MetricSpec(
            "higher", "accuracy under random noise of the headline norm and eps"
        ),
        "transform_accuracy": MetricSpec(
            "higher", "accuracy on freshly transformed copies (EOT's distribution), no attack"
        ),
        "eot_accuracy_given_transform_correct": MetricSpec(
            "higher",
            "of the examples that the transformations alone leave correct, the share that "
            "EOT-PGD does not fool (the attack's own effect)",
        ),
        "fgsm_l2_accuracy": MetricSpec("higher", "accuracy under the L2 fast gradient method"),
        "pgd_l2_accuracy": MetricSpec("higher", "accuracy under L2 PGD at l2_eps"),
        "l2_eps": MetricSpec(None, "radius of the L2 attacks"),
        "autoattack_accuracy": MetricSpec(
            "higher", "accuracy under AutoAttack (reference settings) at the headline eps"
        ),
        "n_examples": MetricSpec(None, "number of audit examples attacked"),
    }
    budget_levels = {
        "fast": "200 examples; FGSM, PGD-10 (1 restart), noise over a 5-point sweep "
        "(0–5× eps); EOT with 8 draws; L2 at l2_eps only; a doubled-step PGD run",
        "standard": "1,000 examples; PGD-20 with 2 restarts; an 8-point L∞ sweep and a 5-point "
        "L2 sweep; EOT with 8 draws",
        "thorough": "5,000 examples; PGD-50 with 5 restarts; EOT with 16 draws; plus AutoAttack "
        "(APGD-CE, APGD-T, FAB-T, Square; 100 iterations, 9 target classes, fixed seed)",
    }
    options = {
        "eps": None,
        "norm": "Linf",
        "sweep": None,
        "l2_eps": None,
        "steps": None,
        "restarts": None,
        "n_examples": None,
        "eot_samples": None,
        "eot_transforms": None,
        "eval_samples": None,
        "noise_draws": None,
        "batch_size": None,
        "autoattack": None,
    }

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        super().__init__(budget=budget, **options)
        c = self.config
        try:
            c["norm"] = check_norm(c["norm"])
        except AuditkitInputError:
            raise AuditkitInputError(
                f"--set adversarial.norm={c['norm']!r}: unknown threat model; use Linf or L2"
            ) from None
        for key in ("eps", "l2_eps"):
            if c[key] is not None:
                c[key] = _non_negative(key, c[key])
        if c["sweep"] is not None:
            values = c["sweep"]
            if isinstance(values, str):
                values = [v for v in values.replace(";", ",").split(",") if v.strip()]
            if isinstance(values, (int, float)):
                values = [values]
            c["sweep"] = tuple(_non_negative("sweep", v) for v in values)
        for key in ("steps", "restarts", "n_examples", "eot_samples", "eval_samples",
                    "noise_draws", "batch_size"):
            if c[key] is not None:
                c[key] = _positive_int(key, c[key])
        for key in ("eot_transforms", "autoattack"):
            if c[key] is not None:
                c[key] = _boolean(key, c[key])

    # --- plan -------------------------------------------------------------------------
    def _plan(self, context, stochastic: bool) -> _Plan:
        adapter, data, c = context.adapter, context.data, self.config
        budget = BUDGET_SETTINGS[self.budget]
        box = adapter.input_range
        width = (box[1] - box[0]) if box is not None else 1.0
        defaults = default_threat(data.name, tuple(adapter.input_shape), box is not None)
        norm = c["norm"]
        linf_eps = defaults.linf * width
        l2_default = defaults.l2 * width
        if c["eps"] is not None:
            eps = c["eps"]
        else:
            eps = linf_eps if norm == "Linf" else (c["l2_eps"] if c["l2_eps"] is not None
                                                   else l2_default)
        limit = _unbounded_eps(norm, box, adapter.input_shape)
        if c["sweep"] is not None:
            sweep = tuple(sorted({*c["sweep"], eps}))
        else:
            sweep = tuple(sorted(_multiples(eps, budget["sweep"], limit) | {eps}))
        l2_eps, l2_sweep = None, ()
        if norm == "Linf":
            l2_eps = c["l2_eps"] if c["l2_eps"] is not None else l2_default
            l2_limit = _unbounded_eps("L2", box, adapter.input_shape)
            l2_sweep = tuple(sorted(_multiples(l2_eps, budget["l2_sweep"], l2_limit)
                                    | ({l2_eps} if budget["l2_sweep"] else set())))
        use_transforms = c["eot_transforms"] if c["eot_transforms"] is not None else not stochastic
        transform = Transformations() if use_transforms else None
        cuda = adapter.device.type == "cuda"
        autoattack = c["autoattack"] if c["autoattack"] is not None else budget["autoattack"]
        return _Plan(
            norm=norm,
            eps=float(eps),
            sweep=sweep,
            l2_eps=float(l2_eps) if l2_eps is not None else None,
            l2_sweep=l2_sweep,
            steps=c["steps"] or budget["steps"],
            restarts=c["restarts"] or budget["restarts"],
            n_examples=c["n_examples"] or budget["n_examples"],
            eot_samples=c["eot_samples"] or budget["eot_samples"],
            eval_samples=c["eval_samples"] or budget["eval_samples"],
            noise_draws=c["noise_draws"] or budget["noise_draws"],
            transform=transform,
            autoattack=bool(autoattack),
            batch_size=c["batch_size"] or (1024 if cuda else 256),
            units="input units" if box is not None else "feature standard deviations",
            defaults_reason=defaults.reason,
        )

    # --- run --------------------------------------------------------------------------
    def run(self, context) -> ProbeResult:
        from auditkit.pipeline import derive_seed

        devices = _cuda_devices(context.device)
        # A random model draws from torch's global generator: fork it so the audit is
        # reproducible and nobody else's random numbers change.
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(derive_seed(context.seed, "adversarial/model"))
            return self._run(context)

    def _run(self, context) -> ProbeResult:
        from auditkit.pipeline import derive_seed

        started = time.perf_counter()
        adapter, data = context.adapter, context.data
        space = _attack_space(adapter, data)
        stochastic, stochastic_diff = _detect_stochastic(adapter, space,
                                                         space.to_space(data.x[:64]))
        plan = self._plan(context, stochastic)
        n_total = len(data)
        if plan.n_examples < n_total:
            rng = context.rng("adversarial/examples")
            indices = np.sort(rng.choice(n_total, size=plan.n_examples, replace=False))
        else:
            indices = np.arange(n_total)
        tindex = torch.as_tensor(indices)
        x, y = data.x[tindex], data.y[tindex]
        clean_logits = context.clean_logits[tindex]
        # A NaN row is no answer: right only if it is the true class with finite logits.
        clean_correct = _right(clean_logits.float(), y)
        z = space.to_space(x)

        runner = _Runner(
            space=space, z=z, y=y, clean_correct=clean_correct, device=adapter.device,
            batch_size=plan.batch_size, stochastic=stochastic, eval_samples=plan.eval_samples,
            seed_of=lambda tag: context.generator(f"adversarial/{tag}", adapter.device),
            int_seed_of=lambda tag: derive_seed(context.seed, f"adversarial/{tag}"),
        )
        clean_probabilities = torch.softmax(clean_logits.float(), dim=-1)
        if stochastic:
            # One random pass is a coin flip near the boundary: judge clean inputs by the same
            # averaged prediction as every attack, so eps = 0 reproduces clean accuracy.
            clean_probabilities = runner.all_probabilities(z)
            clean_correct = _right(clean_probabilities, y)
            runner.clean_correct = clean_correct
        # Best-iterate tracking needs exact margins; a random model's single-pass margins are
        # noise, so there the last iterate is kept and judged with averaged passes instead.
        track_best = not stochastic
        gradient_stats = _gradient_stats(space, z, y, adapter.device, plan.batch_size)

        headline = self._attack_norm(runner, plan, plan.norm, plan.eps, plan.sweep, track_best,
                                     headline=True)
        secondary = None
        if plan.norm == "Linf" and plan.l2_eps is not None:
            secondary = self._attack_norm(runner, plan, "L2", plan.l2_eps, plan.l2_sweep,
                                          track_best, headline=False)

        eot_correct = self._eot(runner, plan, track_best)
        transform_correct = (
            runner.transform_correct(plan.transform) if plan.transform else None
        )
        limit = _unbounded_eps(plan.norm, space.box, tuple(adapter.input_shape))
        unbounded_correct, unbounded_runs = self._unbounded(
            runner, plan, limit, track_best, tuple(adapter.input_shape)
        )
        autoattack_correct, autoattack_settings, autoattack_note = None, None, None
        if plan.autoattack:
            autoattack_correct, autoattack_settings, autoattack_note = self._autoattack(
                runner, plan, adapter, stochastic, derive_seed(context.seed, "adversarial/aa")
            )

        robust = headline["robust"] & eot_correct
        if autoattack_correct is not None:
            robust &= autoattack_correct

        metrics: dict[str, float | None] = {
            "clean_accuracy": _mean(clean_correct),
            "fgsm_accuracy": _mean(headline["fgsm"]),
            "pgd_accuracy": _mean(headline["pgd"]),
            "eot_accuracy": _mean(eot_correct),
            "robust_accuracy": _mean(robust),
            "eps": plan.eps,
            "noise_accuracy": _mean(headline["noise"]),
        }
        if transform_correct is not None:
            metrics["transform_accuracy"] = _mean(transform_correct)
            metrics["eot_accuracy_given_transform_correct"] = (
                float(eot_correct[transform_correct].mean()) if transform_correct.any() else None
            )
        if secondary is not None:
            metrics["fgsm_l2_accuracy"] = _mean(secondary["fgsm"])
            metrics["pgd_l2_accuracy"] = _mean(secondary["pgd"])
            metrics["l2_eps"] = plan.l2_eps
        if autoattack_correct is not None:
            metrics["autoattack_accuracy"] = _mean(autoattack_correct)
        metrics["n_examples"] = len(indices)

        checks = _checklist(
            plan=plan, headline=headline, clean_correct=clean_correct,
            unbounded_correct=unbounded_correct, unbounded_eps=limit,
            unbounded_runs=unbounded_runs, nonfinite=runner.nonfinite,
            num_classes=adapter.num_classes, gradient_stats=gradient_stats,
            stochastic=stochastic, stochastic_diff=stochastic_diff,
            adapter_stochastic=bool(getattr(adapter.diagnostics, "stochastic", False)),
            metrics=metrics,
        )
        failed = [c for c in checks if c.status == "failed"]
        names = data.class_names or [str(i) for i in range(adapter.num_classes)]
        per_class = _per_class(y.numpy(), clean_correct, robust, names)

        context.artifacts["adversarial"] = {
            "indices": indices.astype(np.int64),
            "robust_correct": robust.astype(bool),
            "clean_correct": clean_correct.astype(bool),
            "eps": float(plan.eps),
            "norm": plan.norm,
        }

        figures = [_curve_figure(plan.norm, headline["curve"], plan.eps, plan.units,
                                 "accuracy-vs-eps")]
        if secondary is not None and len(secondary["curve"]) > 1:
            figures.append(_curve_figure("L2", secondary["curve"], plan.l2_eps, plan.units,
                                         "accuracy-vs-eps-l2"))
        figures.append(_per_class_figure(per_class, metrics["robust_accuracy"], plan))
        gallery = _gallery(runner, space, x, y, clean_probabilities, headline["adversarial"],
                           headline["pgd"], clean_correct, names, adapter.input_range)
        if gallery is not None:
            figures.append(gallery)

        findings = _findings(metrics, plan, failed, stochastic, per_class)
        status = "warned" if failed else "passed"
        return ProbeResult(
            name=self.name,
            status=status,
            metrics=metrics,
            checks=checks,
            summary=_summary(metrics, plan, checks, failed),
            headline="robust_accuracy",
            findings=findings,
            figures=figures,
            details={
                "settings": {**plan.describe(), "budget": self.budget,
                             "best_iterate": track_best},
                "threat_model": _threat_text(plan),
                "curve": headline["curve"],
                "l2_curve": secondary["curve"] if secondary is not None else None,
                "per_class": per_class,
                "stochastic": {"detected": stochastic, "max_abs_diff": stochastic_diff},
                "gradients": gradient_stats,
                "unbounded_attack": {"eps": limit, "accuracy": _mean(unbounded_correct),
                                     "runs": unbounded_runs},
                "nonfinite_under_attack": runner.nonfinite,
                "autoattack": autoattack_settings,
                "autoattack_note": autoattack_note,
                "seconds_per_attack": runner.timings,
                "worst_case_over": headline["worst_case_over"] + ["EOT-PGD"]
                + (["AutoAttack"] if autoattack_correct is not None else []),
            },
            seconds=time.perf_counter() - started,
        )

    # --- attacks ----------------------------------------------------------------------
    def _attack_norm(
        self,
        runner: _Runner,
        plan: _Plan,
        norm: str,
        eps: float,
        sweep: tuple[float, ...],
        track_best: bool,
        *,
        headline: bool,
    ) -> dict[str, Any]:
        """FGSM, PGD (restart 0) and noise over the sweep; at eps, restarts and 2× steps."""
        points = tuple(sorted(set(sweep) | {eps}))
        curve, at_eps = [], {}
        for e in points:
            fgsm, _ = runner.correct(f"fgsm/{norm}/{e:g}", FGSM, eps=e, norm=norm)
            pgd, adv = runner.correct(
                f"pgd/{norm}/{e:g}/r0", PGD, eps=e, norm=norm, steps=plan.steps,
                track_best=track_best, keep=headline and e == eps,
            )
            noise, _ = runner.correct(
                f"noise/{norm}/{e:g}", RandomNoise, eps=e, norm=norm, draws=plan.noise_draws
            )
            if e == eps:
                at_eps = {"fgsm": fgsm, "pgd_r0": pgd, "noise": noise, "adversarial": adv}
            if e in sweep:
                curve.append({
                    "eps": e, "fgsm": _mean(fgsm), "pgd": _mean(pgd), "noise": _mean(noise),
                    "worst": _mean(fgsm & pgd & noise),
                })
        pgd_all = at_eps["pgd_r0"]
        used = ["FGSM", f"PGD-{plan.steps}", "random noise"]
        if plan.restarts > 1:
            restarted, adv = runner.correct(
                f"pgd/{norm}/{eps:g}/restarts", PGD, eps=eps, norm=norm, steps=plan.steps,
                restarts=plan.restarts, track_best=track_best, keep=headline,
            )
            pgd_all = restarted & at_eps["pgd_r0"]
            used[1] = f"PGD-{plan.steps} × {plan.restarts + 1} restarts"
            if headline:
                at_eps["adversarial"] = _fooling_input(
                    at_eps["adversarial"], adv, restarted
                )
        result = {
            "curve": curve,
            "fgsm": at_eps["fgsm"],
            "pgd": pgd_all,
            "pgd_r0": at_eps["pgd_r0"],
            "noise": at_eps["noise"],
            "adversarial": at_eps.get("adversarial"),
        }
        robust = at_eps["fgsm"] & pgd_all & at_eps["noise"]
        if headline:
            # Same random start as restart 0, twice the steps: the convergence check.
            doubled, _ = runner.correct(
                f"pgd/{norm}/{eps:g}/r0/double-steps", PGD, seed_tag=f"pgd/{norm}/{eps:g}/r0",
                eps=eps, norm=norm, steps=2 * plan.steps, track_best=track_best,
            )
            result["pgd_double_steps"] = doubled
            robust &= doubled
            used.append(f"PGD-{2 * plan.steps}")
        result["robust"] = robust
        result["worst_case_over"] = used
        return result

    def _eot(self, runner: _Runner, plan: _Plan, track_best: bool) -> np.ndarray:
        correct, _ = runner.correct(
            f"eot/{plan.norm}/{plan.eps:g}", EOTPGD, judge="eot", transform=plan.transform,
            eps=plan.eps, norm=plan.norm, steps=plan.steps, track_best=track_best,
            samples=plan.eot_samples, input_scale=runner.space.scale_on(runner.device),
        )
        return correct

    def _unbounded(
        self, runner: _Runner, plan: _Plan, limit: float, track_best: bool,
        shape: tuple[int, ...],
    ) -> tuple[np.ndarray, list[dict[str, Any]]]:
        """PGD with a radius that reaches the whole box, from the clean input — a random point
        of the whole box is a random input, which would "succeed" without the gradients leading
        anywhere. The step is capped (a huge eps would otherwise jump over every nearby
        boundary) and what survives is attacked again with a 4× smaller step."""
        box = runner.space.box
        unit = UNBOUNDED_STEP_BOX * (box[1] - box[0]) if box is not None else UNBOUNDED_STEP_STD
        cap = unit if plan.norm == "Linf" else unit * math.sqrt(math.prod(shape))
        step = min(2.5 * limit / plan.steps, cap)
        still = runner.clean_correct.copy()
        runs: list[dict[str, Any]] = []
        for attempt in range(1 + UNBOUNDED_RETRIES):
            if not still.any():
                break
            attacked = int(still.sum())
            correct, _ = runner.correct(
                f"unbounded/{plan.norm}/{attempt}", PGD, among=still, eps=limit, norm=plan.norm,
                steps=plan.steps, alpha=step, track_best=track_best, random_start=False,
            )
            still &= correct
            runs.append({"step_size": step, "attacked": attacked, "accuracy": _mean(still)})
            step /= 4
        return still, runs

    def _autoattack(
        self, runner: _Runner, plan: _Plan, adapter, stochastic: bool, seed: int
    ) -> tuple[np.ndarray | None, dict[str, Any] | None, str | None]:
        box = runner.space.box
        if box is None or len(adapter.input_shape) != 3:
            return None, None, "AutoAttack runs on images (C, H, W) in a bounded box; skipped"
        if plan.eps == 0:
            return None, None, "eps is 0; AutoAttack skipped"
        started = time.perf_counter()
        attack = AutoAttack(
            runner.space.module, eps=plan.eps, norm=plan.norm, num_classes=adapter.num_classes,
            seed=seed, box=box, stochastic=stochastic,
        )
        targets = runner.targets
        adversarial = runner.z.clone()
        for start in range(0, len(targets), runner.batch_size):
            index = torch.as_tensor(targets[start : start + runner.batch_size])
            zb, yb = runner.z[index].to(runner.device), runner.y[index].to(runner.device)
            adversarial[index] = attack(zb, yb).cpu()
        fooled = (runner.fooled_random(adversarial) if stochastic
                  else runner._fooled_deterministic(adversarial))
        correct = runner.clean_correct & ~fooled
        runner.timings["autoattack"] = round(time.perf_counter() - started, 4)
        return correct, attack.settings(), None


# --- helpers ----------------------------------------------------------------------------
def _non_negative(key: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise AuditkitInputError(f"--set adversarial.{key}={value!r}: expected a number") from None
    if not math.isfinite(number) or number < 0:
        raise AuditkitInputError(f"--set adversarial.{key}={value!r}: must be a number ≥ 0")
    return number


def _positive_int(key: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise AuditkitInputError(
            f"--set adversarial.{key}={value!r}: expected a whole number"
        ) from None
    if number < 1 or number != float(value):
        raise AuditkitInputError(f"--set adversarial.{key}={value!r}: must be a whole number ≥ 1")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise AuditkitInputError(f"--set adversarial.{key}={value!r}: expected true or false")


def _cuda_devices(device: torch.device) -> list[int]:
    if device.type != "cuda":
        return []
    return [device.index if device.index is not None else torch.cuda.current_device()]


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def _right(scores: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per example: the top score is the true class, and no score is NaN / infinite."""
    finite = torch.isfinite(scores).all(dim=-1)
    return ((scores.argmax(dim=-1) == y) & finite).cpu().numpy()


def _fooling_input(
    first: torch.Tensor, restarts: torch.Tensor, restarts_correct: np.ndarray
) -> torch.Tensor:
    """Per example, the adversarial input of the run that fooled it: the restarts' where they
    succeeded, else restart 0's (which may have succeeded alone)."""
    pick = torch.as_tensor(~restarts_correct).view(-1, *([1] * (first.dim() - 1)))
    return torch.where(pick, restarts, first)


def _multiples(eps: float, factors: tuple[float, ...], limit: float) -> set[float]:
    """``eps`` times each factor (rounded for display), capped at ``limit``; factor 1 is ``eps``
    itself, so rounding never adds a near-copy of the headline (8/255 beside 0.0313725490)."""
    return {eps if m == 1 else min(round(m * eps, 10), limit) for m in factors}


def _unbounded_eps(norm: str, box: tuple[float, float] | None, shape: tuple[int, ...]) -> float:
    """A radius that reaches every point of the box (or 100 stds when there is no box)."""
    width = (box[1] - box[0]) if box is not None else UNBOUNDED_STD_EPS
    return float(width if norm == "Linf" else width * math.sqrt(math.prod(shape)))


def _attack_space(adapter, data) -> _Space:
    module = adapter.as_module()
    if adapter.input_range is not None:
        return _Space(module=module, box=tuple(adapter.input_range))
    # Unbounded inputs: measure perturbations in feature standard deviations of the audit data.
    std = data.x.float().std(dim=0, unbiased=False)
    scale = torch.where(std > 0, std, torch.ones_like(std))
    return _Space(module=_Standardized(module, scale.to(adapter.device)), box=None, scale=scale)


def _detect_stochastic(adapter, space: _Space, z: torch.Tensor) -> tuple[bool, float]:
    sample = z[:64].to(adapter.device)
    with torch.no_grad():
        first = space.module(sample).float()
        second = space.module(sample).float()
    diff = float((first - second).abs().max()) if len(sample) else 0.0
    # Relative to the logits' size, so float round-off of non-deterministic GPU kernels on
    # large logits is not mistaken for a random model.
    scale = max(1.0, float(first.abs().max())) if len(sample) else 1.0
    flagged = bool(getattr(adapter.diagnostics, "stochastic", False))
    adapter_diff = float(getattr(adapter.diagnostics, "stochastic_max_diff", 0.0) or 0.0)
    return flagged or diff > 1e-5 * scale, max(diff, adapter_diff)


def _gradient_stats(
    space: _Space, z: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int
) -> dict[str, Any]:
    """Input gradients of the cross-entropy and of the margin on every attacked example."""
    ce_max, margin_max, finite = [], [], True
    for start in range(0, len(z), batch_size):
        zb = z[start : start + batch_size].to(device).requires_grad_(True)
        yb = y[start : start + batch_size].to(device)
        with torch.enable_grad():
            logits = space.module(zb).float()
            # Sum, not mean: a 1/N factor would push small gradients below float32's range.
            ce = nn.functional.cross_entropy(logits, yb, reduction="sum")
            (g_ce,) = torch.autograd.grad(ce, zb, retain_graph=True)
            (g_margin,) = torch.autograd.grad(margin(logits, yb).sum(), zb)
        finite = finite and bool(torch.isfinite(g_ce).all()) and bool(torch.isfinite(logits).all())
        ce_max.append(g_ce.flatten(1).abs().amax(1).nan_to_num(0).cpu())
        margin_max.append(g_margin.flatten(1).abs().amax(1).nan_to_num(0).cpu())
    ce_all = torch.cat(ce_max) if ce_max else torch.zeros(0)
    margin_all = torch.cat(margin_max) if margin_max else torch.zeros(0)
    n = max(len(ce_all), 1)
    return {
        "finite": finite,
        "nonzero_fraction": float((ce_all > 0).sum()) / n,
        "margin_nonzero_fraction": float((margin_all > 0).sum()) / n,
        "median_abs_max": float(ce_all.median()) if len(ce_all) else 0.0,
    }


def _tolerance(base: float, n: int) -> float:
    # The 1e-9 keeps a difference of exactly the tolerance (0.59 − 0.57) from failing on
    # floating-point round-off.
    return max(base, 2.0 / max(n, 1)) + 1e-9


def _checklist(
    *,
    plan: _Plan,
    headline: dict[str, Any],
    clean_correct: np.ndarray,
    unbounded_correct: np.ndarray,
    unbounded_eps: float,
    unbounded_runs: list[dict[str, Any]],
    nonfinite: dict[str, int],
    num_classes: int,
    gradient_stats: dict[str, Any],
    stochastic: bool,
    stochastic_diff: float,
    adapter_stochastic: bool,
    metrics: dict[str, float | None],
) -> list[Check]:
    n = len(clean_correct)
    curve = headline["curve"]
    attacked = [p for p in curve if p["eps"] > 0]
    nothing = not clean_correct.any()
    na = "not applicable: no example is classified correctly, so there is nothing to attack"
    checks = []

    # 1. iterative ≤ single-step
    tol = _tolerance(ITERATIVE_TOLERANCE, n)
    worse = [p for p in attacked if p["pgd"] > p["fgsm"] + tol]
    checks.append(Check(
        CHECK_NAMES[0],
        "skipped" if nothing or not attacked else ("failed" if worse else "passed"),
        na if nothing else (
            "no eps > 0 in the sweep" if not attacked else
            "PGD is weaker than single-step FGSM at eps "
            + ", ".join(f"{p['eps']:g}" for p in worse)
            if worse else "PGD accuracy ≤ FGSM accuracy at every eps of the sweep"
        ),
        {"eps": [p["eps"] for p in attacked], "pgd_accuracy": [p["pgd"] for p in attacked],
         "fgsm_accuracy": [p["fgsm"] for p in attacked], "tolerance": round(tol, 6)},
    ))

    # 2. monotone in eps
    tol = _tolerance(MONOTONE_TOLERANCE, n)
    rises = [
        (a["eps"], b["eps"], b["pgd"] - a["pgd"])
        for a, b in zip(curve, curve[1:], strict=False) if b["pgd"] > a["pgd"] + tol
    ]
    biggest = max((b["pgd"] - a["pgd"] for a, b in zip(curve, curve[1:], strict=False)),
                  default=0.0)
    checks.append(Check(
        CHECK_NAMES[1],
        "skipped" if nothing or len(curve) < 2 else ("failed" if rises else "passed"),
        na if nothing else (
            "a single eps: nothing to compare" if len(curve) < 2 else
            "PGD accuracy rises from eps " + ", ".join(f"{a:g} to {b:g} (+{d:.1%})"
                                                        for a, b, d in rises)
            if rises else "PGD accuracy never rises with eps"
        ),
        {"eps": [p["eps"] for p in curve], "pgd_accuracy": [p["pgd"] for p in curve],
         "largest_rise": biggest, "tolerance": round(tol, 6)},
    ))

    # 3. unbounded attack reaches ~0
    chance = 1.0 / max(num_classes, 1)
    threshold = min(chance, UNBOUNDED_MAX_ACCURACY)
    unbounded = _mean(unbounded_correct)
    unbounded_ok = not nothing and unbounded <= threshold
    steps_text = (f"step size {unbounded_runs[0]['step_size']:.3g}" if len(unbounded_runs) == 1
                  else "step sizes " + ", ".join(f"{r['step_size']:.3g}" for r in unbounded_runs)
                  + ", each retry on the examples still standing")
    checks.append(Check(
        CHECK_NAMES[2],
        "skipped" if nothing else ("passed" if unbounded_ok else "failed"),
        na if nothing else (
            f"PGD from the clean input with eps {unbounded_eps:g} (the whole input box; "
            f"{steps_text}) leaves {unbounded:.1%} accuracy; it must reach ≤ {threshold:.0%} "
            f"(chance is {chance:.0%})"
        ),
        {"eps": unbounded_eps, "accuracy": unbounded, "threshold": threshold, "chance": chance,
         "step_sizes": [r["step_size"] for r in unbounded_runs]},
    ))

    # 4. doubling steps barely changes the result
    tol = _tolerance(STEPS_TOLERANCE, n)
    base, doubled = _mean(headline["pgd_r0"]), _mean(headline["pgd_double_steps"])
    change = abs(doubled - base)
    checks.append(Check(
        CHECK_NAMES[3],
        "skipped" if nothing else ("passed" if change <= tol else "failed"),
        na if nothing else (
            f"PGD-{plan.steps} {base:.1%} vs PGD-{2 * plan.steps} {doubled:.1%} from the same "
            f"start: change {change:.1%} (tolerance {tol:.1%})"
        ),
        {"steps": plan.steps, "accuracy": base, "double_steps_accuracy": doubled,
         "change": change, "tolerance": round(tol, 6)},
    ))

    # 5. random noise of the same norm is weaker than the attack. Only PGD leaving *more*
    # accuracy than noise is a failure: a robust model that neither moves is no evidence of
    # masking, as long as the unbounded attack shows that its gradients lead somewhere.
    tol = _tolerance(NOISE_TOLERANCE, n)
    weaker = [p for p in attacked if p["pgd"] > p["noise"] + tol]
    beats = [p for p in attacked if p["noise"] - p["pgd"] > tol]
    clean = _mean(clean_correct)
    moved = any(clean - p["pgd"] > tol for p in attacked)
    if nothing or not attacked:
        status, detail = "skipped", na if nothing else "no eps > 0 in the sweep"
    elif weaker:
        status, detail = "failed", (
            "PGD leaves more accuracy than random noise of the same norm at eps "
            + ", ".join(f"{p['eps']:g}" for p in weaker)
        )
    elif beats:
        status, detail = "passed", (
            "PGD beats random noise of the same norm (never weaker, stronger at eps "
            + ", ".join(f"{p['eps']:g}" for p in beats) + ")"
        )
    elif unbounded_ok:
        status, detail = "passed", (
            ("PGD is never weaker than random noise of the same norm (they tie at every eps "
             "of the sweep)" if moved else
             f"neither PGD nor random noise moves the accuracy ({clean:.1%}) at any eps of "
             "the sweep: the model is robust at these radii")
            + f", and the unbounded attack reaches {unbounded:.1%}, so the gradients do lead "
            "to adversarial examples"
        )
    else:
        status, detail = "skipped", (
            "inconclusive: PGD and random noise of the same norm tie at every eps of the "
            "sweep, and the unbounded attack fails too (see unbounded_attack_succeeds)"
        )
    checks.append(Check(
        CHECK_NAMES[4],
        status,
        detail,
        {"eps": [p["eps"] for p in attacked], "pgd_accuracy": [p["pgd"] for p in attacked],
         "noise_accuracy": [p["noise"] for p in attacked], "tolerance": round(tol, 6)},
    ))

    # 6. gradients non-zero and finite, at the clean inputs and wherever the attacks went
    g = gradient_stats
    worst_nonfinite = max(nonfinite.values(), default=0)
    ok = g["finite"] and g["nonzero_fraction"] >= GRADIENT_NONZERO_MIN and not worst_nonfinite
    detail = (f"input gradients finite: {g['finite']}; non-zero for "
              f"{g['nonzero_fraction']:.1%} of {n} examples (need ≥ {GRADIENT_NONZERO_MIN:.0%})")
    if worst_nonfinite:
        detail += (f"; the model returned NaN/inf logits or gradients on perturbed inputs of up "
                   f"to {worst_nonfinite} examples (in {', '.join(sorted(nonfinite))}); those "
                   "inputs count as fooled")
    if not ok and g["margin_nonzero_fraction"] > g["nonzero_fraction"] + 0.01:
        detail += (f"; the logit margin still has gradients for {g['margin_nonzero_fraction']:.1%}"
                   ": the softmax is saturated")
    checks.append(Check(CHECK_NAMES[5], "passed" if ok else "failed", detail,
                        {**g, "nonfinite_examples_under_attack": worst_nonfinite}))

    # 7. stochastic model attacked with EOT
    gap = (metrics["pgd_accuracy"] or 0.0) - (metrics["eot_accuracy"] or 0.0)
    values = {"stochastic": stochastic, "max_abs_diff_between_passes": stochastic_diff,
              "adapter_flagged": adapter_stochastic, "eot_samples": plan.eot_samples,
              "pgd_accuracy": metrics["pgd_accuracy"], "eot_accuracy": metrics["eot_accuracy"],
              "pgd_minus_eot": gap}
    if not stochastic:
        status, detail = "skipped", (
            "not applicable: the model's forward pass is deterministic (two passes agree; EOT "
            f"still ran over input transformations, PGD − EOT = {gap:+.1%})"
        )
    elif plan.eot_samples < 2:
        status, detail = "failed", (
            f"the model is random (passes differ by up to {stochastic_diff:.3g}) but EOT "
            "averaged a single draw"
        )
    else:
        status, detail = "passed", (
            f"random model detected (passes differ by up to {stochastic_diff:.3g}); attacked "
            f"with EOT over {plan.eot_samples} draws: PGD {metrics['pgd_accuracy']:.1%} vs "
            f"EOT {metrics['eot_accuracy']:.1%} (gap {gap:+.1%})"
        )
    checks.append(Check(CHECK_NAMES[6], status, detail, values))
    return checks


_ADVICE = {
    CHECK_NAMES[0]: (
        "the iterative attack is weaker than one gradient step",
        "PGD should never do worse than FGSM; when it does, the loss surface misleads the "
        "optimizer (gradient masking) or the step size is off",
        "look for saturated softmax or non-differentiable layers; raise steps/restarts; run "
        "--budget thorough (AutoAttack includes the gradient-free Square attack)",
    ),
    CHECK_NAMES[1]: (
        "accuracy rises although the attacker may change more",
        "a larger budget contains every smaller one, so accuracy can only fall; a rise means "
        "the attack is not converging (typical of gradient masking or obfuscation)",
        "raise steps and restarts, attack through EOT or BPDA, and re-run with --budget "
        "thorough before trusting the curve",
    ),
    CHECK_NAMES[2]: (
        "even an unbounded attack cannot break the model",
        "with the whole input box allowed any model can be fooled; failing here means the "
        "gradients do not lead anywhere (masked, shattered or non-differentiable)",
        "replace non-differentiable preprocessing by BPDA (identity in the backward pass), "
        "check for a saturated softmax, and use a gradient-free attack (--budget thorough)",
    ),
    CHECK_NAMES[3]: (
        "PGD has not converged",
        "doubling the number of steps changed the accuracy noticeably, so the reported "
        "numbers are still falling with more effort",
        "raise --set adversarial.steps (and restarts) until doubling no longer matters",
    ),
    CHECK_NAMES[4]: (
        "the attack is no stronger than random noise",
        "a working gradient attack beats random noise of the same size; if it does not, the "
        "gradients carry no information (gradient masking)",
        "check for a saturated softmax (divide the logits or attack a margin loss), replace "
        "non-differentiable steps with BPDA, average random layers with EOT",
    ),
    CHECK_NAMES[5]: (
        "input gradients are zero or not finite",
        "gradient attacks cannot move an input whose gradient vanishes or is NaN, so the model "
        "looks robust without being robust (quantization, saturated softmax, a hard threshold, "
        "a log or division that breaks off the data)",
        "if logits are huge, the softmax saturates in float32: attack a margin loss or scale "
        "the logits down; replace rounding/quantization with BPDA (identity in the backward); "
        "guard any operation that returns NaN/inf on perturbed inputs (auditkit counts those "
        "inputs as fooled)",
    ),
    CHECK_NAMES[6]: (
        "a random model was attacked without EOT",
        "a single random forward pass gives a noisy gradient, so plain PGD overestimates the "
        "robustness of randomized models",
        "set --set adversarial.eot_samples to 8 or more",
    ),
}


def _findings(
    metrics: dict[str, float | None],
    plan: _Plan,
    failed: list[Check],
    stochastic: bool,
    per_class: list[dict[str, Any]],
) -> list[Finding]:
    findings = []
    for check in failed:
        title, why, action = _ADVICE[check.name]
        findings.append(Finding(
            "warning", f"{title}: robustness is likely overestimated",
            why=f"{why}. {check.detail}.", action=action,
        ))
    clean, robust = metrics["clean_accuracy"] or 0.0, metrics["robust_accuracy"] or 0.0
    if clean > 0 and plan.eps > 0:
        flipped = 1 - robust / clean
        norm = "L∞" if plan.norm == "Linf" else "L2"
        findings.append(Finding(
            "warning" if robust < 0.5 * clean else "info",
            f"{'at least ' if failed else ''}{flipped:.0%} of correctly classified examples "
            f"change their answer under an {norm} perturbation of {plan.eps:.3g}",
            why="an attacker (or an unlucky input) needs only this small, targeted change; "
            "standard training gives no protection against it",
            action="if the model faces adversaries, train it adversarially (Madry et al. 2018) "
            "and re-audit with --budget thorough; otherwise read this as a worst-case stress "
            "test",
        ))
    gap = (metrics["pgd_accuracy"] or 0.0) - (metrics["eot_accuracy"] or 0.0)
    if stochastic and gap > 0:
        findings.append(Finding(
            "warning",
            f"the model is random: plain PGD overstates its robustness by {gap:.1%}",
            why="its forward pass draws random numbers, so one pass gives a noisy gradient; "
            "averaging over the randomness (EOT) finds adversarial examples PGD misses",
            action="quote the EOT / robust accuracy, never plain PGD, for this model",
        ))
    present = [c for c in per_class if c["count"] and c["robust_accuracy"] is not None]
    if present and clean > 0:
        worst = min(present, key=lambda c: c["robust_accuracy"])
        if robust - worst["robust_accuracy"] > 0.15:
            findings.append(Finding(
                "info",
                f"class {worst['class']} is the easiest to attack "
                f"({worst['robust_accuracy']:.1%} robust vs {robust:.1%} overall)",
                why="robustness is uneven across classes; the bias probe compares groups",
                action="inspect the gallery and that class's nearest confusions",
            ))
    return findings


def _summary(
    metrics: dict[str, float | None], plan: _Plan, checks: list[Check], failed: list[Check]
) -> str:
    norm = "L∞" if plan.norm == "Linf" else "L2"
    ran = [c for c in checks if c.status != "skipped"]
    skipped = [c for c in checks if c.status == "skipped"]
    why = ("not applicable" if all(c.detail.startswith("not applicable") for c in skipped)
           else "skipped")
    aside = f"{len(skipped)} {why}" if skipped else ""
    text = (
        f"Under {norm} perturbations of {plan.eps:.3g}, accuracy falls from "
        f"{metrics['clean_accuracy']:.1%} to {metrics['robust_accuracy']:.1%} (worst case over "
        f"FGSM, PGD, EOT and noise on {metrics['n_examples']} examples); "
    )
    if failed:
        names = ", ".join(c.name for c in failed) + (f"; {aside}" if aside else "")
        return text + (f"{len(failed)} of {len(ran)} applicable validity checks failed "
                       f"({names}), so robustness is likely overestimated.")
    if not ran:
        return text + f"no validity check applies ({aside})."
    return text + f"all {len(ran)} applicable validity checks passed" + (
        f" ({aside})." if aside else "."
    )


def _threat_text(plan: _Plan) -> str:
    norm = "L∞" if plan.norm == "Linf" else "L2"
    return (
        f"‖δ‖_{norm[1:]} ≤ {plan.eps:.4g} ({plan.units}), x + δ inside the input box; "
        "an example counts as robust only if it is classified correctly clean and under "
        "every attack"
    )


def _per_class(
    y: np.ndarray, clean_correct: np.ndarray, robust: np.ndarray, names: list[str]
) -> list[dict[str, Any]]:
    rows = []
    for k, name in enumerate(names):
        mask = y == k
        count = int(mask.sum())
        rows.append({
            "class": name,
            "count": count,
            "clean_accuracy": _mean(clean_correct[mask]) if count else None,
            "robust_accuracy": _mean(robust[mask]) if count else None,
        })
    return rows


def _curve_figure(
    norm: str, curve: list[dict[str, Any]], eps: float, units: str, figure_id: str
) -> dict[str, Any]:
    label = "L∞" if norm == "Linf" else "L2"
    xs = [p["eps"] for p in curve]
    return {
        "kind": "line",
        "id": figure_id,
        "title": f"Accuracy under {label} attacks as the budget grows",
        "x_label": f"{label} eps ({units})",
        "y_label": "accuracy",
        "series": [
            {"name": "FGSM", "x": xs, "y": [p["fgsm"] for p in curve]},
            {"name": "PGD", "x": xs, "y": [p["pgd"] for p in curve]},
            {"name": f"random noise (same {label} norm)", "x": xs,
             "y": [p["noise"] for p in curve]},
            {"name": "worst case", "x": xs, "y": [p["worst"] for p in curve]},
        ],
        "y_range": [0, 1],
        "caption": (
            f"Each point attacks the same examples. The headline eps is {eps:.4g}; a curve "
            "that rises with eps, or PGD above noise or FGSM, signals an unreliable attack."
        ),
    }


def _per_class_figure(
    per_class: list[dict[str, Any]], robust: float | None, plan: _Plan
) -> dict[str, Any]:
    return {
        "kind": "bar",
        "id": "robust-accuracy-per-class",
        "title": f"Robust accuracy per class (eps {plan.eps:.3g})",
        "x_label": "class",
        "y_label": "robust accuracy",
        "bars": [
            {"label": row["class"], "value": row["robust_accuracy"], "count": row["count"],
             "flag": robust is not None and row["robust_accuracy"] is not None
             and row["robust_accuracy"] < robust - 0.15}
            for row in per_class if row["count"]
        ],
        "reference": robust,
        "y_range": [0, 1],
        "caption": "worst case over every attack; the line marks the overall robust accuracy",
    }


def _display(x: torch.Tensor, box: tuple[float, float] | None) -> list:
    """One example as H×W (grey) or H×W×3 floats in [0, 1], rounded to keep the report small."""
    if box is not None:
        x = (x - box[0]) / (box[1] - box[0])
    else:
        x = (x - x.min()) / (x.max() - x.min()).clamp_min(1e-12)
    x = x.clamp(0, 1)
    image = x.permute(1, 2, 0) if x.shape[0] == 3 else x[0]
    return np.round(image.numpy().astype(float), 3).tolist()


def _gallery(
    runner: _Runner,
    space: _Space,
    x: torch.Tensor,
    y: torch.Tensor,
    clean_probabilities: torch.Tensor,
    adversarial: torch.Tensor | None,
    pgd_correct: np.ndarray,
    clean_correct: np.ndarray,
    names: list[str],
    box: tuple[float, float] | None,
) -> dict[str, Any] | None:
    if adversarial is None or x.dim() != 4 or box is None:
        return None
    fooled = np.flatnonzero(clean_correct & ~pgd_correct)
    # One example per class first, so the gallery shows variety.
    chosen, seen = [], set()
    for i in fooled:
        if int(y[i]) not in seen:
            chosen.append(int(i))
            seen.add(int(y[i]))
        if len(chosen) == GALLERY_SIZE:
            break
    for i in fooled:
        if len(chosen) == GALLERY_SIZE:
            break
        if int(i) not in chosen:
            chosen.append(int(i))
    if not chosen:
        chosen = [int(i) for i in np.flatnonzero(clean_correct)[:GALLERY_SIZE]]
    if not chosen:
        return None
    index = torch.as_tensor(chosen)
    adv = space.from_space(adversarial[index])
    # The judging chunks and seeds, so a random model shows the very verdict that was counted.
    adv_probs = runner.all_probabilities(adversarial)[index]
    clean_probs = clean_probabilities[index]
    rows = []
    for row, i in enumerate(chosen):
        original, perturbed = x[i], adv[row]
        delta = perturbed - original
        peak = float(delta.abs().max())
        amplify = 0.5 / peak if peak > 0 else 1.0
        shown = (0.5 + delta * amplify).clamp(0, 1)
        true = names[int(y[i])]
        clean_pred = int(clean_probs[row].argmax())
        adv_pred = int(adv_probs[row].argmax())
        rows.append({
            "caption": f"true class {true}",
            "cells": [
                {"label": f"original: {names[clean_pred]} ({float(clean_probs[row, clean_pred]):.0%})",
                 "pixels": _display(original, box)},
                {"label": f"perturbation ×{amplify:.1f} (max {peak:.3g})",
                 "pixels": _display(shown, (0.0, 1.0))},
                {"label": f"adversarial: {names[adv_pred]} ({float(adv_probs[row, adv_pred]):.0%})",
                 "pixels": _display(perturbed, box)},
            ],
        })
    return {
        "kind": "images",
        "id": "adversarial-gallery",
        "title": "Adversarial examples (PGD at the headline eps)",
        "columns": ["original", "perturbation (amplified)", "adversarial"],
        "rows": rows,
        "caption": (
            "Labels give the predicted class and its confidence. The perturbation is shown "
            "amplified around mid-grey; at its true size it is hard to see."
        ),
    }
