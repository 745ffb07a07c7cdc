"""The random-label test for scikit-learn estimators: re-fit ``sklearn.base.clone`` per level.

An estimator has no epochs and no weights to re-initialize: ``clone`` gives the same
hyper-parameters unfitted, and one ``fit`` is the whole training run. Each level is therefore
one "epoch" in the ``LevelRun`` the judge reads: fitted when its training accuracy on its own
labels reaches the target, else the run used its whole budget. The audited estimator is never
fitted again (its predictions are compared before and after).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from auditkit.context import AuditContext, derive_seed
from auditkit.probes.memorization.judge import VERDICT_CANNOT, VERDICT_MEMORIZES, Judgement
from auditkit.probes.memorization.measure import (
    LevelRun,
    MemorizationMeasurement,
    _generalization_gap,
    _level_name,
    corrupt_labels,
)
from auditkit.probes.memorization.options import GAP_EXAMPLES, MemorizationOptions
from auditkit.results import ProbeResult

_MAX_HELD_OUT = 4096
#: Random-label fits averaged for the held-out chance check (the training-accuracy verdict
#: reads the first, as for a network).
LABEL_DRAWS = 5


def can_refit(adapter: object) -> bool:
    return hasattr(adapter, "refit_clone")


def measure_refit(context: AuditContext, opts: MemorizationOptions,
                  budget: str) -> MemorizationMeasurement:
    adapter, data = context.adapter, context.data
    n_train = min(opts.train_size, len(data) // 2)
    perm = context.rng("memorization.split").permutation(len(data))
    train_idx = torch.as_tensor(perm[:n_train])
    held_idx = torch.as_tensor(perm[n_train : n_train + _MAX_HELD_OUT])
    x_train, y_train = data.x[train_idx], data.y[train_idx]
    x_held, y_held = data.x[held_idx], data.y[held_idx]
    before = adapter.predict_logits(x_held)
    num_classes = int(adapter.num_classes)
    label_state = context.rng("memorization.labels").bit_generator.state
    runs = []
    for p in opts.levels:
        rng = np.random.default_rng()
        rng.bit_generator.state = label_state  # nested corruption, as for networks
        labels = corrupt_labels(y_train, p, num_classes, rng)
        context.progress.log(f"memorization: re-fitting a clone at p = {p:g}")
        run = LevelRun(name=_level_name(p), corruption=p)
        started = time.perf_counter()
        _seed_estimator(adapter, derive_seed(context.seed, f"memorization.fit.{p:g}"))
        clone = adapter.refit_clone(x_train, labels)
        fitted = _accuracy(clone, x_train, labels)
        run.train_accuracy = [fitted]
        held = [_accuracy(clone, x_held, y_held)]
        if p == 1.0:
            # One fit on random labels agrees with the true labels by luck on a few percent
            # of every held-out row; the mean over several draws is the chance check's number.
            for _ in range(LABEL_DRAWS - 1):
                extra = adapter.refit_clone(x_train, corrupt_labels(y_train, p, num_classes, rng))
                held.append(_accuracy(extra, x_held, y_held))
        run.held_out_accuracy = float(np.mean(held))
        run.epochs_to_target = 1 if fitted >= opts.target_accuracy else None
        run.stopped_by = "target" if run.epochs_to_target else "epochs"
        run.seconds = time.perf_counter() - started
        run.labels_changed = float((labels != y_train).float().mean())
        runs.append(run)
    gap = _generalization_gap(context, GAP_EXAMPLES[budget])
    untouched = torch.equal(adapter.predict_logits(x_held), before)
    return MemorizationMeasurement(
        runs=runs, num_classes=num_classes, n_train=n_train, n_held=len(held_idx), opts=opts,
        gap=gap, untouched=untouched, label_draws=LABEL_DRAWS if 1.0 in opts.levels else 1,
        reinitialization={"method": "sklearn.base.clone, one fit per level (no epochs); the "
                                    f"held-out chance check averages {LABEL_DRAWS} random-label fits",
                          "estimator": type(adapter.estimator).__name__},
    )


def _accuracy(clone: Any, x: torch.Tensor, y: torch.Tensor) -> float:
    """The fraction of ``y`` a re-fitted clone predicts."""
    return float((clone.predict_logits(x).argmax(1) == y).float().mean())


def _seed_estimator(adapter: object, seed: int) -> None:
    """Fix the clone's randomness where the estimator exposes it (random_state=None stays
    random otherwise, and the audit must be reproducible)."""
    np.random.seed(seed % (2**32))


def refit_summary(result: ProbeResult, m: MemorizationMeasurement, j: Judgement) -> ProbeResult:
    """The summary in an estimator's terms: fits of a clone, not epochs of a network."""
    true_run, random_run = m.true_run, m.random_run
    if random_run is None or not random_run.train_accuracy:
        return result
    text = (
        f"A clone of the estimator re-fitted on {m.n_train} examples with random labels "
        f"reached {random_run.train_accuracy[-1]:.0%} training accuracy"
    )
    if true_run is not None and true_run.train_accuracy:
        text += f" (true labels: {true_run.train_accuracy[-1]:.0%})"
    if random_run.held_out_accuracy is not None:
        draws = f", mean of {m.label_draws} random-label fits" if m.label_draws > 1 else ""
        text += (f" while held-out accuracy fell to {random_run.held_out_accuracy:.0%} "
                 f"(chance {m.chance:.0%}{draws})")
    verdict = {"memorizes": VERDICT_MEMORIZES, "cannot": VERDICT_CANNOT}.get(j.verdict)
    text += f": {verdict}." if verdict else "."
    return replace(result, summary=text)
