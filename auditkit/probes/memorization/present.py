"""Present: the summary sentence, the figures (as data) and the details of audit.json."""

from __future__ import annotations

from typing import Any

from auditkit.probes.memorization.judge import (
    INCONCLUSIVE,
    STOPPED_BY,
    VERDICT_CANNOT,
    VERDICT_MEMORIZES,
    Judgement,
    fit_epoch_ratio,
    fit_epochs,
    inconclusive_run,
)
from auditkit.probes.memorization.measure import MemorizationMeasurement
from auditkit.results import ProbeResult


def present(name: str, m: MemorizationMeasurement, j: Judgement) -> ProbeResult:
    return ProbeResult(
        name=name,
        status=j.status,
        metrics=j.metrics,
        checks=j.checks,
        summary=summary(m, j),
        headline="random_label_train_accuracy" if m.random_run else None,
        findings=j.findings,
        figures=figures(m),
        details=details(m, j),
    )


def details(m: MemorizationMeasurement, j: Judgement) -> dict[str, Any]:
    opts, runs, gap = m.opts, m.runs, m.gap
    reinitialization, n_train, n_held, pixels = (
        m.reinitialization,
        m.n_train,
        m.n_held,
        m.pixels_run,
    )
    return {
        "reinitialization": reinitialization,
        "recipe": {
            "optimizer": "Adam",
            "learning_rate": opts.learning_rate,
            "batch_size": opts.batch_size,
            "loss": "cross-entropy",
            "weight_decay": 0.0,
            "target_accuracy": opts.target_accuracy,
            "max_epochs": opts.max_epochs,
            "time_limit_s_per_level": opts.time_limit_s,
            "early_stop": "stop as soon as training accuracy reaches the target",
            "batch_norm_statistics": "recomputed on the training subset before each accuracy "
            "check (precise BN: a cumulative average over the training batches, batch norm in "
            "train mode and every other layer in eval mode, no gradient); training itself is "
            "unchanged"
            if reinitialization.get("precise_batch_norm_layers")
            else None,
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
        "clock_reductions": list(m.clock_reductions),
        "fit_epochs": {r.name: fit_epochs(r) for r in runs},
        "fit_seconds_ratio": j.fit_seconds_ratio,
        "generalization_gap": gap
        if gap is not None
        else "not measured: the audit data carries no training data of the model "
        "(supply it to compare training and audit accuracy)",
        "citation": "Zhang, Bengio, Hardt, Recht, Vinyals. Understanding deep learning "
        "requires rethinking generalization. ICLR 2017",
        "unmeasured": unmeasured(m, j),
    }


def unmeasured(m: MemorizationMeasurement, j: Judgement) -> dict[str, str]:
    """Why each metric without a value has none (the report and the gates quote it)."""
    levels = ", ".join(f"{p:g}" for p in m.opts.levels)
    why: dict[str, str] = {}
    for key, run, labels in (("true", m.true_run, "true"), ("random", m.random_run, "random")):
        p = 0 if key == "true" else 1
        if run is None:
            missing = f"no {labels}-label run: the corruption levels were {levels}, without p = {p}"
            why[f"{key}_label_train_accuracy"] = why[f"fit_epochs_{key}"] = missing
            why[f"held_out_accuracy_{key}"] = missing
        elif run.epochs_to_target is None:
            why[f"fit_epochs_{key}"] = (
                f"the {labels}-label run did not reach the {m.opts.target_accuracy:.0%} target "
                f"in {len(run.train_accuracy)} epochs "
                f"({STOPPED_BY.get(run.stopped_by, run.stopped_by)})"
            )
    if j.metrics.get("fit_time_ratio") is None:
        why["fit_time_ratio"] = why.get("fit_epochs_true") or why.get("fit_epochs_random") or (
            "it needs both the true- and the random-label run to reach the target"
        )
    if m.gap is None:
        why["generalization_gap"] = why["audited_model_train_accuracy"] = (
            "the audit data carries no training data of the model (pass --train-data)"
        )
    return {k: v for k, v in why.items() if j.metrics.get(k) is None}


def summary(m: MemorizationMeasurement, j: Judgement) -> str:
    """One sentence: what the copy did on random labels, and what that means."""
    true_run, random_run, n_train, chance = m.true_run, m.random_run, m.n_train, m.chance
    opts = m.opts
    if j.verdict == "incomplete":
        levels = ", ".join(f"{p:g}" for p in opts.levels)
        return (
            f"A fresh copy was trained at label corruption {levels} on "
            f"{n_train} examples; add p = 1 to run the random-label test"
        )
    if j.verdict == "inconclusive":
        stopped = inconclusive_run(m)
        cause = (
            f"the {opts.time_limit_s:g} s time limit stopped {stopped.name}"
            if stopped.stopped_by == "time"
            else f"{stopped.name} diverged"
        )
        return (
            f"A fresh copy reached {random_run.final_train_accuracy or 0.0:.0%} training accuracy "
            f"on random labels in {len(random_run.train_accuracy)} of {opts.max_epochs} epochs "
            f"({n_train} examples) when {cause}: {INCONCLUSIVE[stopped.stopped_by]}"
        )
    if j.verdict == "memorizes":
        ratio = fit_epoch_ratio(m)
        held = random_run.held_out_accuracy or 0.0
        speed = f" ({ratio:.1f}× the epochs of true labels)" if ratio is not None else ""
        if true_run is not None and true_run.stopped_by in INCONCLUSIVE:
            cause = "it diverged" if true_run.stopped_by == "diverged" else "time limit"
            speed = f" (epochs for true labels not measured: {cause})"
        return (
            f"A fresh copy fit random labels on {n_train} examples to "
            f"{random_run.final_train_accuracy:.0%} training accuracy in "
            f"{random_run.epochs_to_target} epochs{speed} while held-out accuracy fell to "
            f"{held:.0%} (chance {chance:.0%}): {VERDICT_MEMORIZES}"
        )
    return (
        f"A fresh copy reached only {random_run.final_train_accuracy:.0%} training "
        f"accuracy on random labels ({n_train} examples, {len(random_run.train_accuracy)} "
        f"epochs, target {opts.target_accuracy:.0%} not reached): {VERDICT_CANNOT}"
    )


def figures(m: MemorizationMeasurement) -> list[dict[str, Any]]:
    runs, chance, target = m.runs, m.chance, m.opts.target_accuracy
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
            "caption": f"each run stops once it reaches {target:.0%} training accuracy; "
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
                    fit_epochs(r),
                    round(r.final_train_accuracy or 0.0, 4),
                    round(r.held_out_accuracy or 0.0, 4),
                    round(r.seconds, 2),
                ]
                for r in runs
            ],
            "caption": f"target training accuracy {target:.0%}",
        }
    )
    return figures
