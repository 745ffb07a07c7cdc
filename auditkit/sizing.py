"""Budgets that fit the clock: measure what the model costs, then size each probe's work.

Before the probes run, the pipeline measures the model's forward and forward+backward seconds
per example on the audit device (a few small batches, the fastest of three timings, under the machine's current load), and
plans each probe's work — examples attacked, PGD steps and restarts, EOT draws, the memorization
subset, MC samples, bootstrap rounds — so that ``fast`` takes about a minute of probe time and
``standard`` about ten (``max_minutes`` sets another limit).

Decisions:
- A probe's work is estimated from its settings and the measured cost (gradient passes ×
  backward seconds + forward passes × forward seconds). When the estimate of the budget's
  defaults fits the limit, nothing changes: small models (the demo) keep exactly their budget's
  work, so their numbers never depend on the machine's speed.
- Otherwise every probe's share shrinks in proportion to its estimate, and each probe gives up
  work in a fixed order down to a floor that keeps its experiment conclusive: fewer examples
  attacked before fewer steps or restarts; memorization trains on a smaller subset (a subset
  small enough to fit is still the random-label test) and keeps its epoch cap, and its time
  limit is set well above the planned time so the clock is a safety net, not the experiment.
  Sizes snap to a short ladder (50, 100, 200, 500, …), so a few percent of timing noise does
  not move the plan.
- The plan is a pure function of (budget, limit, recorded cost, data size, user options): with
  the same recorded cost the same plan comes back. The cost is recorded in audit.json and in the
  checkpoint folder; ``--resume`` reuses it, so a resumed audit sizes its work as the first run
  did. Options the user set explicitly are never changed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Probe-time limits per budget (seconds). ``thorough`` promises depth, not speed.
BUDGET_SECONDS: dict[str, float | None] = {"fast": 60.0, "standard": 600.0, "thorough": None}
#: Timed batches per measurement (the fastest is used).
MEASURE_REPEATS = 3
#: A measured batch should take at least this long to be worth timing.
_MIN_BATCH_SECONDS = 0.2
_MAX_MEASURE_BATCH = 64
_ONE_TIMING_SECONDS = 0.5

LADDER_EXAMPLES = (20, 50, 100, 200, 500, 1000, 2000, 5000)
LADDER_TRAIN = (8, 16, 32, 64, 128, 256, 512, 1000, 2000, 5000)
LADDER_BOOT = (50, 100, 200, 500)
LADDER_SAMPLES = (4, 8, 16, 20, 32, 50)
LADDER_OOD = (64, 128, 256, 500, 1000, 2000)

#: Floors: below them the experiment stops meaning what its name says.
MIN_ATTACKED = 50
#: A model too costly to attack 50 examples within the limit even with the curves and
#: checks at their smallest: this many (a small sample, said as such in the plan).
MIN_ATTACKED_COSTLY = 20
MIN_EOT_SAMPLES = 2
MIN_STEPS = 10
MIN_TRAIN = 8
#: Memorization keeps every corruption level down to this subset size, and the true-label
#: reference beside the random labels down to the next.
MEMORIZATION_KEEP_LEVELS_TRAIN = 64
MEMORIZATION_KEEP_REFERENCE_TRAIN = 32
MIN_BOOT = 50
MIN_MC_SAMPLES = 4
#: Examples per generated OOD set (AUROC against the audit data stays meaningful).
MIN_OOD = 64
#: Share of its epoch cap a memorization level is expected to train for (planning only; a
#: ResNet-50 from scratch fit 8 or 16 random labels in 64–67 of its 100 epochs).
EXPECTED_EPOCH_SHARE = 0.6
#: What the probes' bookkeeping (best iterates, EOT transformations, margins; the training
#: loop's mode switches and accuracy passes) adds to the bare passes: attack by attack, a
#: ResNet-50 at 224×224 on 2 idle CPU cores took 0.9–1.4× its passes at the measured cost
#: (EOT's transformations the most), its training 1.0×.
ADVERSARIAL_OVERHEAD = 1.4
MEMORIZATION_OVERHEAD = 1.1
#: Memorization's time limit per level: this multiple of what its whole epoch cap takes at the
#: recorded cost, so the clock never ends a level that would finish at the measured speed.
TIME_LIMIT_SAFETY = 1.5


@dataclass(frozen=True)
class Cost:
    """What one example costs the model on the audit device, as measured (seconds)."""

    device: str
    forward_s: float
    backward_s: float
    train_step_s: float
    batch_size: int
    parameters: int
    threads: int
    measured: str = "measured"
    #: One Adam step over the model's parameters (seconds), whatever the batch.
    optimizer_step_s: float = 0.0
    #: What a batched pass costs whatever its size (seconds): kernel launches, thread
    #: start-up and, on a CPU shared with other jobs, waiting for the scheduler. The
    #: per-example costs above are the slope beyond it (timed at 2 examples and at
    #: ``batch_size``), so a plan for busy cores is not charged that wait once per example.
    forward_latency_s: float = 0.0
    backward_latency_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "forward_s_per_example": self.forward_s,
            "forward_backward_s_per_example": self.backward_s,
            "train_step_s_per_example": self.train_step_s,
            "batch_size": self.batch_size,
            "parameters": self.parameters,
            "threads": self.threads,
            "measured": self.measured,
            "optimizer_step_s": self.optimizer_step_s,
            "forward_latency_s": self.forward_latency_s,
            "forward_backward_latency_s": self.backward_latency_s,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Cost:
        return cls(
            device=str(d["device"]),
            forward_s=float(d["forward_s_per_example"]),
            backward_s=float(d["forward_backward_s_per_example"]),
            train_step_s=float(d["train_step_s_per_example"]),
            batch_size=int(d["batch_size"]),
            parameters=int(d["parameters"]),
            threads=int(d.get("threads", 1)),
            measured=str(d.get("measured", "recorded")),
            optimizer_step_s=float(d.get("optimizer_step_s", 0.0)),
            forward_latency_s=float(d.get("forward_latency_s", 0.0)),
            backward_latency_s=float(d.get("forward_backward_latency_s", 0.0)),
        )

    def forward_seconds(self, examples: float, batches: float) -> float:
        return examples * self.forward_s + batches * self.forward_latency_s

    def gradient_seconds(self, examples: float, batches: float) -> float:
        return examples * self.backward_s + batches * self.backward_latency_s

    def train_seconds(self, examples: float, batches: float) -> float:
        """Weight gradients: the input gradient's latency (a training step has the same
        launches) plus the per-example training cost."""
        return examples * self.train_step_s + batches * self.backward_latency_s


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timings: a load spike only ever slows a pass down, while a
    machine that stays busy slows every timing (and the plan adapts to that)."""
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return min(times)


def measure_cost(adapter, x: torch.Tensor, *, repeats: int = MEASURE_REPEATS) -> Cost:
    """Forward, forward+backward (input gradient) and training-step seconds per example.

    Batches grow from 16 examples until one takes ``_MIN_BATCH_SECONDS`` or holds 64 examples
    (a ResNet-50 at 224×224 on a CPU is timed on 16 images, a small CNN on 64). Cheap passes are timed ``repeats`` times
    (fastest); a pass that takes longer than ``_ONE_TIMING_SECONDS`` is timed once, so measuring
    never costs more than a few passes. Measured under the machine's current load: a busy
    machine gets a smaller plan.
    """
    device = adapter.device
    module = adapter.as_module() if getattr(adapter, "supports_gradients", False) else None
    parameters = sum(p.numel() for p in module.parameters()) if module is not None else 0
    n = max(1, min(len(x), _MAX_MEASURE_BATCH))
    # At least 16 examples: per-example cost at tiny batches overstates what the probes'
    # batches (32 to 256) pay.
    size = min(16, n)

    def timed(fn) -> float:
        once = _best_seconds(fn, device, 1)
        if once > _ONE_TIMING_SECONDS or repeats <= 1:
            return once
        return _best_seconds(fn, device, repeats)

    with torch.inference_mode():
        adapter.logits(x[:2].to(device))  # warm-up: first-call allocation, kernel selection
        while True:
            sample = x[:size].to(device)
            took = _best_seconds(lambda batch=sample: adapter.logits(batch), device, 1)
            if took >= _MIN_BATCH_SECONDS or size >= n:
                break
            size = min(n, size * 4)
        forward = (took if took > _ONE_TIMING_SECONDS else timed(lambda: adapter.logits(sample)))
        two = sample[:2]
        forward, forward_latency = _split_latency(
            forward, timed(lambda: adapter.logits(two)), size
        )
    backward, backward_latency = forward * 2.0, forward_latency * 2.0
    train = forward * 3.0
    if module is not None:
        params = [p for p in module.parameters() if p.requires_grad]

        def input_gradient(batch: torch.Tensor) -> None:
            z = batch.detach().clone().requires_grad_(True)
            with torch.enable_grad():
                logits = module(z).float()
                loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
                torch.autograd.grad(loss, z)

        def training_step() -> None:
            # Gradients of every parameter, as one training step computes them (not stored:
            # the audited model is never modified).
            with torch.enable_grad():
                logits = module(sample.detach()).float()
                loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
                torch.autograd.grad(loss, params)

        try:
            # Warm-up: the first backward allocates autograd's buffers and picks kernels.
            input_gradient(two)
            backward, backward_latency = _split_latency(
                timed(lambda: input_gradient(sample)), timed(lambda: input_gradient(two)), size
            )
            # Weight gradients cost about as much again as input gradients; time them only
            # when a pass is cheap.
            train = backward * 1.5
            if params and backward * size < _ONE_TIMING_SECONDS:
                train = max(timed(training_step) - backward_latency, 0.0) / size
        except RuntimeError:
            pass  # no usable gradient: keep the forward-based estimate
    optimizer_step = _adam_step_seconds(module, device) if module is not None else 0.0
    return Cost(
        optimizer_step_s=float(optimizer_step),
        device=str(device),
        forward_s=float(forward),
        backward_s=float(backward),
        train_step_s=float(max(train, backward)),
        batch_size=int(size),
        parameters=int(parameters),
        threads=int(torch.get_num_threads()),
        forward_latency_s=float(forward_latency),
        backward_latency_s=float(backward_latency),
    )


def _split_latency(batch_seconds: float, two_seconds: float, size: int) -> tuple[float, float]:
    """Per-example seconds and per-pass latency from a pass of ``size`` examples and one of 2
    (a line through both). The slope is at least a tenth of the plain average, so timing
    noise never makes examples free."""
    if size <= 2:
        return batch_seconds / max(size, 1), 0.0
    slope = max((batch_seconds - two_seconds) / (size - 2), 0.1 * batch_seconds / size)
    return slope, max(0.0, batch_seconds - slope * size)


def _adam_step_seconds(module: nn.Module, device: torch.device) -> float:
    """One Adam step over copies of the model's parameters (memorization's optimizer): on a
    CPU it is a fixed cost per step that a large network pays even for a tiny batch."""
    try:
        params = [
            torch.zeros_like(p, device=device).requires_grad_(True)
            for p in module.parameters()
            if p.requires_grad
        ]
        if not params:
            return 0.0
        for p in params:
            p.grad = torch.zeros_like(p)
        optimizer = torch.optim.Adam(params, lr=1e-3)
        optimizer.step()  # warm-up: creates the moment buffers
        seconds = _best_seconds(optimizer.step, device, 2)
        del optimizer, params
        return seconds
    except RuntimeError:
        return 0.0


# --- what each built-in probe's work costs -------------------------------------------------
def _probe_classes() -> dict[str, type]:
    from auditkit.probes.adversarial import AdversarialProbe
    from auditkit.probes.bias import BiasProbe
    from auditkit.probes.calibration import CalibrationProbe
    from auditkit.probes.memorization import MemorizationProbe

    return {
        "adversarial": AdversarialProbe,
        "memorization": MemorizationProbe,
        "calibration": CalibrationProbe,
        "bias": BiasProbe,
    }


def _probe_defaults(
    name: str, budget: str, given: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """A built-in probe's settings for the budget, with the options the user gave (parsed as
    the probe parses them), as the estimators read them (None: not sized)."""
    cls = _probe_classes().get(name)
    if cls is None:
        return None
    from auditkit.options import parse_options

    opts = parse_options(cls, dict(given or {}), budget)
    if name == "adversarial":
        from auditkit.probes.adversarial.options import BUDGET_SWEEPS

        sweeps = BUDGET_SWEEPS[budget]
        return {
            "n_examples": opts.n_examples,
            "steps": opts.steps,
            "restarts": opts.restarts,
            "eot_samples": opts.eot_samples,
            "eval_samples": opts.eval_samples,
            "noise_draws": opts.noise_draws,
            "radii": _attacked_radii(opts.sweep, sweeps["sweep"]),
            "l2_radii": (
                _attacked_radii(opts.l2_sweep, sweeps["l2_sweep"]) if opts.norm == "Linf" else 0
            ),
            "autoattack": bool(opts.autoattack),
        }
    if name == "memorization":
        levels = tuple(sorted(set(opts.corruption_levels)))
        return {
            "train_size": int(opts.train_size),
            "max_epochs": int(opts.max_epochs),
            "time_limit_s": float(opts.time_limit_s),
            "corruption_levels": levels,
            "levels": len(levels) + bool(opts.random_pixels),
            "batch_size": int(opts.batch_size),
        }
    if name == "calibration":
        return {
            "num_samples": opts.num_samples,
            "max_examples": opts.max_examples,
            # Three generated sets, or the user's (at most ood_size examples).
            "ood_sets": 3 if opts.ood is None else 1,
            "ood_size": opts.ood_size,
        }
    return {"n_boot": opts.n_boot}


def _attacked_radii(given: Sequence[float] | None, multiples: Sequence[float]) -> int:
    """Radii the gradient attacks run at: the curve's nonzero radii and the headline (a
    radius of 0 changes no input and is not attacked). Explicit radii may not include the
    headline, which is then one more."""
    if given is not None:
        return len({float(v) for v in given if v > 0}) + 1
    return len({float(m) for m in multiples if m > 0} | {1.0})


def _adversarial_passes(s: Mapping[str, Any]) -> tuple[float, float, float]:
    """Per attacked example, at worst (a model no attack fools: PGD stops an example at its
    first fooling iterate, so a model that is easily fooled costs far less): gradient
    example-passes, the batched gradient passes they take per batch of examples (EOT's draws
    of one step share a pass), and forward passes (one batched pass each)."""
    steps = int(s["steps"])
    restarts = int(s["restarts"])
    radii = int(s["radii"]) + int(s["l2_radii"])
    eot = int(s["eot_samples"])
    batched = (
        radii * (1 + steps)  # FGSM and PGD at every radius, both norms
        + (restarts * steps if restarts > 1 else 0)  # the restarts at the headline eps
        + 2 * steps  # the doubled-steps check
        + 2 * steps  # the unbounded attack (and its retries on the few survivors)
        + 2  # input-gradient statistics
    )
    gradients = batched + eot * steps  # EOT-PGD: one pass of ``eot`` copies per step
    batched += steps * eot  # ... in batches ``eot`` times smaller
    if s.get("autoattack"):
        gradients += 4 * 100
        batched += 4 * 100
    forwards = radii * (int(s["noise_draws"]) + 1)
    return gradients, batched, forwards


#: Examples per attack batch the estimates assume (the CPU default; a GPU's are larger).
_ATTACK_BATCH = 256
#: Examples per batch of the calibration passes the estimates assume (they go through the
#: adapter's automatic batches).
_CALIBRATION_BATCH = 512


def _adversarial_seconds(s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
    # Only the examples the model gets right are attacked (``attacked_share``: the clean
    # accuracy, known before the probes run); the EOT verdicts judge every example.
    n = min(int(s["n_examples"]), n_data)
    gradients, gradient_batches, forwards = _adversarial_passes(s)
    attacked = n * float(s.get("attacked_share", 1.0))
    batches = math.ceil(attacked / _ATTACK_BATCH)
    judged = cost.forward_seconds(
        n * 2 * int(s["eval_samples"]), 2 * math.ceil(n * int(s["eval_samples"]) / _ATTACK_BATCH)
    )
    return ADVERSARIAL_OVERHEAD * (
        cost.gradient_seconds(attacked * gradients, batches * gradient_batches)
        + cost.forward_seconds(attacked * forwards, batches * forwards)
        + judged
    )


def _memorization_seconds(s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
    """Expected: each level trains for ``EXPECTED_EPOCH_SHARE`` of its epoch cap (fitting
    stops early at the target accuracy; random labels take a small constant factor longer
    than true ones). The clock limit covers the whole cap, see ``plan_work``."""
    epochs = max(1.0, EXPECTED_EPOCH_SHARE * int(s["max_epochs"]))
    return int(s["levels"]) * epochs * _epoch_seconds(s, n_data, cost)


def _trainable(n_data: int) -> int:
    """Examples memorization may train on: at most half the audit data (the rest is held out)."""
    return max(1, n_data // 2)


def _epoch_seconds(s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
    from auditkit.probes.memorization.measure import _EVAL_BATCH  # its accuracy passes

    n = min(int(s["train_size"]), _trainable(n_data))
    steps = math.ceil(n / int(s.get("batch_size", 32)))
    # Training steps (passes plus one optimizer step per batch), then the accuracy pass.
    passes = (
        cost.train_seconds(n, steps)
        + steps * cost.optimizer_step_s
        + cost.forward_seconds(n, math.ceil(n / _EVAL_BATCH))
    )
    return MEMORIZATION_OVERHEAD * passes


def _calibration_seconds(s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
    limit = s["max_examples"]
    n = n_data if limit is None else min(int(limit), n_data)
    sets = int(s.get("ood_sets", 0))
    passes = int(s["num_samples"]) * 2 + 2
    return cost.forward_seconds(
        passes * n + sets * int(s.get("ood_size", 0)), passes * math.ceil(n / _CALIBRATION_BATCH) + sets
    )


def _bias_seconds(s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
    # Vectorized bootstrap: ~30 ns per resampled row, a handful of slicings and cross-probe
    # frames; no model passes.
    return int(s["n_boot"]) * n_data * 8 * 30e-9


ESTIMATORS = {
    "adversarial": _adversarial_seconds,
    "memorization": _memorization_seconds,
    "calibration": _calibration_seconds,
    "bias": _bias_seconds,
}


def _ladder_fit(
    ladder: Sequence[int], seconds: Callable[[int], float], target: float, floor: int,
    default: int,
) -> int:
    """The largest size within [floor, default] (a ladder step, or ``default`` itself) whose
    estimate fits ``target``; when none does, the largest that costs at most a tenth more
    than the floor, so work that costs little — examples that share a latency-bound pass — is
    not given up for a small saving. Estimates are searched, not divided: a pass's latency makes
    them affine, not proportional, in the size."""
    floor = min(max(floor, 1), default)
    limit = max(target, 1.1 * seconds(floor))
    steps = {v for v in ladder if floor <= v <= default} | {floor, default}
    return max(v for v in steps if v == floor or seconds(v) <= limit)


def _shrink_adversarial(s: dict[str, Any], target: float, n_data: int, cost: Cost) -> list[str]:
    """In order, each step only while the estimate is above the target: fewer examples
    attacked (down to 50), one restart, 4 EOT draws, the curves at the headline radii only,
    PGD-10; then, for a model too costly even so, down to 20 examples attacked and 2 EOT
    draws (a small sample: the report's interval says how wide)."""
    reasons = []
    default_n = min(int(s["n_examples"]), n_data)
    default_eot = int(s["eot_samples"])

    def over() -> bool:
        return _adversarial_seconds(s, n_data, cost) > target

    def examples(floor: int) -> None:
        current = min(int(s["n_examples"]), n_data)
        if over() and current > floor:
            s["n_examples"] = _ladder_fit(
                LADDER_EXAMPLES,
                lambda v: _adversarial_seconds({**s, "n_examples": v}, n_data, cost),
                target, floor, current,
            )

    examples(MIN_ATTACKED)
    if over() and s["restarts"] > 1:
        reasons.append(f"PGD restarts {s['restarts']} → 1")
        s["restarts"] = 1
    if over() and s["eot_samples"] > 4:
        s["eot_samples"] = 4
    if over() and s["radii"] + s["l2_radii"] > (2 if s["l2_radii"] else 1):
        reasons.append(
            f"accuracy-vs-eps curves: {s['radii'] + s['l2_radii']} attacked radii → the "
            "headline radii only"
        )
        s["sweep"], s["radii"] = (0.0,), 1
        if s["l2_radii"]:
            s["l2_sweep"], s["l2_radii"] = (0.0,), 1
    if over() and s["steps"] > MIN_STEPS:
        reasons.append(f"PGD steps {s['steps']} → {MIN_STEPS}")
        s["steps"] = MIN_STEPS
    examples(MIN_ATTACKED_COSTLY)
    if over() and s["eot_samples"] > MIN_EOT_SAMPLES:
        s["eot_samples"] = MIN_EOT_SAMPLES
    if s["eot_samples"] < default_eot:
        reasons.append(f"EOT draws {default_eot} → {s['eot_samples']}")
    if min(int(s["n_examples"]), n_data) < default_n:
        reasons.insert(0, f"examples attacked {default_n} → {s['n_examples']}")
    return reasons


def _shrink_memorization(s: dict[str, Any], target: float, n_data: int, cost: Cost) -> list[str]:
    """Smaller subset first (down to ``MEMORIZATION_KEEP_LEVELS_TRAIN``), then only the two ends
    of the corruption scale (true and random labels), then the subset down to
    ``MEMORIZATION_KEEP_REFERENCE_TRAIN``, then random labels alone (the random-label test
    itself, without the true-label reference), then the subset down to its floor."""
    reasons = []
    default_n = min(int(s["train_size"]), _trainable(n_data))
    default_levels = tuple(s.get("corruption_levels") or ())

    def subset(floor: int) -> None:
        current = min(int(s["train_size"]), _trainable(n_data))
        if _memorization_seconds(s, n_data, cost) > target and current > floor:
            s["train_size"] = _ladder_fit(
                LADDER_TRAIN,
                lambda v: _memorization_seconds({**s, "train_size": v}, n_data, cost),
                target, floor, current,
            )

    subset(max(MEMORIZATION_KEEP_LEVELS_TRAIN, MIN_TRAIN))
    levels = tuple(s.get("corruption_levels") or ())
    if _memorization_seconds(s, n_data, cost) > target and len(levels) > 2:
        ends = (min(levels), max(levels))
        s["corruption_levels"] = ends
        s["levels"] = 2 + (int(s["levels"]) - len(levels))
        levels = ends
    subset(max(MEMORIZATION_KEEP_REFERENCE_TRAIN, MIN_TRAIN))
    if _memorization_seconds(s, n_data, cost) > target and len(levels) > 1 and max(levels) == 1:
        s["levels"] = 1 + (int(s["levels"]) - len(levels))
        s["corruption_levels"] = (1.0,)
    subset(MIN_TRAIN)
    levels = tuple(s.get("corruption_levels") or ())
    if levels != default_levels:
        why = (
            "random labels alone: the test itself, without the true-label reference"
            if len(levels) == 1
            else "true and random labels"
        )
        reasons.append(
            f"corruption levels {', '.join(f'{p:g}' for p in default_levels)} → "
            f"{', '.join(f'{p:g}' for p in levels)} ({why})"
        )
    if min(int(s["train_size"]), _trainable(n_data)) < default_n:
        reasons.insert(
            0,
            f"training subset {default_n} → {s['train_size']} examples (still the random-label "
            "test, on fewer examples)",
        )
    return reasons


def _shrink_calibration(s: dict[str, Any], target: float, n_data: int, cost: Cost) -> list[str]:
    """Fewer uncertainty samples (down to 4), then smaller generated OOD sets (down to 64)."""
    reasons = []
    if _calibration_seconds(s, n_data, cost) > target and s["num_samples"] > MIN_MC_SAMPLES:
        wanted = _ladder_fit(
            LADDER_SAMPLES,
            lambda v: _calibration_seconds({**s, "num_samples": v}, n_data, cost),
            target, MIN_MC_SAMPLES, int(s["num_samples"]),
        )
        if wanted < s["num_samples"]:
            reasons.append(f"MC-dropout / TTA samples {s['num_samples']} → {wanted}")
            s["num_samples"] = wanted
    if _calibration_seconds(s, n_data, cost) > target and s["ood_size"] > MIN_OOD:
        wanted = _ladder_fit(
            LADDER_OOD,
            lambda v: _calibration_seconds({**s, "ood_size": v}, n_data, cost),
            target, MIN_OOD, int(s["ood_size"]),
        )
        if wanted < s["ood_size"]:
            reasons.append(f"OOD examples per set {s['ood_size']} → {wanted}")
            s["ood_size"] = wanted
    return reasons


def _shrink_bias(s: dict[str, Any], target: float, n_data: int, cost: Cost) -> list[str]:
    if _bias_seconds(s, n_data, cost) > target and s["n_boot"] > MIN_BOOT:
        wanted = _ladder_fit(
            LADDER_BOOT, lambda v: _bias_seconds({"n_boot": v}, n_data, cost), target,
            MIN_BOOT, int(s["n_boot"]),
        )
        if wanted < s["n_boot"]:
            reason = f"bootstrap rounds {s['n_boot']} → {wanted}"
            s["n_boot"] = wanted
            return [reason]
    return []


SHRINKERS = {
    "adversarial": _shrink_adversarial,
    "memorization": _shrink_memorization,
    "calibration": _shrink_calibration,
    "bias": _shrink_bias,
}
#: Settings of the plan that become probe options (the rest only feed the estimates).
_OPTION_KEYS = {
    "adversarial": ("n_examples", "steps", "restarts", "eot_samples", "sweep", "l2_sweep"),
    "memorization": ("train_size", "corruption_levels", "time_limit_s"),
    "calibration": ("num_samples", "ood_size"),
    "bias": ("n_boot",),
}


@dataclass(frozen=True)
class WorkPlan:
    """Each probe's work, why, and what it is expected to cost."""

    budget: str
    limit_seconds: float | None
    cost: Cost
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)
    default_estimates: dict[str, float] = field(default_factory=dict)
    reasons: dict[str, list[str]] = field(default_factory=dict)
    unfit: list[str] = field(default_factory=list)
    small_model: str | None = None
    #: Set when the scan runs on fewer CPU threads than torch's default (``choose_threads``).
    threads: dict[str, Any] | None = None

    @property
    def reduced(self) -> bool:
        return any(self.reasons.values())

    def summary(self) -> str:
        """One sentence for the report and the console (two when the threads were cut)."""
        text = self._work_summary()
        if self.threads:
            t = self.threads
            text += (
                f" Ran on {t['threads']} of {t['default']} CPU threads: a pass took "
                f"{t['seconds'][str(t['default'])] * 1e3:.3g} ms on {t['default']} and "
                f"{t['seconds'][str(t['threads'])] * 1e3:.3g} ms on {t['threads']} (the cores "
                "are busy with other work)."
            )
        return text

    def _work_summary(self) -> str:
        total = sum(self.estimates.values())
        per = _per_example_text(self.cost)
        if self.limit_seconds is None:
            return f"Work not sized to the clock ({self.budget} budget); model cost {per}."
        limit = _duration(self.limit_seconds)
        if self.small_model is not None:
            return (
                f"The {self.budget} budget's full work is kept: {self.small_model} (estimated "
                f"{_duration(total)} of probe time at {per})."
            )
        if not self.reduced:
            return (
                f"The {self.budget} budget's full work fits its {limit} (estimated "
                f"{_duration(total)} of probe time at {per}); nothing was reduced."
            )
        changes = "; ".join(f"{p}: {', '.join(r)}" for p, r in self.reasons.items() if r)
        text = (
            f"Sized to the {self.budget} budget's {limit} at the measured {per}: {changes} "
            f"(estimated {_duration(total)}, counting every attack step; an attack stops "
            "at the first step that fools an example)."
        )
        if self.unfit:
            text += (
                f" Even at their smallest conclusive size {', '.join(self.unfit)} exceed "
                "their share of the limit."
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "limit_seconds": self.limit_seconds,
            "cost": self.cost.to_dict(),
            "options": {k: dict(v) for k, v in self.options.items()},
            "estimated_seconds": {k: round(v, 3) for k, v in self.estimates.items()},
            "default_estimated_seconds": {
                k: round(v, 3) for k, v in self.default_estimates.items()
            },
            "reasons": {k: list(v) for k, v in self.reasons.items()},
            "unfit": list(self.unfit),
            "small_model": self.small_model,
            "threads": dict(self.threads) if self.threads else None,
            "reduced": self.reduced,
            "summary": self.summary(),
        }


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def _per_example_text(cost: Cost) -> str:
    def ms(v: float) -> str:
        return f"{v * 1e3:.3g} ms"

    text = (
        f"{ms(cost.forward_s)} forward and {ms(cost.backward_s)} forward+backward per example "
        f"on {cost.device}"
    )
    if cost.backward_latency_s >= 1e-3:
        text += f", plus {ms(cost.backward_latency_s)} per batched gradient pass"
    return text


def plan_work(
    cost: Cost,
    *,
    budget: str,
    n_examples: int,
    probes: Sequence[str],
    max_minutes: float | None = None,
    user_options: Mapping[str, Mapping[str, Any]] | None = None,
    small_model: str | None = None,
    clean_accuracy: float = 1.0,
) -> WorkPlan:
    """Size each probe's work to the limit; a pure function of its arguments.

    Args:
        cost: the recorded per-example cost (``measure_cost`` or ``Cost.from_dict``).
        budget: ``fast`` | ``standard`` | ``thorough``.
        n_examples: audit examples.
        probes: names of the probes that will run (others are not sized).
        max_minutes: a limit on probe time replacing the budget's (None: the budget's).
        user_options: options the user set; they are used as given and never changed.
        clean_accuracy: share of the audit data the model gets right (only those are
            attacked).
        small_model: why the model counts as small (``small_model_reason``): then nothing is
            reduced whatever the timings say, so a load spike during the measurement can never
            change a small model's numbers.

    Example:
        >>> plan = plan_work(cost, budget="fast", n_examples=60, probes=["adversarial"])
        >>> plan.options["adversarial"]
    """
    limit = BUDGET_SECONDS[budget] if max_minutes is None else float(max_minutes) * 60.0
    user_options = user_options or {}
    settings: dict[str, dict[str, Any]] = {}
    for name in probes:
        given = {k: v for k, v in dict(user_options.get(name, {})).items() if v is not None}
        defaults = _probe_defaults(name, budget, given)
        if defaults is not None:
            settings[name] = defaults
    if "adversarial" in settings:
        settings["adversarial"]["attacked_share"] = min(1.0, max(float(clean_accuracy), 0.02))
    defaults_cost = {
        name: ESTIMATORS[name](s, n_examples, cost) for name, s in settings.items()
    }
    total = sum(defaults_cost.values())
    reasons: dict[str, list[str]] = {name: [] for name in settings}
    unfit: list[str] = []
    planned = {name: dict(s) for name, s in settings.items()}
    if limit is not None and total > limit and small_model is None:
        factor = limit / total
        for name, s in planned.items():
            target = defaults_cost[name] * factor
            fixed = set(dict(user_options.get(name, {})))
            trial = dict(s)
            changes = SHRINKERS[name](trial, target, n_examples, cost)
            # A setting the user chose is theirs: keep it, and drop the reason that changed it.
            kept = []
            for key in fixed:
                for k in (key, _DERIVED.get(key)):
                    if k in s:
                        trial[k] = s[k]
                    elif k is not None:
                        trial.pop(k, None)
            for reason in changes:
                if not any(reason.startswith(_label(name, k)) for k in fixed):
                    kept.append(reason)
            planned[name] = trial
            reasons[name] = kept
    estimates = {name: ESTIMATORS[name](s, n_examples, cost) for name, s in planned.items()}
    if limit is not None and total > limit and sum(estimates.values()) > 1.1 * limit:
        # Named: the probes still above their share at their smallest conclusive size.
        factor = limit / total
        unfit = [
            n
            for n in planned
            if estimates[n] > 1.1 * defaults_cost[n] * factor
            and estimates[n] - defaults_cost[n] * factor > 1.0
        ]
    if (
        small_model is None
        and "memorization" in planned
        and not dict(user_options.get("memorization", {})).get("time_limit_s")
    ):
        # The clock is a safety net above what the whole epoch cap takes, never the
        # experiment: a level that needs every epoch still finishes.
        s = planned["memorization"]
        cap = int(s["max_epochs"]) * _epoch_seconds(s, n_examples, cost)
        s["time_limit_s"] = float(max(s["time_limit_s"], math.ceil(TIME_LIMIT_SAFETY * cap)))
    options = {}
    for name, s in planned.items():
        changed = {
            k: s[k]
            for k in _OPTION_KEYS[name]
            if k in s and s[k] != settings[name].get(k) and k not in dict(user_options.get(name, {}))
        }
        if changed:
            options[name] = changed
    return WorkPlan(
        small_model=small_model,
        budget=budget,
        limit_seconds=limit,
        cost=cost,
        options=options,
        estimates=estimates,
        default_estimates=defaults_cost,
        reasons={k: v for k, v in reasons.items() if v},
        unfit=unfit,
    )


#: Estimator settings that follow from an option: kept with it when the user set it.
_DERIVED = {
    "corruption_levels": "levels",
    "sweep": "radii",
    "l2_sweep": "l2_radii",
}


def _label(name: str, key: str) -> str:
    return {
        "n_examples": "examples attacked",
        "restarts": "PGD restarts",
        "eot_samples": "EOT draws",
        "steps": "PGD steps",
        "train_size": "training subset",
        "corruption_levels": "corruption levels",
        "num_samples": "MC-dropout",
        "sweep": "accuracy-vs-eps curves",
        "l2_sweep": "accuracy-vs-eps curves",
        "ood_size": "OOD examples",
        "n_boot": "bootstrap rounds",
    }.get(key, key)


COST_FILE = "cost.json"
#: Models at most this large (parameters, and activation bytes per example) are small: their
#: budgets' work takes seconds to a few minutes, and it is never resized.
SMALL_MODEL_PARAMETERS = 1_000_000
SMALL_MODEL_ACTIVATION_BYTES = 1 << 20


def small_model_reason(adapter) -> str | None:
    """Why the model is small (deterministic: parameter count and activation bytes counted on
    the diagnostic pass, never a timing), or None."""
    count = getattr(adapter, "_activation_bytes", None)
    module = getattr(adapter, "model", None)
    if not callable(count) or not isinstance(module, nn.Module):
        return None
    try:
        parameters = sum(p.numel() for p in module.parameters())
        activations = int(count())
    except Exception:
        return None
    if 0 < activations <= SMALL_MODEL_ACTIVATION_BYTES and parameters <= SMALL_MODEL_PARAMETERS:
        return (
            f"a small model ({parameters:,} parameters, {activations / 1024:.0f} KiB of "
            "activations per example) is never resized"
        )
    return None


#: Fewer threads are used only when they are at least this much faster.
_THREADS_GAIN = 0.8


def choose_threads(adapter, x: torch.Tensor, *, small: bool) -> dict[str, Any] | None:
    """On CPU cores busy with other work, run on one thread when that is faster.

    torch's threads wait for each other at every operation; when another job holds the cores
    each wait lasts a scheduler slice, and a pass can take a hundred times longer than on one
    thread (a CIFAR-shaped ResNet-18 scan beside a 2-thread training job on 2 cores: 226 s on
    2 threads, 23 s on 1). A pass is timed both ways (fastest of 2); if one thread is faster by
    a fifth, it is kept for the scan (``torch.set_num_threads``; the caller restores it) and
    the times are returned for the record. Small models are never touched (their numbers stay
    bit-identical whatever the machine does: ``small``, from ``small_model_reason``); nor is a
    GPU, or a process already on 1 thread.
    """
    default = torch.get_num_threads()
    if adapter.device.type != "cpu" or default <= 1 or small:
        return None
    from auditkit.context import diagnostic_sample_size

    sample = x[: min(16, diagnostic_sample_size(tuple(x.shape[1:])))].to(adapter.device)
    seconds = {}
    try:
        with torch.inference_mode():
            for threads in (default, 1, default):
                torch.set_num_threads(threads)
                took = _best_seconds(lambda: adapter.logits(sample), adapter.device, 2)
                seconds[threads] = min(took, seconds.get(threads, float("inf")))
    finally:
        torch.set_num_threads(default)
    if seconds[1] >= _THREADS_GAIN * seconds[default]:
        return None
    torch.set_num_threads(1)
    return {
        "threads": 1,
        "default": default,
        "seconds": {str(k): round(v, 6) for k, v in seconds.items()},
    }


def size_probes(
    selected: list,
    context,
    *,
    budget: str,
    options: Mapping[str, Mapping[str, Any]] | None,
    checkpoint=None,
    reuse: bool = False,
    max_minutes: float | None = None,
    cost: Cost | Mapping[str, Any] | None = None,
    given: Sequence[Any] = (),
) -> tuple[list, WorkPlan | None]:
    """The pipeline's hook: measure (or reuse) the cost, plan, and rebuild the probes to plan.

    Probes the caller passed as instances are used as given (their options are theirs). May
    lower torch's CPU threads for the scan (``choose_threads``): the caller restores them.
    Returns the probes to run and the plan (None when the cost could not be measured).
    """
    import json
    from pathlib import Path

    recorded: Cost | None = None
    if isinstance(cost, Cost):
        recorded = cost
    elif isinstance(cost, Mapping):
        recorded = Cost.from_dict(cost)
    path = Path(checkpoint) / COST_FILE if checkpoint is not None else None
    if recorded is None and reuse and path is not None and path.is_file():
        try:
            recorded = Cost.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            recorded = None  # a damaged record is measured again
    from auditkit import distributed

    small = small_model_reason(context.adapter)
    threads = (
        choose_threads(context.adapter, context.data.x, small=small is not None)
        if distributed.is_main()
        else None
    )
    if distributed.state().active:
        threads = distributed.broadcast_object(threads)
        if threads:
            torch.set_num_threads(int(threads["threads"]))
    if recorded is None and distributed.is_main():
        try:
            recorded = measure_cost(context.adapter, context.data.x[:_MAX_MEASURE_BATCH])
        except Exception:  # sizing must never take the audit down: run the budget as declared
            recorded = None
    if distributed.state().active:
        # Rank 0's cost for everyone: every rank must plan exactly the same work.
        shared = distributed.broadcast_object(recorded.to_dict() if recorded else None)
        recorded = Cost.from_dict(shared) if shared is not None else None
    if recorded is None:
        return selected, None
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded.to_dict()), encoding="utf-8")
    plan = plan_work(
        recorded,
        budget=budget,
        n_examples=len(context.data),
        probes=[p.name for p in selected if not any(p is g for g in given)],
        max_minutes=max_minutes,
        user_options=options,
        small_model=small,
        clean_accuracy=float(context.clean_correct.float().mean()) if len(context.data) else 1.0,
    )
    if threads:
        import dataclasses

        plan = dataclasses.replace(plan, threads=threads)
    sized = []
    for probe in selected:
        extra = plan.options.get(probe.name)
        if extra and not any(probe is g for g in given):
            user = dict((options or {}).get(probe.name, {}))
            probe = type(probe)(budget=budget, **{**extra, **user})
        sized.append(probe)
    return sized, plan
