"""Memorization capacity: the random-label test (Zhang et al., 2017).

"Understanding deep learning requires rethinking generalization" showed that standard networks
reach ~100% training accuracy on CIFAR-10 when every label is replaced at random, that held-out
accuracy falls toward chance as label corruption grows, and that fitting random labels takes only
a small constant factor longer than fitting the true ones. Training accuracy alone therefore says
nothing about generalization.

This probe runs that test on the user's own architecture: a freshly re-initialized copy (see
``auditkit.reinit``) is trained, through the same normalization the audit uses, on a seeded
subset of the audit data whose labels are replaced at random with probability p, and scored on
the rest of the audit data against the true labels. The audited model is never modified.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.errors import AuditkitInputError
from auditkit.loading import weights_sha256
from auditkit.pipeline import derive_seed
from auditkit.probes.base import MetricSpec, Probe
from auditkit.reinit import fresh_copy, training_problem
from auditkit.results import Check, Finding, ProbeResult

VERDICT_MEMORIZES = (
    "this architecture can memorize noise at this data size; judge it only on held-out data"
)
VERDICT_CANNOT = (
    "this architecture could not memorize random labels at this data size within the budget"
)
# Why a run that neither fit its labels nor used up its epochs says nothing about capacity.
INCONCLUSIVE = {
    "time": "inconclusive: the time limit stopped training before the epoch budget",
    "diverged": "inconclusive: training diverged (non-finite loss) before the epoch budget",
}

# Per budget: examples trained on, epoch cap per level, wall-clock cap per level (seconds), and
# how many training examples of the audited model its generalization gap is measured on. The
# epoch cap is the budget, so the verdict does not depend on machine speed; the time limit is
# only a safety net against a runaway model, set far above what the budget's epochs take (the
# demo CNN fits random labels in ~2 s at the fast budget on 2 CPU cores, ~30x below its limit).
_BUDGETS: dict[str, dict[str, int | float]] = {
    "fast": {"train_size": 256, "max_epochs": 100, "time_limit_s": 60.0, "gap_examples": 2000},
    "standard": {
        "train_size": 1000,
        "max_epochs": 200,
        "time_limit_s": 600.0,
        "gap_examples": 10_000,
    },
    "thorough": {
        "train_size": 5000,
        "max_epochs": 500,
        "time_limit_s": 3600.0,
        "gap_examples": 50_000,
    },
}
_MIN_EXAMPLES = 20
# Below this many parameters a training step is too small to split across threads: on a shared
# CPU, two threads spin-waiting on each other made the demo CNN 10-30x slower than one thread.
_SINGLE_THREAD_MAX_PARAMETERS = 1_000_000
_MAX_HELD_OUT = 4096
_EVAL_BATCH = 512


@dataclass
class LevelRun:
    """One training run of a fresh copy: which labels (or inputs) it got and how it went."""

    name: str
    corruption: float | None  # None for the random-pixel run
    train_accuracy: list[float] = field(default_factory=list)  # per epoch, on its own labels
    epochs_to_target: int | None = None
    held_out_accuracy: float | None = None
    seconds: float = 0.0
    stopped_by: str = "epochs"  # target | epochs | time | diverged
    labels_changed: float = 0.0  # fraction of training labels that differ from the true ones

    @property
    def final_train_accuracy(self) -> float | None:
        return self.train_accuracy[-1] if self.train_accuracy else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "corruption": self.corruption,
            "train_accuracy": self.train_accuracy,
            "final_train_accuracy": self.final_train_accuracy,
            "epochs_run": len(self.train_accuracy),
            "epochs_to_target": self.epochs_to_target,
            "held_out_accuracy": self.held_out_accuracy,
            "seconds": round(self.seconds, 3),
            "stopped_by": self.stopped_by,
            "labels_changed": self.labels_changed,
        }


def corrupt_labels(
    y: torch.Tensor, corruption: float, num_classes: int, rng: np.random.Generator
) -> torch.Tensor:
    """Replace each label, with probability ``corruption``, by a class drawn uniformly at random.

    As in Zhang et al. the random class may equal the true one, so at ``corruption=1`` the labels
    are independent of the inputs. The same ``rng`` state gives nested corruptions: an example
    corrupted at p is corrupted at every larger p.
    """
    draw = rng.random(len(y))
    random_labels = torch.as_tensor(rng.integers(0, num_classes, len(y)), dtype=y.dtype)
    return torch.where(torch.as_tensor(draw < corruption), random_labels, y)


def _accuracy(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    correct = 0
    with torch.no_grad():
        for start in range(0, len(x), _EVAL_BATCH):
            logits = network(x[start : start + _EVAL_BATCH])
            correct += int((logits.argmax(-1) == y[start : start + _EVAL_BATCH]).sum())
    return correct / max(len(x), 1)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    # Near-equal chunks instead of a ragged tail: a batch of one breaks batch norm in train mode.
    return list(torch.tensor_split(order, max(1, math.ceil(n / batch_size))))


def _parse_levels(value: Any) -> tuple[float, ...]:
    if isinstance(value, str):
        value = [v for v in value.replace(" ", "").split(",") if v]
    if isinstance(value, (int, float)):
        value = [value]
    try:
        levels = tuple(sorted({float(v) for v in value}))
    except (TypeError, ValueError):
        levels = ()
    if not levels or any(not 0.0 <= p <= 1.0 for p in levels):
        raise AuditkitInputError(
            f"--set memorization.corruption_levels={value!r}: expected label-corruption "
            "probabilities in [0, 1], e.g. 0,0.2,0.5,1"
        )
    return levels


class MemorizationProbe(Probe):
    """Train a fresh copy of the architecture on corrupted labels and see whether it fits them.

    Options:
        corruption_levels: probabilities p of replacing a label at random (0: true labels,
            1: random labels).
        random_pixels: also train on Gaussian noise images (matched mean/std) with the labels.
        target_accuracy: training accuracy that counts as "fitted".
        train_size, max_epochs, time_limit_s: per-budget defaults (see ``budget_levels``). The
            epoch cap is the budget; a run the time limit stops makes the verdict inconclusive.
        learning_rate, batch_size: the fixed Adam recipe used for every level.
        gap_threshold: warn when the audited model's train − audit accuracy exceeds this.

    Example:
        >>> result = MemorizationProbe(budget="fast").run(context)
        >>> result.metrics["random_label_train_accuracy"]
    """

    name = "memorization"
    title = "Memorization capacity (random-label test)"
    description = (
        "Can a fresh copy of this architecture fit labels drawn at random, and how far does "
        "held-out accuracy fall when it does?"
    )
    order = 60
    needs_training = True
    metrics = {
        "true_label_train_accuracy": MetricSpec(
            "higher", "training accuracy a fresh copy reaches on the true labels (p = 0)"
        ),
        "random_label_train_accuracy": MetricSpec(
            None,  # capacity describes the architecture; neither side is "better"
            "training accuracy a fresh copy reaches on random labels (p = 1); near 1 means the "
            "architecture can memorize noise at this data size",
        ),
        "fit_epochs_true": MetricSpec(
            None, "epochs to reach the target training accuracy on true labels (None: not reached)"
        ),
        "fit_epochs_random": MetricSpec(
            None,
            "epochs to reach the target training accuracy on random labels (None: not reached)",
        ),
        "fit_time_ratio": MetricSpec(
            None,
            "epochs to fit random labels ÷ epochs to fit true labels (Zhang et al.: a small "
            "constant factor); wall-clock ratio is in details",
        ),
        "generalization_gap": MetricSpec(
            "lower",
            "the audited model's accuracy on its own training data minus its accuracy on the "
            "audit data (only when the training data is supplied)",
        ),
        "audited_model_train_accuracy": MetricSpec(
            None, "the audited model's accuracy on its training data (when supplied)"
        ),
        "held_out_accuracy_true": MetricSpec(
            "higher", "held-out accuracy (true labels) of the copy trained on true labels"
        ),
        "held_out_accuracy_random": MetricSpec(
            None, "held-out accuracy (true labels) of the copy trained on random labels; ≈ chance"
        ),
        "chance_accuracy": MetricSpec(None, "accuracy of guessing a class uniformly at random"),
        "random_pixels_train_accuracy": MetricSpec(
            None, "training accuracy on Gaussian-noise images (only with random_pixels=true)"
        ),
        "fit_epochs_random_pixels": MetricSpec(
            None, "epochs to fit Gaussian-noise images (only with random_pixels=true)"
        ),
    }
    budget_levels = {
        "fast": "256 training examples, ≤ 100 epochs per corruption level with early stop at the "
        "target (a 60 s per-level time limit is only a safety net); train accuracy of the "
        "audited model on ≤ 2,000 of its training examples (demo CNN: a few seconds on 2 CPU "
        "cores)",
        "standard": "1,000 training examples, ≤ 200 epochs per level (safety net 600 s); gap on "
        "≤ 10,000",
        "thorough": "5,000 training examples, ≤ 500 epochs per level (safety net 3,600 s); gap "
        "on ≤ 50,000",
    }
    options = {
        "corruption_levels": (0.0, 0.2, 0.5, 1.0),
        "random_pixels": False,
        "target_accuracy": 0.95,
        "train_size": None,
        "max_epochs": None,
        "time_limit_s": None,
        "learning_rate": 1e-3,
        "batch_size": 32,
        "gap_threshold": 0.10,
    }

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        super().__init__(budget=budget, **options)
        cfg = self.config
        self.levels = _parse_levels(cfg["corruption_levels"])
        defaults = _BUDGETS[self.budget]
        self.random_pixels = _as_bool(cfg["random_pixels"], "random_pixels")
        self.target = _number(cfg["target_accuracy"], "target_accuracy", low=0.0, high=1.0)
        setting = {k: defaults[k] if cfg[k] is None else cfg[k] for k in defaults if k in cfg}
        self.train_size = int(_number(setting["train_size"], "train_size", low=2, inclusive=True))
        self.max_epochs = int(_number(setting["max_epochs"], "max_epochs", low=1, inclusive=True))
        self.time_limit = _number(setting["time_limit_s"], "time_limit_s", low=0.0)
        self.learning_rate = _number(cfg["learning_rate"], "learning_rate", low=0.0)
        self.batch_size = int(_number(cfg["batch_size"], "batch_size", low=1, inclusive=True))
        self.gap_threshold = _number(cfg["gap_threshold"], "gap_threshold", low=0.0, inclusive=True)
        self.gap_examples = int(defaults["gap_examples"])

    def skip_reason(self, context) -> str | None:
        reason = super().skip_reason(context)
        if reason:
            return reason
        problem = training_problem(context.adapter.model)
        if problem:
            return f"{context.adapter.format} model cannot be retrained: {problem}"
        if len(context.data) < _MIN_EXAMPLES:
            return (
                f"only {len(context.data)} audit examples; the random-label test needs at least "
                f"{_MIN_EXAMPLES} (a training part and a held-out part)"
            )
        return None

    # --- the test -------------------------------------------------------------------------------
    def run(self, context) -> ProbeResult:
        adapter, data = context.adapter, context.data
        model = adapter.model
        digest_before = weights_sha256(model)
        mode_before = model.training
        device = adapter.device

        n_train = min(self.train_size, len(data) // 2)
        perm = context.rng("memorization.split").permutation(len(data))
        train_idx = torch.as_tensor(perm[:n_train])
        held_idx = torch.as_tensor(perm[n_train : n_train + _MAX_HELD_OUT])
        x_train, y_train = data.x[train_idx].to(device), data.y[train_idx].to(device)
        x_held, y_held = data.x[held_idx].to(device), data.y[held_idx].to(device)

        init_seed = derive_seed(context.seed, "memorization.init")
        wrap = adapter.wrap
        try:
            # Every level makes its own copy from the same seed; this first one only proves a
            # copy can be made and records how.
            reinitialization = fresh_copy(model, seed=init_seed).describe()
        except Exception as exc:  # deepcopy / jit round trip of exotic models
            reason = f"could not make a trainable copy of the model ({type(exc).__name__}: {exc})"
            return ProbeResult(name=self.name, status="skipped", skip_reason=reason, summary=reason)

        with _training_threads(model, device) as threads:
            runs = self._train_levels(
                context, model, init_seed, wrap, x_train, y_train, x_held, y_held
            )
        reinitialization["threads"] = threads

        gap = self._generalization_gap(context)
        untouched = weights_sha256(model) == digest_before and model.training == mode_before
        return self._result(context, runs, gap, untouched, reinitialization, n_train, len(held_idx))

    def _train_levels(
        self,
        context,
        model: nn.Module,
        init_seed: int,
        wrap: Callable[[nn.Module], nn.Module],
        x_train: torch.Tensor,
        y_train: torch.Tensor,
        x_held: torch.Tensor,
        y_held: torch.Tensor,
    ) -> list[LevelRun]:
        """One run per corruption level (and one on random pixels when asked)."""
        adapter, device = context.adapter, x_train.device
        num_classes = int(adapter.num_classes)
        runs: list[LevelRun] = []
        label_rng_state = context.rng("memorization.labels").bit_generator.state
        for p in self.levels:
            rng = np.random.default_rng()
            rng.bit_generator.state = label_rng_state  # same draws at every p: nested corruption
            labels = corrupt_labels(y_train.cpu(), p, num_classes, rng).to(device)
            context.progress.log(f"memorization: training a fresh copy at p = {p:g}")
            run = self._train(
                model,
                init_seed,
                wrap,
                x_train,
                labels,
                x_held,
                y_held,
                LevelRun(name=_level_name(p), corruption=p),
                shuffle_seed=derive_seed(context.seed, f"memorization.shuffle.{p:g}"),
            )
            run.labels_changed = float((labels != y_train).float().mean())
            runs.append(run)
        if self.random_pixels:
            noise = _gaussian_like(x_train, context.generator("memorization.pixels"), adapter.clamp)
            run = self._train(
                model,
                init_seed,
                wrap,
                noise.to(device),
                y_train,
                x_held,
                y_held,
                LevelRun(name="random pixels", corruption=None),
                shuffle_seed=derive_seed(context.seed, "memorization.shuffle.pixels"),
            )
            runs.append(run)
        return runs

    def _train(
        self,
        model: nn.Module,
        init_seed: int,
        wrap: Callable[[nn.Module], nn.Module],
        x: torch.Tensor,
        y: torch.Tensor,
        x_held: torch.Tensor,
        y_held: torch.Tensor,
        run: LevelRun,
        *,
        shuffle_seed: int,
    ) -> LevelRun:
        """Train one fresh copy with the fixed recipe until the target, the epochs or the time."""
        fresh = fresh_copy(model, seed=init_seed)
        network = wrap(fresh.module)
        optimizer = torch.optim.Adam(fresh.module.parameters(), lr=self.learning_rate)
        shuffle = torch.Generator().manual_seed(shuffle_seed)
        device = x.device
        devices = [device.index or 0] if device.type == "cuda" else []
        started = time.perf_counter()
        # Dropout draws from the global RNG: fork it so the run is seeded and leaves no trace.
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            torch.manual_seed(shuffle_seed)
            for epoch in range(1, self.max_epochs + 1):
                fresh.set_training(True)
                diverged = False
                for idx in _batches(len(x), self.batch_size, shuffle):
                    idx = idx.to(device)
                    optimizer.zero_grad(set_to_none=True)
                    loss = nn.functional.cross_entropy(network(x[idx]).float(), y[idx])
                    if not torch.isfinite(loss):
                        diverged = True
                        break
                    loss.backward()
                    optimizer.step()
                fresh.set_training(False)
                run.train_accuracy.append(_accuracy(network, x, y))
                if diverged:
                    run.stopped_by = "diverged"
                    break
                if run.train_accuracy[-1] >= self.target:
                    run.epochs_to_target = epoch
                    run.stopped_by = "target"
                    break
                # Past the last epoch the epoch budget, not the clock, is what stopped the run.
                if epoch < self.max_epochs and time.perf_counter() - started > self.time_limit:
                    run.stopped_by = "time"
                    break
        run.seconds = time.perf_counter() - started
        run.held_out_accuracy = _accuracy(network, x_held, y_held)
        return run

    def _generalization_gap(self, context) -> dict[str, Any] | None:
        """The audited model's accuracy on its own training data minus on the audit data."""
        train = getattr(context.data, "train", None)
        if train is None or not len(train):
            return None
        if tuple(train.input_shape) != tuple(context.adapter.input_shape):
            return {
                "error": f"training data has shape {tuple(train.input_shape)}, the model "
                f"expects {tuple(context.adapter.input_shape)}"
            }
        n = len(train)
        index = np.arange(n)
        if n > self.gap_examples:
            index = np.sort(
                context.rng("memorization.gap").choice(n, self.gap_examples, replace=False)
            )
        t = torch.as_tensor(index)
        logits = context.adapter.predict_logits(train.x[t])
        train_accuracy = float((logits.argmax(-1) == train.y[t]).float().mean())
        audit_accuracy = float(context.clean_correct.float().mean())
        return {
            "train_accuracy": train_accuracy,
            "audit_accuracy": audit_accuracy,
            "gap": train_accuracy - audit_accuracy,
            "n_train": int(len(index)),
            "n_train_total": int(n),
            "n_audit": len(context.data),
        }

    # --- reporting ------------------------------------------------------------------------------
    def _result(
        self,
        context,
        runs: list[LevelRun],
        gap: dict[str, Any] | None,
        untouched: bool,
        reinitialization: dict[str, Any],
        n_train: int,
        n_held: int,
    ) -> ProbeResult:
        num_classes = int(context.adapter.num_classes)
        chance = 1.0 / num_classes
        by_p = {r.corruption: r for r in runs if r.corruption is not None}
        true_run, random_run = by_p.get(0.0), by_p.get(1.0)
        pixels = next((r for r in runs if r.corruption is None), None)

        ratio = None
        if true_run and random_run and true_run.epochs_to_target and random_run.epochs_to_target:
            ratio = random_run.epochs_to_target / true_run.epochs_to_target
        seconds_ratio = None
        if ratio is not None and true_run.seconds > 0:
            seconds_ratio = random_run.seconds / true_run.seconds
        gap_value = gap.get("gap") if gap else None
        metrics: dict[str, float | None] = {
            "true_label_train_accuracy": true_run.final_train_accuracy if true_run else None,
            "random_label_train_accuracy": random_run.final_train_accuracy if random_run else None,
            "fit_epochs_true": true_run.epochs_to_target if true_run else None,
            "fit_epochs_random": random_run.epochs_to_target if random_run else None,
            "fit_time_ratio": ratio,
            "generalization_gap": gap_value,
            "audited_model_train_accuracy": gap.get("train_accuracy") if gap else None,
            "held_out_accuracy_true": true_run.held_out_accuracy if true_run else None,
            "held_out_accuracy_random": random_run.held_out_accuracy if random_run else None,
            "chance_accuracy": chance,
        }
        if pixels is not None:
            metrics["random_pixels_train_accuracy"] = pixels.final_train_accuracy
            metrics["fit_epochs_random_pixels"] = pixels.epochs_to_target

        checks = self._checks(runs, true_run, random_run, untouched, chance, n_held, gap)
        memorizes = random_run is not None and random_run.epochs_to_target is not None
        summary, findings = self._verdict(
            true_run, random_run, ratio, gap_value, chance, n_train, memorizes
        )
        return ProbeResult(
            name=self.name,
            status=_status(checks, findings),
            metrics=metrics,
            checks=checks,
            summary=summary,
            headline="random_label_train_accuracy" if random_run else None,
            findings=findings,
            figures=self._figures(runs, chance),
            details={
                "reinitialization": reinitialization,
                "recipe": {
                    "optimizer": "Adam",
                    "learning_rate": self.learning_rate,
                    "batch_size": self.batch_size,
                    "loss": "cross-entropy",
                    "weight_decay": 0.0,
                    "target_accuracy": self.target,
                    "max_epochs": self.max_epochs,
                    "time_limit_s_per_level": self.time_limit,
                    "early_stop": "stop as soon as training accuracy reaches the target",
                    "same_initialization_every_level": True,
                },
                "data": {
                    "train_size": n_train,
                    "held_out_size": n_held,
                    "split": "seeded permutation of the audit data (train part, then held-out)",
                    "corruption": "each label replaced with probability p by a uniformly random "
                    "class (may equal the true one); held-out scored against true labels",
                    "random_pixels": "Gaussian noise with the training images' per-channel "
                    "mean/std, clipped to the input box, with the true labels"
                    if pixels is not None
                    else None,
                },
                "levels": [r.to_dict() for r in runs],
                "fit_epochs": {r.name: _fit_epochs(r) for r in runs},
                "fit_seconds_ratio": seconds_ratio,
                "generalization_gap": gap
                if gap is not None
                else "not measured: the audit data carries no training data of the model "
                "(supply it to compare training and audit accuracy)",
                "citation": "Zhang, Bengio, Hardt, Recht, Vinyals. Understanding deep learning "
                "requires rethinking generalization. ICLR 2017",
            },
        )

    def _checks(
        self,
        runs: list[LevelRun],
        true_run: LevelRun | None,
        random_run: LevelRun | None,
        untouched: bool,
        chance: float,
        n_held: int,
        gap: dict[str, Any] | None,
    ) -> list[Check]:
        checks = [
            Check(
                "audited_model_untouched",
                "passed" if untouched else "failed",
                "the audited model's weights and mode are identical before and after the probe"
                if untouched
                else "the audited model changed during the probe",
            )
        ]
        if true_run is not None:
            fitted = true_run.epochs_to_target is not None
            checks.append(
                Check(
                    "fits_true_labels",
                    "passed" if fitted else "warned",
                    f"the fixed recipe fits the true labels in {true_run.epochs_to_target} epochs"
                    if fitted
                    else f"the fixed recipe reached only {true_run.final_train_accuracy:.1%} on the true "
                    f"labels ({true_run.stopped_by}); the random-label result is inconclusive",
                    {
                        "epochs": true_run.epochs_to_target,
                        "train_accuracy": true_run.final_train_accuracy,
                    },
                )
            )
        if random_run is not None and random_run.held_out_accuracy is not None:
            # Random labels carry no signal, so held-out accuracy should sit at chance up to
            # sampling noise (3 binomial standard errors) plus slack for uneven predictions.
            tolerance = 0.05 + 3 * math.sqrt(chance * (1 - chance) / max(n_held, 1))
            near = abs(random_run.held_out_accuracy - chance) <= tolerance
            checks.append(
                Check(
                    "random_labels_held_out_near_chance",
                    "passed" if near else "warned",
                    f"held-out accuracy after random labels {random_run.held_out_accuracy:.1%} vs "
                    f"chance {chance:.1%} (tolerance ±{tolerance:.1%})",
                    {
                        "held_out_accuracy": random_run.held_out_accuracy,
                        "chance": chance,
                        "tolerance": tolerance,
                    },
                )
            )
        timed_out = [r.name for r in runs if r.stopped_by == "time"]
        diverged = [r.name for r in runs if r.stopped_by == "diverged"]
        problems = []
        if timed_out:
            problems.append(
                f"the time limit stopped {', '.join(timed_out)} before the epoch budget; those "
                "numbers depend on machine speed"
            )
        if diverged:
            problems.append(f"{', '.join(diverged)} diverged (non-finite loss)")
        checks.append(
            Check(
                "within_epoch_budget",
                "warned" if problems else "passed",
                "; ".join(problems)
                or "every level stopped at the target or the epoch budget (machine-independent)",
                {"stopped_by_time": timed_out, "diverged": diverged},
            )
        )
        if gap is not None:
            if "error" in gap:
                checks.append(
                    Check(
                        "audited_model_generalization_gap",
                        "warned",
                        f"the training data was supplied but not usable: {gap['error']}",
                    )
                )
            else:
                large = gap["gap"] > self.gap_threshold
                checks.append(
                    Check(
                        "audited_model_generalization_gap",
                        "warned" if large else "passed",
                        f"the audited model: {gap['train_accuracy']:.1%} on its training data, "
                        f"{gap['audit_accuracy']:.1%} on the audit data (gap {gap['gap']:+.1%}, "
                        f"threshold {self.gap_threshold:.0%})",
                        {"gap": gap["gap"], "threshold": self.gap_threshold},
                    )
                )
        return checks

    def _verdict(
        self,
        true_run: LevelRun | None,
        random_run: LevelRun | None,
        ratio: float | None,
        gap: float | None,
        chance: float,
        n_train: int,
        memorizes: bool,
    ) -> tuple[str, list[Finding]]:
        findings: list[Finding] = []
        if random_run is None:
            summary = (
                f"A fresh copy was trained at label corruption {', '.join(self._level_list())} on "
                f"{n_train} examples; add p = 1 to run the random-label test"
            )
        elif not memorizes and (stopped := _inconclusive_run(true_run, random_run)) is not None:
            summary, finding = self._inconclusive(stopped, random_run, n_train)
            findings.append(finding)
        elif memorizes:
            held = random_run.held_out_accuracy or 0.0
            speed = f" ({ratio:.1f}× the epochs of true labels)" if ratio is not None else ""
            if true_run is not None and true_run.stopped_by in INCONCLUSIVE:
                cause = "it diverged" if true_run.stopped_by == "diverged" else "time limit"
                speed = f" (epochs for true labels not measured: {cause})"
            summary = (
                f"A fresh copy fit random labels on {n_train} examples to "
                f"{random_run.final_train_accuracy:.0%} training accuracy in "
                f"{random_run.epochs_to_target} epochs{speed} while held-out accuracy fell to "
                f"{held:.0%} (chance {chance:.0%}): {VERDICT_MEMORIZES}"
            )
            findings.append(
                Finding(
                    "info",
                    VERDICT_MEMORIZES,
                    why=f"labels drawn at random carry no information, yet a fresh copy of the "
                    f"architecture reached {random_run.final_train_accuracy:.0%} training accuracy "
                    f"on them; high training accuracy therefore says nothing about "
                    f"generalization (Zhang et al. 2017)",
                    action="report held-out accuracy on data the model never saw, and treat any "
                    "gap between training and held-out accuracy as memorization",
                )
            )
        else:
            summary = (
                f"A fresh copy reached only {random_run.final_train_accuracy:.0%} training "
                f"accuracy on random labels ({n_train} examples, {len(random_run.train_accuracy)} "
                f"epochs, target {self.target:.0%} not reached): {VERDICT_CANNOT}"
            )
            findings.append(
                Finding(
                    "info",
                    VERDICT_CANNOT,
                    why="its capacity is small relative to this many examples, or the budget was "
                    "too short; either way its training accuracy is harder to inflate by "
                    "memorizing",
                    action="still judge it on held-out data; rerun with --budget thorough to "
                    "test with more epochs and examples",
                )
            )
        if gap is not None and gap > self.gap_threshold:
            findings.append(
                Finding(
                    "warning",
                    f"the audited model is {gap:.1%} more accurate on its training data than on "
                    "the audit data",
                    why="a gap this large means part of what it learned is specific to its "
                    "training examples, which an architecture that can memorize noise will do",
                    action="regularize (weight decay, augmentation, early stopping) or collect "
                    "more data, and select models on held-out accuracy",
                )
            )
        return summary, findings

    def _inconclusive(
        self, stopped: LevelRun, random_run: LevelRun, n_train: int
    ) -> tuple[str, Finding]:
        """Summary and finding when the clock or a blown-up loss, not the epochs, ended a run."""
        verdict = INCONCLUSIVE[stopped.stopped_by]
        epochs = len(stopped.train_accuracy)
        accuracy = stopped.final_train_accuracy or 0.0
        cause = (
            f"the {self.time_limit:g} s time limit stopped {stopped.name}"
            if stopped.stopped_by == "time"
            else f"{stopped.name} diverged"
        )
        summary = (
            f"A fresh copy reached {random_run.final_train_accuracy or 0.0:.0%} training accuracy "
            f"on random labels in {len(random_run.train_accuracy)} of {self.max_epochs} epochs "
            f"({n_train} examples) when {cause}: {verdict}"
        )
        if stopped.stopped_by == "time":
            why = (
                f"{stopped.name} stopped after {epochs} of {self.max_epochs} epochs, at "
                f"{accuracy:.0%} training accuracy, because it ran past the {self.time_limit:g} s "
                "safety limit; whether the copy fits random labels within the epoch budget then "
                "depends on how busy this machine was, not on the architecture"
            )
            action = (
                "rerun on a less loaded machine or raise the safety limit, e.g. --set "
                f"memorization.time_limit_s={10 * self.time_limit:g}"
            )
        else:
            why = (
                f"{stopped.name} hit a non-finite loss after {epochs} epochs at learning rate "
                f"{self.learning_rate:g}; a run that blew up says nothing about capacity"
            )
            action = "rerun with a smaller --set memorization.learning_rate"
        return summary, Finding("warning", verdict, why=why, action=action)

    def _level_list(self) -> list[str]:
        return [f"{p:g}" for p in self.levels]

    def _figures(self, runs: list[LevelRun], chance: float) -> list[dict[str, Any]]:
        levels = [r for r in runs if r.corruption is not None]
        figures: list[dict[str, Any]] = [
            {
                "kind": "line",
                "id": "memorization-training-curves",
                "title": "Training accuracy of a fresh copy, per label corruption",
                "x_label": "epoch",
                "y_label": "training accuracy (on the labels it was given)",
                "series": [
                    {
                        "name": r.name,
                        "x": list(range(1, len(r.train_accuracy) + 1)),
                        "y": r.train_accuracy,
                    }
                    for r in runs
                ],
                "y_range": [0, 1],
                "caption": f"each run stops once it reaches {self.target:.0%} training accuracy; "
                "deep networks fit even random labels, only a few times slower",
            }
        ]
        if levels:
            ps = [r.corruption for r in levels]
            figures.append(
                {
                    "kind": "line",
                    "id": "memorization-held-out",
                    "title": "Held-out accuracy vs label corruption",
                    "x_label": "label corruption p",
                    "y_label": "accuracy",
                    "series": [
                        {
                            "name": "held-out accuracy (true labels)",
                            "x": ps,
                            "y": [r.held_out_accuracy for r in levels],
                        },
                        {
                            "name": "final training accuracy",
                            "x": ps,
                            "y": [r.final_train_accuracy for r in levels],
                        },
                        {"name": "chance", "x": ps, "y": [chance for _ in levels]},
                    ],
                    "y_range": [0, 1],
                    "caption": "training accuracy stays high while held-out accuracy falls toward "
                    "chance: the copy memorizes the corrupted labels",
                }
            )
        figures.append(
            {
                "kind": "table",
                "id": "memorization-levels",
                "title": "Runs of the random-label test",
                "columns": [
                    "run",
                    "labels changed",
                    "epochs to target",
                    "training accuracy",
                    "held-out accuracy",
                    "seconds",
                ],
                "rows": [
                    [
                        r.name,
                        f"{r.labels_changed:.0%}",
                        _fit_epochs(r),
                        round(r.final_train_accuracy or 0.0, 4),
                        round(r.held_out_accuracy or 0.0, 4),
                        round(r.seconds, 2),
                    ]
                    for r in runs
                ],
                "caption": f"target training accuracy {self.target:.0%}",
            }
        )
        return figures


@contextmanager
def _training_threads(model: nn.Module, device: torch.device) -> Iterator[int]:
    """Train small models on one CPU thread (restored afterwards); yields the thread count."""
    before = torch.get_num_threads()
    size = sum(p.numel() for p in model.parameters())
    if device.type != "cpu" or size > _SINGLE_THREAD_MAX_PARAMETERS or before == 1:
        yield before
        return
    torch.set_num_threads(1)
    try:
        yield 1
    finally:
        torch.set_num_threads(before)


def _inconclusive_run(true_run: LevelRun | None, random_run: LevelRun | None) -> LevelRun | None:
    """The p = 1 (else p = 0) run that stopped for a reason other than its target or epochs."""
    for run in (random_run, true_run):
        if run is not None and run.stopped_by in INCONCLUSIVE:
            return run
    return None


def _fit_epochs(run: LevelRun) -> int | str:
    if run.epochs_to_target is not None:
        return run.epochs_to_target
    if run.stopped_by == "time":
        return "not reached (time limit)"
    if run.stopped_by == "diverged":
        return "not reached (diverged)"
    return "not reached"


def _status(checks: list[Check], findings: list[Finding]) -> str:
    """The worst check decides; a warning finding alone is enough to warn."""
    if any(c.status == "failed" for c in checks):
        return "failed"
    if any(c.status == "warned" for c in checks) or any(f.severity != "info" for f in findings):
        return "warned"
    return "passed"


def _level_name(p: float) -> str:
    if p == 0.0:
        return "p = 0 (true labels)"
    if p == 1.0:
        return "p = 1 (random labels)"
    return f"p = {p:g}"


def _gaussian_like(x: torch.Tensor, generator: torch.Generator, clamp) -> torch.Tensor:
    """Noise images with ``x``'s per-channel mean and std (Zhang et al.'s "Gaussian" inputs)."""
    x = x.detach().cpu()
    dims = [0, *range(2, x.ndim)] if x.ndim > 2 else [0]
    mean = x.mean(dim=dims, keepdim=True)
    std = x.std(dim=dims, keepdim=True)
    noise = torch.randn(x.shape, generator=generator) * std + mean
    return clamp(noise)


def _as_bool(value: Any, option: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"true", "false", "1", "0", "yes", "no"}:
        return value.lower() in {"true", "1", "yes"}
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise AuditkitInputError(f"--set memorization.{option}={value!r}: expected true or false")


def _number(
    value: Any, option: str, *, low: float, high: float | None = None, inclusive: bool = False
) -> float:
    """``value`` as a finite number above ``low`` (or at it, when ``inclusive``) and ≤ ``high``."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    ok = math.isfinite(number) and (number >= low if inclusive else number > low)
    if high is not None:
        ok = ok and number <= high
    if not ok:
        lower = f"≥ {low:g}" if inclusive else f"> {low:g}"
        bound = f"{lower} and ≤ {high:g}" if high is not None else lower
        raise AuditkitInputError(
            f"--set memorization.{option}={value!r}: expected a number {bound}"
        )
    return number


__all__ = [
    "INCONCLUSIVE",
    "MemorizationProbe",
    "VERDICT_CANNOT",
    "VERDICT_MEMORIZES",
    "corrupt_labels",
]
