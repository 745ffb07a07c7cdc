"""Measure: train fresh copies of the architecture on corrupted labels; plain data out.

A freshly re-initialized copy (see ``auditkit.reinit``) is trained, through the same
normalization the audit uses, on a seeded subset of the audit data whose labels are replaced at
random with probability p, and scored on the rest of the audit data against the true labels.
The audited model is never modified (its weights' hash and mode are compared before and after).
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

from auditkit import distributed
from auditkit.context import AuditContext, derive_seed
from auditkit.loading import weights_sha256
from auditkit.probes.memorization.options import GAP_EXAMPLES, MemorizationOptions
from auditkit.reinit import batch_norm_layers, fresh_copy

MIN_EXAMPLES = 20
# Below this many parameters a training step is too small to split across threads: on a shared
# CPU, two threads spin-waiting on each other made the demo CNN 10-30x slower than one thread.
_SINGLE_THREAD_MAX_PARAMETERS = 1_000_000
_MAX_HELD_OUT = 4096
#: The clock may halve the training subset down to this size (still the random-label test).
MIN_CLOCK_RETRY_TRAIN = 32
_EVAL_BATCH = 512


class CannotCopy(Exception):
    """The architecture could not be copied and re-initialized (the probe is skipped)."""


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

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LevelRun:
        return cls(
            name=d["name"],
            corruption=d["corruption"],
            train_accuracy=list(d["train_accuracy"]),
            epochs_to_target=d["epochs_to_target"],
            held_out_accuracy=d["held_out_accuracy"],
            seconds=float(d["seconds"]),
            stopped_by=d["stopped_by"],
            labels_changed=float(d["labels_changed"]),
        )

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


@dataclass
class MemorizationMeasurement:
    """The training runs and the audited model's own gap; no model inside.

    ``runs`` holds one ``LevelRun`` per corruption level (``corruption`` p) and one for random
    pixels (``corruption`` None) when asked. ``gap`` is None without training data, a dict with
    ``error`` when it was unusable, else ``train_accuracy``, ``audit_accuracy`` and ``gap``.
    """

    runs: list[LevelRun]
    num_classes: int
    n_train: int
    n_held: int
    opts: MemorizationOptions = field(default_factory=MemorizationOptions)
    gap: dict[str, Any] | None = None
    untouched: bool = True
    reinitialization: dict[str, Any] = field(default_factory=dict)
    #: Subsets halved because the clock stopped a level (``from``, ``to``, ``reason``).
    clock_reductions: list[dict[str, Any]] = field(default_factory=list)
    #: Independent random-label draws behind the random-label run's held-out accuracy (an
    #: estimator's clone is cheap to re-fit, so it is averaged over several; a network: 1).
    label_draws: int = 1

    @property
    def chance(self) -> float:
        return 1.0 / self.num_classes

    def run_at(self, p: float) -> LevelRun | None:
        return next((r for r in self.runs if r.corruption == p), None)

    @property
    def true_run(self) -> LevelRun | None:
        return self.run_at(0.0)

    @property
    def random_run(self) -> LevelRun | None:
        return self.run_at(1.0)

    @property
    def pixels_run(self) -> LevelRun | None:
        return next((r for r in self.runs if r.corruption is None), None)


def measure(
    context: AuditContext, opts: MemorizationOptions, budget: str
) -> MemorizationMeasurement:
    """Train one fresh copy per level; raises ``CannotCopy`` if no copy can be made."""
    adapter, data = context.adapter, context.data
    model = adapter.model
    digest_before = weights_sha256(model)
    mode_before = model.training

    n_train = min(opts.train_size, len(data) // 2)
    clock_reductions: list[dict[str, Any]] = []
    while True:
        runs, n_held, reinitialization = _measure_subset(context, opts, model, n_train)
        stopped = [r.name for r in runs if r.stopped_by == "time"]
        half = n_train // 2
        if not stopped or half < MIN_CLOCK_RETRY_TRAIN:
            break
        # The clock, not the epochs, ended a level: a smaller subset is still the same test
        # and fits sooner. Say so instead of coming back inconclusive.
        clock_reductions.append({
            "from": n_train,
            "to": half,
            "stopped": stopped,
            "reason": f"the {opts.time_limit_s:g} s limit stopped {', '.join(stopped)} on "
            f"{n_train} examples; the test was rerun on {half}",
        })
        context.progress.log(f"memorization: {clock_reductions[-1]['reason']}")
        n_train = half

    gap = _generalization_gap(context, GAP_EXAMPLES[budget])
    untouched = weights_sha256(model) == digest_before and model.training == mode_before
    return MemorizationMeasurement(
        runs=runs,
        num_classes=int(adapter.num_classes),
        n_train=n_train,
        n_held=n_held,
        opts=opts,
        gap=gap,
        untouched=untouched,
        reinitialization=reinitialization,
        clock_reductions=clock_reductions,
    )


def _measure_subset(
    context: AuditContext, opts: MemorizationOptions, model: nn.Module, n_train: int
) -> tuple[list[LevelRun], int, dict[str, Any]]:
    """Every level's run on the first ``n_train`` examples of the seeded split."""
    adapter, data, device = context.adapter, context.data, context.adapter.device
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
        reinitialization["precise_batch_norm_layers"] = len(batch_norm_layers(model))
    except Exception as exc:  # deepcopy / jit round trip of exotic models
        raise CannotCopy(
            f"could not make a trainable copy of the model ({type(exc).__name__}: {exc})"
        ) from exc

    with _training_threads(model, device) as threads:
        runs = _train_levels(
            opts, context, model, init_seed, wrap, x_train, y_train, x_held, y_held
        )
    reinitialization["threads"] = threads
    return runs, len(held_idx), reinitialization


def _train_levels(
    opts: MemorizationOptions,
    context: AuditContext,
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
    # Levels are independent (same initialization, own shuffle seed, same label draws): under
    # torchrun each rank trains every K-th level and the runs are gathered in order.
    mine = set(distributed.my_batches(len(opts.levels), 1))
    for i, p in enumerate(opts.levels):
        if i not in mine:
            runs.append(LevelRun(name=_level_name(p), corruption=p))
            continue
        rng = np.random.default_rng()
        rng.bit_generator.state = label_rng_state  # same draws at every p: nested corruption
        labels = corrupt_labels(y_train.cpu(), p, num_classes, rng).to(device)
        run = _train(
            opts,
            model,
            init_seed,
            wrap,
            x_train,
            labels,
            x_held,
            y_held,
            LevelRun(name=_level_name(p), corruption=p),
            shuffle_seed=derive_seed(context.seed, f"memorization.shuffle.{p:g}"),
            progress=context.progress,
        )
        run.labels_changed = float((labels != y_train).float().mean())
        runs.append(run)
    if distributed.state().active:
        owners = {i: i % distributed.state().world_size for i in range(len(runs))}
        runs = [
            LevelRun.from_dict(distributed.broadcast_from(owners[i], runs[i].to_dict()))
            for i in range(len(runs))
        ]
    if opts.random_pixels:
        noise = _gaussian_like(x_train, context.generator("memorization.pixels"), adapter.clamp)
        run = _train(
            opts,
            model,
            init_seed,
            wrap,
            noise.to(device),
            y_train,
            x_held,
            y_held,
            LevelRun(name="random pixels", corruption=None),
            shuffle_seed=derive_seed(context.seed, "memorization.shuffle.pixels"),
            progress=context.progress,
        )
        runs.append(run)
    return runs


def _train(
    opts: MemorizationOptions,
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
    progress: Any = None,
) -> LevelRun:
    """Train one fresh copy with the fixed recipe until the target, the epochs or the time."""
    fresh = fresh_copy(model, seed=init_seed)
    network = wrap(fresh.module)
    precise_bn = batch_norm_layers(fresh.module)
    optimizer = torch.optim.Adam(fresh.module.parameters(), lr=opts.learning_rate)
    shuffle = torch.Generator().manual_seed(shuffle_seed)
    device = x.device
    devices = [device.index or 0] if device.type == "cuda" else []
    started = time.perf_counter()
    # Dropout draws from the global RNG: fork it so the run is seeded and leaves no trace.
    with torch.random.fork_rng(devices=devices), torch.enable_grad():
        torch.manual_seed(shuffle_seed)
        for epoch in range(1, opts.max_epochs + 1):
            fresh.set_training(True)
            diverged = False
            for idx in _batches(len(x), opts.batch_size, shuffle):
                idx = idx.to(device)
                optimizer.zero_grad(set_to_none=True)
                loss = nn.functional.cross_entropy(network(x[idx]).float(), y[idx])
                if not torch.isfinite(loss):
                    diverged = True
                    break
                loss.backward()
                optimizer.step()
            if precise_bn:
                _precise_batch_norm(network, x, opts.batch_size, precise_bn)
            fresh.set_training(False)
            run.train_accuracy.append(_accuracy(network, x, y))
            if progress is not None:
                progress.advance(f"training epochs ({run.name})", epoch, opts.max_epochs)
            if diverged:
                run.stopped_by = "diverged"
                break
            if run.train_accuracy[-1] >= opts.target_accuracy:
                run.epochs_to_target = epoch
                run.stopped_by = "target"
                break
            # Past the last epoch the epoch budget, not the clock, is what stopped the run.
            if epoch < opts.max_epochs and time.perf_counter() - started > opts.time_limit_s:
                run.stopped_by = "time"
                break
    run.seconds = time.perf_counter() - started
    run.held_out_accuracy = _accuracy(network, x_held, y_held)
    return run


def _generalization_gap(context: AuditContext, gap_examples: int) -> dict[str, Any] | None:
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
    if n > gap_examples:
        index = np.sort(context.rng("memorization.gap").choice(n, gap_examples, replace=False))
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


def _precise_batch_norm(
    network: nn.Module, x: torch.Tensor, batch_size: int, layers: list[nn.Module]
) -> None:
    """Recompute the running statistics of the batch-norm ``layers`` on the training set at the
    current weights ("precise BN": a cumulative average over the same batch sizes as
    training, as torch's ``swa_utils.update_bn`` computes it).

    Only those layers run in train mode; everything else runs as it does at evaluation
    (dropout off, spectral norm's power iteration and other layers' running statistics left
    alone), without gradients, so the training run itself is exactly what it would be without
    this pass. Without it the eval-mode accuracy reads statistics that trail the weights by
    about 1/momentum = 10 steps of exponential averaging: a ResNet-50 fitting 8 random labels
    was right on all 8 in train mode by step 15 but reached the target in eval mode only at
    step 58."""
    modes = [(m, m.training) for m in network.modules()]
    momenta = [(bn, bn.momentum) for bn in layers]
    try:
        network.eval()
        for bn, _ in momenta:
            bn.reset_running_stats()
            bn.momentum = None  # a cumulative average over the batches below
            bn.train()
        with torch.no_grad():
            for chunk in torch.tensor_split(x, max(1, math.ceil(len(x) / batch_size))):
                network(chunk)
    finally:
        for bn, momentum in momenta:
            bn.momentum = momentum
        for module, training in modes:
            module.training = training


def _accuracy(network: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(x), _EVAL_BATCH):
            logits = network(x[start : start + _EVAL_BATCH])
            correct += int((logits.argmax(-1) == y[start : start + _EVAL_BATCH]).sum())
    return correct / max(len(x), 1)


def _batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    order = torch.randperm(n, generator=generator)
    # Near-equal chunks instead of a ragged tail: a batch of one breaks batch norm in train mode.
    return list(torch.tensor_split(order, max(1, math.ceil(n / batch_size))))


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
