"""Budgets that fit the clock: measure what the model costs, then size each probe's work.

Before the probes run, the pipeline measures the model's forward and forward+backward seconds
per example on the audit device (a few small batches, the fastest of three timings, under the machine's current load), and
plans each probe's work — examples attacked, PGD steps and restarts, EOT draws, the memorization
subset, MC samples, bootstrap rounds — so that ``fast`` takes about a minute of probe time and
``standard`` about ten (``max_minutes`` sets another limit).

Decisions:
- Each probe declares how its work is sized (``Probe.sizing``, a ``ProbeSizing``: built-in
  probes in their own packages, plugins the same way). A probe's work is estimated from its
  settings and the measured cost (gradient passes × backward seconds + forward passes ×
  forward seconds). When the estimate of the budget's
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

import dataclasses
import statistics
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

#: Probe-time limits per budget (seconds). ``thorough`` promises depth, not speed.
BUDGET_SECONDS: dict[str, float | None] = {"fast": 60.0, "standard": 600.0, "thorough": None}
#: A probe whose budget's work costs less than this share of the limit keeps all of it, and
#: larger ones are never asked to fit in less.
NEGLIGIBLE_SHARE = 0.02
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
    #: What probes measured of their own work before planning (``ProbeSizing.pilot``), by
    #: probe: e.g. the share of a sample one FGSM step fools. Recorded with the cost, so a
    #: resumed or ``--cost-from`` scan plans from the same values.
    pilots: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: The CPU memory layout the scan ran in, when it was measured (``choose_layout``):
    #: ``{"channels_last": bool, "seconds": {layout: seconds}}``. Recorded with the cost, so a
    #: resumed or ``--cost-from`` scan runs in the same layout.
    layout: Mapping[str, Any] | None = None

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
            "pilots": {k: dict(v) for k, v in self.pilots.items()},
            "layout": _layout_record(self.layout),
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
            pilots={
                str(k): {str(m): float(x) for m, x in dict(v).items()}
                for k, v in dict(d.get("pilots") or {}).items()
            },
            layout=_layout_record(d.get("layout")),
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


def _timings(fn, device: torch.device, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - started)
    return times


def _best_seconds(fn, device: torch.device, repeats: int) -> float:
    """The fastest of ``repeats`` timings: a load spike only ever slows a pass down, while a
    machine that stays busy slows every timing (and the plan adapts to that)."""
    return min(_timings(fn, device, repeats))


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

        def training_step() -> None:
            # Gradients of every parameter, as one training step computes them (not stored:
            # the audited model is never modified).
            with torch.enable_grad():
                logits = module(sample.detach()).float()
                loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
                torch.autograd.grad(loss, params)

        try:
            # Warm-up: the first backward allocates autograd's buffers and picks kernels.
            _input_gradient(module, two)
            backward, backward_latency = _split_latency(
                timed(lambda: _input_gradient(module, sample)),
                timed(lambda: _input_gradient(module, two)),
                size,
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


def _input_gradient(module: nn.Module, batch: torch.Tensor) -> None:
    """One input-gradient pass, the attacks' unit of work: the cross-entropy against the
    model's own predictions, differentiated with respect to the input."""
    z = batch.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        logits = module(z).float()
        loss = nn.functional.cross_entropy(logits, logits.argmax(-1))
        torch.autograd.grad(loss, z)


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


# --- the probes' side: what their work costs, and how it shrinks ---------------------------
class ProbeSizing:
    """How a probe's work is sized to the clock: set an instance as the probe class's
    ``sizing`` attribute (built-in probes and plugins alike; a probe without one runs its
    budget's work as declared, and is listed under ``not_sized`` in the plan).

    The planner asks ``settings`` for the estimator's inputs (from the probe's options for the
    budget, the user's included), estimates them with ``seconds``, and, when the whole scan's
    estimate exceeds the limit, calls ``shrink`` with the probe's share of the limit (its
    estimate times limit / total). Settings named in ``option_keys`` that the plan changed are
    handed to the probe as options; an option the user set is restored after shrinking (with
    the settings ``derived`` from it), and the reasons that start with its ``labels`` entry are
    dropped. Estimates and shrinkers must be pure functions of their arguments: the plan is
    recorded, and ``--resume`` and diffs rely on the same cost giving the same plan.

    Example (a probe that makes ``draws`` noisy passes over at most ``n_examples``)::

        class NoiseSizing(ProbeSizing):
            option_keys = ("draws",)
            labels = {"draws": "noisy copies"}

            def settings(self, opts, *, budget, clean_accuracy):
                return {"draws": opts.draws, "n_examples": opts.n_examples}

            def seconds(self, s, n_data, cost):
                n = min(s["n_examples"], n_data)
                return cost.forward_seconds(s["draws"] * n, s["draws"])

            def shrink(self, s, target, n_data, cost, fixed):
                if self.seconds(s, n_data, cost) > target and s["draws"] > 1 \
                        and "draws" not in fixed:
                    reason = f"noisy copies {s['draws']} → 1"
                    s["draws"] = 1
                    return [reason]
                return []
    """

    #: Settings that are the probe's options (changed ones are passed to the probe).
    option_keys: tuple[str, ...] = ()
    #: Option → the start of the reason that changes it (to drop it when the user set it).
    labels: Mapping[str, str] = {}
    #: Option → an estimator setting that follows from it (kept with it when the user set it).
    derived: Mapping[str, str] = {}
    #: Metric → the options it exists only with. A policy that gates the metric sets them, as
    #: if the user had (``options_for_gates``), so the plan keeps them (the adversarial probe's
    #: L2 metrics: the L2 attacks). A metric a plan may still drop says why when unmeasured.
    gated: Mapping[str, Mapping[str, Any]] = {}

    def settings(self, opts: Any, *, budget: str, clean_accuracy: float) -> dict[str, Any]:
        """The estimator's inputs from the parsed options (default: the ``option_keys``).
        ``clean_accuracy`` is the share of the audit data the model gets right."""
        return {k: getattr(opts, k) for k in self.option_keys}

    def pilot(self, probe: Any, context: Any) -> dict[str, float]:
        """Optional: a few passes that tell how this model behaves under the probe's work (the
        adversarial probe: the share of a sample one FGSM step fools), measured once before
        planning, recorded with the cost and merged into ``settings``. Deterministic, and
        cheap: a pass or two over the diagnostic sample."""
        return {}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        """Estimated seconds of the work ``s`` on ``n_data`` audit examples at ``cost``."""
        raise NotImplementedError

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        """Give up work in ``s`` (in place), in a fixed order and down to floors that keep the
        experiment conclusive, while the estimate exceeds ``target``; one reason per changed
        setting ("EOT draws 8 → 2"). Leave the options in ``fixed`` (the user set them) as
        they are and give up other work instead."""
        return []

    def fit_to_ladder(
        self, s: dict[str, Any], key: str, ladder: Sequence[int], floor: int, *, current: int,
        target: float, n_data: int, cost: Cost, fixed: Collection[str],
    ) -> bool:
        """One step of a shrinker: unless the user set ``key`` or ``s`` already fits ``target``
        or ``current`` (what ``s[key]`` amounts to on this data) is at ``floor``, set ``s[key]``
        to ``ladder_fit``'s size between ``floor`` and ``current``. Returns whether it did."""
        if key in fixed or current <= floor or self.seconds(s, n_data, cost) <= target:
            return False
        s[key] = ladder_fit(
            ladder, lambda v: self.seconds({**s, key: v}, n_data, cost), target, floor, current
        )
        return True

    def finish(
        self, s: dict[str, Any], n_data: int, cost: Cost, fixed: Collection[str]
    ) -> None:
        """Settings that follow from the final plan (``fixed``: the options the user set), such
        as a safety limit derived from the planned work. Runs after the estimates, so what it
        changes is not estimated; runs for every model that is not small, with or without a
        time limit (``thorough``)."""


def ladder_fit(
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


def sizing_of(probe: Any) -> ProbeSizing | None:
    """A probe's (class's or instance's) ``sizing``, or None."""
    sizing = getattr(probe, "sizing", None)
    return sizing if isinstance(sizing, ProbeSizing) else None


def options_for_gates(
    targets: Sequence[str], options: Mapping[str, Mapping[str, Any]] | None
) -> dict[str, dict[str, Any]]:
    """``options`` plus the options the gated metrics ``targets`` ("probe.metric") exist only
    with, as each probe's sizing declares them in ``gated``; a value already set wins."""
    from auditkit.registry import discover_probes

    merged = {p: dict(o) for p, o in (options or {}).items()}
    registered = discover_probes()
    for target in targets:
        probe, _, metric = str(target).partition(".")
        sizing = sizing_of(_probe_class(probe, registered)) if probe in registered else None
        try:
            needed = dict(dict(getattr(sizing, "gated", {}) or {}).get(metric) or {})
        except (TypeError, ValueError):  # a plugin's malformed declaration: nothing is kept
            continue
        for key, value in needed.items():
            merged.setdefault(probe, {}).setdefault(key, value)
    return merged


def _probe_class(probe: str | type | Any, registered: Mapping[str, Any]) -> type | None:
    """A probe class from a registered name, a class or an instance (None: unknown name)."""
    if isinstance(probe, str):
        entry = registered.get(probe)
        return entry.obj if entry is not None and entry.loaded else None
    return probe if isinstance(probe, type) else type(probe)


def _settings_of(
    probe: Any, cls: type, sizing: ProbeSizing, budget: str, given: Mapping[str, Any],
    clean_accuracy: float,
) -> dict[str, Any]:
    """The estimator's inputs: an instance's own options, else the probe's options for the
    budget with the user's (parsed as the probe parses them)."""
    opts = getattr(probe, "opts", None) if not isinstance(probe, (str, type)) else None
    if opts is None and getattr(cls, "Options", None) is not None:
        from auditkit.options import parse_options

        opts = parse_options(cls, dict(given), budget)
    if opts is None:
        raise TypeError(f"probe {getattr(cls, 'name', cls)!r} declares a sizing but no Options")
    return sizing.settings(opts, budget=budget, clean_accuracy=clean_accuracy)


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
    #: Probes that declare no ``sizing``: they run their budget's work as declared.
    not_sized: list[str] = field(default_factory=list)
    #: Probes whose sizing raised (``"Type: message"``): they run their budget's work.
    errors: dict[str, str] = field(default_factory=dict)
    #: Set when the scan runs on fewer CPU threads than torch's default (``choose_threads``).
    threads: dict[str, Any] | None = None
    #: Whether a CPU scan ran the network in channels_last (``choose_layout``; None on a GPU).
    channels_last: bool | None = None

    @property
    def reduced(self) -> bool:
        return any(self.reasons.values())

    @property
    def noteworthy(self) -> bool:
        """Worth saying before the probes run and in summary.md: work was reduced, the threads
        or the memory layout switched, a sizing failed, or the work stays above the limit."""
        over = self.limit_seconds is not None and self.small_model is None and (
            sum(self.estimates.values()) > 1.1 * self.limit_seconds
        )
        return bool(self.reduced or self.threads or self.errors or over or self.layout_summary())

    def summary(self) -> str:
        """One sentence for the report and the console, and one each when the scan switched its
        CPU memory layout or threads."""
        text = self._work_summary()
        for extra in (self.layout_summary(), self.threads_summary()):
            if extra:
                text += " " + extra
        return text

    def layout_summary(self) -> str:
        """The sentence on the CPU memory layout the scan switched to ("" when it kept it)."""
        layout = self.cost.layout
        if not layout or not layout["channels_last"]:
            return ""
        if not self.channels_last:
            return (
                "The recorded cost's channels_last layout does not apply to this model (not a "
                "plain conv net, a small one, or already in its own layout): it ran in its own."
            )
        seconds = layout["seconds"]
        return (
            "Ran in the channels_last memory layout: a forward and gradient pass took "
            f"{seconds['channels_last'] * 1e3:.3g} ms in it and {seconds['default'] * 1e3:.3g} "
            "ms in the default layout."
        )

    def threads_summary(self) -> str:
        """The sentence on the CPU threads the scan switched to ("" when it kept them)."""
        t = self.threads
        if not t:
            return ""
        since = f" from the {t['from_probe']} probe on" if t.get("from_probe") else ""
        return (
            f"Ran on {t['threads']} of {t['default']} CPU threads{since}: a pass took "
            f"{t['seconds'][str(t['default'])] * 1e3:.3g} ms on {t['default']} and "
            f"{t['seconds'][str(t['threads'])] * 1e3:.3g} ms on {t['threads']} (more threads "
            f"are kept only when {_THREADS_WORTH:g}× faster: on cores busy with other work they "
            "stall)."
        )

    def _work_summary(self) -> str:
        text = self._plan_summary()
        if self.errors:
            text += (
                f" Sizing failed for {', '.join(sorted(self.errors))} ("
                + "; ".join(self.errors[n] for n in sorted(self.errors))
                + "): run with their budget's work."
            )
        return text

    def _plan_summary(self) -> str:
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
        if not self.reduced and total > 1.1 * self.limit_seconds:
            return (
                f"The {self.budget} budget's work is kept although it exceeds its {limit} "
                f"(estimated {_duration(total)} of probe time at {per}): the options you set "
                "are never changed, and nothing else could be reduced."
            )
        if not self.reduced:
            return (
                f"The {self.budget} budget's full work fits its {limit} (estimated "
                f"{_duration(total)} of probe time at {per}); nothing was reduced."
            )
        changes = "; ".join(f"{p}: {', '.join(r)}" for p, r in self.reasons.items() if r)
        text = (
            f"Sized to the {self.budget} budget's {limit} at the measured {per}: {changes} "
            f"(estimated {_duration(total)}, {self._attack_basis()})."
        )
        if self.unfit:
            text += (
                f" Even at their smallest conclusive size {', '.join(self.unfit)} exceed "
                "their share of the limit."
                if len(self.unfit) > 1
                else f" Even at its smallest conclusive size {self.unfit[0]} exceeds its share "
                "of the limit."
            )
        return text

    def _attack_basis(self) -> str:
        fooled = self.cost.pilots.get("adversarial", {}).get("fgsm_fooled")
        if fooled is None:
            return (
                "counting every attack step; an attack stops at the first step that fools an "
                "example"
            )
        return (
            f"one FGSM step fooled {fooled:.0%} of a sample, so attacks on those are expected "
            "to stop early; every other example is counted at every step"
        )

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
            "not_sized": list(self.not_sized),
            "errors": dict(self.errors),
            "small_model": self.small_model,
            "threads": dict(self.threads) if self.threads else None,
            "channels_last": self.channels_last,
            "reduced": self.reduced,
            "noteworthy": self.noteworthy,
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
    probes: Sequence[str | type | Any],
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
        probes: the probes that will run: registered names, probe classes or instances. Those
            that declare a ``sizing`` (``ProbeSizing``) are sized; the others are listed in
            ``not_sized``.
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
    registered: Mapping[str, Any] = {}
    if any(isinstance(p, str) for p in probes):
        from auditkit.registry import discover_probes

        registered = discover_probes()
    sizings: dict[str, ProbeSizing] = {}
    settings: dict[str, dict[str, Any]] = {}
    defaults_cost: dict[str, float] = {}
    not_sized: list[str] = []
    errors: dict[str, str] = {}
    for probe in probes:
        cls = _probe_class(probe, registered)
        name = probe if isinstance(probe, str) else str(
            getattr(cls, "name", "") or getattr(cls, "__name__", cls)
        )
        sizing = sizing_of(cls)
        if cls is None or sizing is None:
            not_sized.append(name)
            continue
        given = {k: v for k, v in dict(user_options.get(name, {})).items() if v is not None}
        try:
            # A plugin's sizing code must never take the audit down: a probe whose sizing
            # fails runs its budget's work, and the plan says why.
            defaults = _settings_of(probe, cls, sizing, budget, given, clean_accuracy)
            defaults.update(cost.pilots.get(name, {}))
            seconds = float(sizing.seconds(defaults, n_examples, cost))
        except Exception as exc:
            errors[name] = f"{type(exc).__name__}: {exc}"
            not_sized.append(name)
            continue
        sizings[name], settings[name], defaults_cost[name] = sizing, defaults, seconds
    total = sum(defaults_cost.values())
    reasons: dict[str, list[str]] = {name: [] for name in settings}
    unfit: list[str] = []
    planned = {name: dict(s) for name, s in settings.items()}
    fixed = {name: frozenset(dict(user_options.get(name, {}))) for name in settings}
    if limit is not None and total > limit and small_model is None:
        factor = limit / total
        for name, s in planned.items():
            sizing = sizings[name]
            trial = dict(s)
            try:
                # Work that costs under NEGLIGIBLE_SHARE of the limit is never given up: a
                # proportional share would cut 100 bootstrap rounds to 50 to save 6 ms.
                target = max(
                    defaults_cost[name] * factor,
                    min(defaults_cost[name], NEGLIGIBLE_SHARE * limit),
                )
                changes = sizing.shrink(trial, target, n_examples, cost, fixed[name])
                # A setting the user chose is theirs: keep it (should a shrinker have changed
                # it), and drop the reason that changed it.
                for key in fixed[name]:
                    for k in (key, sizing.derived.get(key)):
                        if k in s:
                            trial[k] = s[k]
                        elif k is not None:
                            trial.pop(k, None)
                sizing.seconds(trial, n_examples, cost)  # the plan must be estimable
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
                trial, changes = dict(s), []
            planned[name] = trial
            reasons[name] = [
                reason
                for reason in changes
                if not any(reason.startswith(sizing.labels.get(k, k)) for k in fixed[name])
            ]
    estimates = {
        name: float(sizings[name].seconds(s, n_examples, cost)) for name, s in planned.items()
    }
    if limit is not None and total > limit and sum(estimates.values()) > 1.1 * limit:
        # Named: the probes still above their share at their smallest conclusive size.
        factor = limit / total
        unfit = [
            n
            for n in planned
            if estimates[n] > 1.1 * defaults_cost[n] * factor
            and estimates[n] - defaults_cost[n] * factor > 1.0
        ]
    if small_model is None:
        for name, s in planned.items():
            done = dict(s)
            try:
                sizings[name].finish(done, n_examples, cost, fixed[name])
                planned[name] = done
            except Exception as exc:
                errors[name] = f"{type(exc).__name__}: {exc}"
    options = {}
    for name, s in planned.items():
        changed = {
            k: s[k]
            for k in sizings[name].option_keys
            if k in s and s[k] != settings[name].get(k) and k not in fixed[name]
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
        not_sized=not_sized,
        errors=errors,
    )


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


#: The default threads are kept only when a pass on them is at least this much faster than
#: on one: beside another job they gain little and sometimes stall for seconds.
_THREADS_WORTH = 1.25
#: Passes of one thread check (``choose_threads``: 4 on the default threads, 2 on one).
_RECHECK_PASSES = 6
#: A model whose forward pass takes this long per example is checked on this many examples.
_THREADS_COSTLY_SECONDS = 0.01
_THREADS_COSTLY_EXAMPLES = 4


def recheck_threads(adapter, x: torch.Tensor, plan: WorkPlan | None, probe: str) -> WorkPlan | None:
    """Before a later probe: cores that turned busy (or whose other job was quiet when the scan
    began) are noticed too. Only ever lowers the threads, once, and records from which probe;
    never for small models, a GPU, torchrun ranks or a scan without a plan."""
    from auditkit import distributed

    if (plan is None or plan.small_model or plan.threads or adapter.device.type != "cpu"
            or distributed.state().active):
        return plan
    # The check is 6 passes of 2 examples: worth it only before a probe that costs ten times
    # that (not before the bias probe, which reads the clean pass, nor a plugin's few passes).
    check = _RECHECK_PASSES * plan.cost.forward_seconds(2, 1)
    estimate = plan.estimates.get(probe)  # none for a probe the caller passed in
    if estimate is not None and estimate < 10 * check:
        return plan
    found = choose_threads(adapter, x, small=False, size=2)
    return dataclasses.replace(plan, threads={**found, "from_probe": probe}) if found else plan


def choose_threads(
    adapter, x: torch.Tensor, *, small: bool, size: int = 16
) -> dict[str, Any] | None:
    """On CPU cores busy with other work, run on one thread unless more are clearly faster.

    torch's threads wait for each other at every operation; when another job holds the cores
    each wait lasts a scheduler slice, and a pass can take a hundred times longer than on one
    thread (a CIFAR-shaped ResNet-18 scan beside a 2-thread training job on 2 cores: 226 s on
    2 threads, 23 s on 1). A larger model's passes beside such a job take about as long on 2
    threads as on 1, except when they stall (a ResNet-50 at 224 px: 0.4 s, or 2.7 s). A pass
    is timed both ways (the mean of 2 timings on one thread, then of up to 4 on the default
    threads, stopping once the answer is certain); unless the
    default threads are ``_THREADS_WORTH`` times faster (an idle 2-core VM: a ResNet-18 at
    32 px 1.6×, a ResNet-50 at 224 px 2.5×; a VGG-11 at 32 px 1.1× loses a tenth on one
    thread), one thread is kept for the scan (``torch.set_num_threads``; the caller restores
    it) and the times are returned for the record. Small models are never touched (their numbers stay
    bit-identical whatever the machine does: ``small``, from ``small_model_reason``); nor is a
    GPU, or a process already on 1 thread.
    """
    default = torch.get_num_threads()
    if adapter.device.type != "cpu" or default <= 1 or small:
        return None
    from auditkit.context import diagnostic_sample_size

    sample = x[: min(size, diagnostic_sample_size(tuple(x.shape[1:])))].to(adapter.device)
    times: dict[int, list[float]] = {default: [], 1: []}
    try:
        with torch.inference_mode():
            if len(sample) > _THREADS_COSTLY_EXAMPLES:
                # A costly pass (a ResNet-50 at 224×224) is timed on a few examples: waits at
                # every operation show as well on 4 as on 16, and the check costs a quarter.
                (two,) = _timings(lambda: adapter.logits(sample[:2]), adapter.device, 1)
                if two > 2 * _THREADS_COSTLY_SECONDS:
                    sample = sample[:_THREADS_COSTLY_EXAMPLES]
            torch.set_num_threads(1)
            times[1] = _timings(lambda: adapter.logits(sample), adapter.device, 2)
            torch.set_num_threads(default)
            # Up to 4 passes on the default threads, fewer once their mean can no longer be
            # _THREADS_WORTH times faster than one thread's (a stalled pass decides at once:
            # the same choice as after all 4, without waiting through more stalls).
            most = 4 * statistics.fmean(times[1]) / _THREADS_WORTH
            while len(times[default]) < 4 and sum(times[default]) <= most:
                times[default] += _timings(lambda: adapter.logits(sample), adapter.device, 1)
    finally:
        torch.set_num_threads(default)
    # Means, not the fastest nor the median: on shared cores a pass on several threads is fast
    # whenever the other job happens to leave them all free at once, and otherwise stalls, and
    # the scan pays the average pass. A ResNet-18 kept on 2 threads by one lucky timing took
    # 95 s of a busy scan, 20 s on 1 thread; a ResNet-50 at 224 px beside a 2-thread job ran
    # 4-example passes on 2 threads in 0.4 s or in 2.7 s, on 1 thread in 0.4 s every time, and
    # the median kept 2 threads through the cost measurement (80 s of a 200 s scan).
    seconds = {k: statistics.fmean(v) for k, v in times.items()}
    if seconds[1] >= _THREADS_WORTH * seconds[default]:
        return None
    torch.set_num_threads(1)
    return {
        "threads": 1,
        "default": default,
        "seconds": {str(k): round(v, 6) for k, v in seconds.items()},
    }


#: channels_last is kept on a CPU only when a pass in it is at least this much faster.
_LAYOUT_GAIN = 0.9
_LAYOUT_EXAMPLES = 4
_LAYOUT_REPEATS = 3


def _layout_record(value: Any) -> dict[str, Any] | None:
    if not value:
        return None
    return {
        "channels_last": bool(value["channels_last"]),
        "seconds": {str(k): float(v) for k, v in dict(value.get("seconds") or {}).items()},
    }


def layout_switchable(adapter, *, small: bool) -> bool:
    """Whether a CPU scan may run the adapter's network in another memory layout: a plain conv
    net on image inputs (``layout_can_change``), not a small model (its numbers stay
    bit-identical), whose convolution weights are in the default layout (a model the user put in
    channels_last keeps it)."""
    from auditkit.adapters.torch_adapter import layout_can_change

    model = getattr(adapter, "model", None)
    if (adapter.device.type != "cpu" or small
            or not callable(getattr(adapter, "use_channels_last", None))
            or getattr(adapter, "channels_last", True)
            or not isinstance(model, nn.Module)
            or not layout_can_change(model, tuple(adapter.input_shape))):
        return False
    return all(m.weight.is_contiguous() for m in model.modules() if isinstance(m, nn.Conv2d))


def choose_layout(adapter, x: torch.Tensor, *, small: bool) -> dict[str, Any] | None:
    """On a CPU, run a conv net in channels_last when a pass is faster in it.

    oneDNN's NHWC convolutions pay on some shapes and not on others: on this project's 2-core
    VM a ResNet-50 at 224×224 ran its forward pass 1.6–2.3× and its gradient pass 1.1–1.3×
    faster, a ResNet-18 at 32×32 at 0.93–1.01×, a ResNet-50 at 64–128 px at 0.87–0.96×. So it
    is measured, not ruled: a forward and an input-gradient pass on a few examples, in both
    layouts, interleaved, the median of 3 each; channels_last is kept when it takes at most
    ``_LAYOUT_GAIN`` of the default's time, and only when both layouts give the same answers
    (the same predicted classes, logits equal up to float round-off: a model whose code reads
    memory directly could differ without raising). A model that fails in channels_last, however
    it fails, keeps its layout. The layout changes no weight, only the last bits of some
    outputs (as a different thread count may), so small models are never touched
    (``layout_switchable``) and the choice is recorded with the cost: a resumed or
    ``--cost-from`` scan applies it instead of measuring (``apply_layout``). A GPU already runs
    conv nets in channels_last. Returns the record (``{"channels_last", "seconds"}``), or None
    when nothing was measured.
    """
    if not layout_switchable(adapter, small=small):
        return None
    switch = adapter.use_channels_last
    sample = x[: min(len(x), _LAYOUT_EXAMPLES)].to(adapter.device)
    gradients = bool(getattr(adapter, "supports_gradients", False))

    def passes() -> torch.Tensor:
        with torch.inference_mode():
            out = adapter.logits(sample).float()
        if gradients:
            _input_gradient(adapter.as_module(), sample)
        return out

    chosen = False
    times: dict[bool, list[float]] = {False: [], True: []}
    try:
        # Warm-up (each layout picks its kernels on first use), and the answers compared.
        outputs = {}
        for on in (False, True):
            switch(on)
            outputs[on] = passes()
        scale = max(1.0, float(outputs[False].abs().max()))
        if not (
            torch.equal(outputs[False].argmax(-1), outputs[True].argmax(-1))
            and torch.allclose(outputs[False], outputs[True], rtol=1e-3, atol=1e-3 * scale)
        ):
            return None
        for _ in range(_LAYOUT_REPEATS):  # interleaved: a change of load meets both layouts
            for on in (False, True):
                switch(on)
                times[on] += _timings(passes, adapter.device, 1)
        seconds = {on: statistics.median(v) for on, v in times.items()}
        chosen = seconds[True] <= _LAYOUT_GAIN * seconds[False]
    except Exception:  # a model that breaks in channels_last keeps its own layout
        return None
    finally:
        switch(chosen)
    return {
        "channels_last": chosen,
        "seconds": {
            "default": round(seconds[False], 6),
            "channels_last": round(seconds[True], 6),
        },
    }


def apply_layout(adapter, layout: Mapping[str, Any] | None, *, small: bool) -> bool:
    """A recorded layout choice, applied as it was made where it can be (a recorded cost may
    come from another model: ``--cost-from``). Returns whether the scan runs in channels_last."""
    current = bool(getattr(adapter, "channels_last", False))
    wanted = bool(layout and layout["channels_last"])
    if adapter.device.type != "cpu" or wanted == current:
        return current
    if wanted and not layout_switchable(adapter, small=small):
        return current
    adapter.use_channels_last(wanted)
    return wanted


def restore_layout(adapter, before: bool | None) -> None:
    """The layout the adapter had before the scan (the user's module is converted in place)."""
    switch = getattr(adapter, "use_channels_last", None)
    if before is not None and callable(switch) and adapter.channels_last != before:
        switch(before)


def _pilots(probes: Sequence[Any], context: Any) -> dict[str, dict[str, float]]:
    """Each sized probe's ``pilot`` (one that raises gives nothing: it is planned without)."""
    found: dict[str, dict[str, float]] = {}
    for probe in probes:
        sizing = sizing_of(probe)
        if sizing is None or getattr(probe, "opts", None) is None:
            continue
        try:
            values = {str(k): float(v) for k, v in dict(sizing.pilot(probe, context)).items()}
        except Exception:
            continue
        if values:
            found[probe.name] = values
    return found


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

    # Probes the caller built are run with their own options: neither piloted nor sized.
    ours = [p for p in selected if not any(p is g for g in given)]
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
    layout_before = getattr(context.adapter, "channels_last", None)
    if recorded is None and distributed.is_main():
        try:
            # The layout first: the cost is measured in the layout the probes will run in.
            layout = choose_layout(context.adapter, context.data.x, small=small is not None)
            recorded = measure_cost(context.adapter, context.data.x[:_MAX_MEASURE_BATCH])
            recorded = dataclasses.replace(recorded, layout=layout)
        except Exception:  # sizing must never take the audit down: run the budget as declared
            restore_layout(context.adapter, layout_before)
            recorded = None
        if recorded is not None and small is None:
            # A small model is never resized: its pilots would change nothing.
            recorded = dataclasses.replace(recorded, pilots=_pilots(ours, context))
    if distributed.state().active:
        # Rank 0's cost for everyone: every rank must plan exactly the same work.
        shared = distributed.broadcast_object(recorded.to_dict() if recorded else None)
        recorded = Cost.from_dict(shared) if shared is not None else None
    if recorded is None:
        return selected, None
    # A recorded cost's layout (resume, --cost-from, or rank 0's choice on every rank).
    channels_last = apply_layout(context.adapter, recorded.layout, small=small is not None)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(recorded.to_dict()), encoding="utf-8")
    plan = plan_work(
        recorded,
        budget=budget,
        n_examples=len(context.data),
        probes=ours,
        max_minutes=max_minutes,
        user_options=options,
        small_model=small,
        clean_accuracy=float(context.clean_correct.float().mean()) if len(context.data) else 1.0,
    )
    passed = [p.name for p in selected if not any(p is o for o in ours)]
    if passed:
        plan = dataclasses.replace(plan, not_sized=[*plan.not_sized, *passed])
    if threads:
        plan = dataclasses.replace(plan, threads=threads)
    if context.adapter.device.type == "cpu":
        plan = dataclasses.replace(plan, channels_last=channels_last)
    sized = []
    for probe in selected:
        extra = plan.options.get(probe.name)
        if extra and any(probe is o for o in ours):
            user = dict((options or {}).get(probe.name, {}))
            probe = type(probe)(budget=budget, **{**extra, **user})
        sized.append(probe)
    return sized, plan
