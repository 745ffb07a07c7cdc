"""Judge: metrics, checks, the verdict and findings from a ``MemorizationMeasurement`` alone.

Zhang et al. (2017), "Understanding deep learning requires rethinking generalization": standard
networks reach ~100% training accuracy even when every label is random, held-out accuracy falls
toward chance as label corruption grows, and fitting random labels takes only a small constant
factor longer than fitting the true ones. The verdict is one of:

- ``memorizes``: the copy reached the target on random labels within the epoch budget;
- ``cannot``: it used up the epoch budget without reaching the target;
- ``inconclusive``: the time limit or a diverged loss, not the epochs, ended a decisive run;
- ``incomplete``: no p = 1 level was run.

Pure functions of measured data, testable without a model or any training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from auditkit.probes.memorization.measure import LevelRun, MemorizationMeasurement
from auditkit.results import Check, Finding

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
#: What ended a run that missed the target, in words.
STOPPED_BY = {
    "epochs": "the epoch budget ran out",
    "time": "the time limit stopped it",
    "diverged": "training diverged",
}


@dataclass(frozen=True)
class Judgement:
    """What the runs mean: metrics, checks, verdict, findings and the probe's status."""

    metrics: dict[str, float | None]
    checks: list[Check]
    verdict: str  # memorizes | cannot | inconclusive | incomplete
    findings: list[Finding]
    status: str
    fit_seconds_ratio: float | None = None


def judge(m: MemorizationMeasurement) -> Judgement:
    values = metrics(m)
    found_checks = checks(m)
    decided = verdict(m)
    found = findings(m, decided)
    return Judgement(
        metrics=values,
        checks=found_checks,
        verdict=decided,
        findings=found,
        status=status(found_checks, found),
        fit_seconds_ratio=fit_seconds_ratio(m),
    )


def fit_epoch_ratio(m: MemorizationMeasurement) -> float | None:
    """Epochs to fit random labels ÷ epochs to fit true labels (both must have fit)."""
    true_run, random_run = m.true_run, m.random_run
    if true_run and random_run and true_run.epochs_to_target and random_run.epochs_to_target:
        return random_run.epochs_to_target / true_run.epochs_to_target
    return None


def fit_seconds_ratio(m: MemorizationMeasurement) -> float | None:
    """The same ratio in wall-clock seconds (machine-dependent, so only in details)."""
    true_run, random_run = m.true_run, m.random_run
    if fit_epoch_ratio(m) is not None and true_run.seconds > 0:
        return random_run.seconds / true_run.seconds
    return None


def metrics(m: MemorizationMeasurement) -> dict[str, float | None]:
    true_run, random_run, pixels, gap = m.true_run, m.random_run, m.pixels_run, m.gap
    values: dict[str, float | None] = {
        "true_label_train_accuracy": true_run.final_train_accuracy if true_run else None,
        "random_label_train_accuracy": random_run.final_train_accuracy if random_run else None,
        "fit_epochs_true": true_run.epochs_to_target if true_run else None,
        "fit_epochs_random": random_run.epochs_to_target if random_run else None,
        "fit_time_ratio": fit_epoch_ratio(m),
        "generalization_gap": gap.get("gap") if gap else None,
        "audited_model_train_accuracy": gap.get("train_accuracy") if gap else None,
        "held_out_accuracy_true": true_run.held_out_accuracy if true_run else None,
        "held_out_accuracy_random": random_run.held_out_accuracy if random_run else None,
        "chance_accuracy": m.chance,
    }
    if pixels is not None:
        values["random_pixels_train_accuracy"] = pixels.final_train_accuracy
        values["fit_epochs_random_pixels"] = pixels.epochs_to_target
    return values


def verdict(m: MemorizationMeasurement) -> str:
    random_run = m.random_run
    if random_run is None:
        return "incomplete"
    if random_run.epochs_to_target is not None:
        return "memorizes"
    if inconclusive_run(m) is not None:
        return "inconclusive"
    return "cannot"


def checks(m: MemorizationMeasurement) -> list[Check]:
    """Was the test sound: model untouched, true labels fitted, random labels at chance on
    held-out data, every run ended by its target or epochs; and the audited model's own gap."""
    runs, true_run, random_run, untouched = m.runs, m.true_run, m.random_run, m.untouched
    chance, n_held, gap = m.chance, m.n_held, m.gap
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
        checks.append(_fits_true_labels(true_run, chance, n_held, refitted(m)))
    if random_run is not None and random_run.held_out_accuracy is not None:
        # Random labels carry no signal, so held-out accuracy should sit at chance up to
        # sampling noise (3 binomial standard errors) plus slack for uneven predictions.
        tolerance = _chance_tolerance(chance, n_held, m.n_train * m.label_draws)
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
            or ("each level is one fit of a clone (machine-independent)" if refitted(m) else
                "every level stopped at the target or the epoch budget (machine-independent)"),
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
            large = gap["gap"] > m.opts.gap_threshold
            checks.append(
                Check(
                    "audited_model_generalization_gap",
                    "warned" if large else "passed",
                    f"the audited model: {gap['train_accuracy']:.1%} on its training data, "
                    f"{gap['audit_accuracy']:.1%} on the audit data (gap {gap['gap']:+.1%}, "
                    f"threshold {m.opts.gap_threshold:.0%})",
                    {"gap": gap["gap"], "threshold": m.opts.gap_threshold},
                )
            )
    return checks


def findings(m: MemorizationMeasurement, decided: str) -> list[Finding]:
    """The verdict in words, and a warning when the audited model's own gap is large."""
    found: list[Finding] = []
    random_run = m.random_run
    if decided == "inconclusive":
        found.append(inconclusive_finding(m))
    elif decided == "memorizes":
        found.append(
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
    elif decided == "cannot":
        found.append(
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
    gap = m.gap.get("gap") if m.gap else None
    if gap is not None and gap > m.opts.gap_threshold:
        found.append(
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
    return found


def inconclusive_finding(m: MemorizationMeasurement) -> Finding:
    """Why a run that the clock or a blown-up loss ended says nothing about capacity."""
    stopped = inconclusive_run(m)
    assert stopped is not None
    opts = m.opts
    epochs = len(stopped.train_accuracy)
    accuracy = stopped.final_train_accuracy or 0.0
    if stopped.stopped_by == "time":
        why = (
            f"{stopped.name} stopped after {epochs} of {opts.max_epochs} epochs, at "
            f"{accuracy:.0%} training accuracy, because it ran past the {opts.time_limit_s:g} s "
            "safety limit; whether the copy fits random labels within the epoch budget then "
            "depends on how busy this machine was, not on the architecture"
        )
        action = (
            "rerun on a less loaded machine or raise the safety limit, e.g. --set "
            f"memorization.time_limit_s={10 * opts.time_limit_s:g}"
        )
    else:
        why = (
            f"{stopped.name} hit a non-finite loss after {epochs} epochs at learning rate "
            f"{opts.learning_rate:g}; a run that blew up says nothing about capacity"
        )
        action = "rerun with a smaller --set memorization.learning_rate"
    return Finding("warning", INCONCLUSIVE[stopped.stopped_by], why=why, action=action)


def _chance_tolerance(chance: float, n_held: int, n_labels: int | None = None) -> float:
    """How far from chance a held-out accuracy may sit by sampling noise (3 standard errors)
    plus slack for uneven predictions.

    Two draws make the noise: the held-out examples (``n_held``) and, for a model trained on
    random labels, the ``n_labels`` random labels themselves: a function fitted to 256 coin
    flips agrees with the true labels by chance on a few percent more or less of *every*
    held-out example (a random forest re-fitted on 256 random labels scored 39-67 % on 944
    held-out rows of a 52/48 table over 20 draws). Without ``n_labels`` only the first counts.
    """
    variance = 1 / max(n_held, 1) + (1 / max(n_labels, 1) if n_labels else 0.0)
    return 0.05 + 3 * math.sqrt(chance * (1 - chance) * variance)


def learns_without_reaching_target(run: LevelRun, chance: float, n_held: int) -> bool:
    """The recipe works, but the labels are not separable to the target by this architecture.

    A noisy table (two applicants with the same features, different outcomes) cannot be fitted
    to 95 % without memorizing its noise; the true-label run then stops by its epochs at about
    its held-out accuracy. It still shows the recipe trains: held-out accuracy clearly above
    chance, and training accuracy at least as high. The random-label run is then this
    architecture's own limit, not a broken recipe's.
    """
    held = run.held_out_accuracy
    return (
        run.epochs_to_target is None
        and run.stopped_by == "epochs"
        and held is not None
        and held > chance + _chance_tolerance(chance, n_held)
        and run.final_train_accuracy >= held
    )


def refitted(m: MemorizationMeasurement) -> bool:
    """A scikit-learn estimator's test: clones re-fitted once per level, no epochs."""
    return str(m.reinitialization.get("method", "")).startswith("sklearn.base.clone")


def _fits_true_labels(run: LevelRun, chance: float, n_held: int, refit: bool = False) -> Check:
    numbers = {"epochs": run.epochs_to_target, "train_accuracy": run.final_train_accuracy,
               "held_out_accuracy": run.held_out_accuracy}
    if run.epochs_to_target is not None:
        how = ("a clone re-fitted on the true labels reaches "
               f"{run.final_train_accuracy:.1%} training accuracy" if refit else
               f"the fixed recipe fits the true labels in {run.epochs_to_target} epochs")
        return Check("fits_true_labels", "passed", how, numbers)
    who, model = ("a re-fitted clone", "this estimator") if refit else (
        "the fixed recipe", "this architecture")
    stopped = "one fit" if refit else STOPPED_BY.get(run.stopped_by, run.stopped_by)
    if learns_without_reaching_target(run, chance, n_held):
        return Check(
            "fits_true_labels", "passed",
            f"{who} learns the true labels ({run.final_train_accuracy:.1%} train, "
            f"{run.held_out_accuracy:.1%} held out vs chance {chance:.1%}) without reaching the "
            f"target: {model} cannot fit them further without memorizing, so the "
            "random-label result is its own limit",
            numbers)
    return Check(
        "fits_true_labels", "warned",
        f"{who} reached only {run.final_train_accuracy:.1%} on the true labels "
        f"({stopped}), and that is not clearly learning "
        f"(held out {_pct_or_none(run.held_out_accuracy)} vs chance {chance:.1%}); the "
        "random-label result is inconclusive",
        numbers)


def _pct_or_none(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1%}"


def inconclusive_run(m: MemorizationMeasurement) -> LevelRun | None:
    """The p = 1 (else p = 0) run that stopped for a reason other than its target or epochs."""
    for run in (m.random_run, m.true_run):
        if run is not None and run.stopped_by in INCONCLUSIVE:
            return run
    return None


def fit_epochs(run: LevelRun) -> int | str:
    if run.epochs_to_target is not None:
        return run.epochs_to_target
    if run.stopped_by == "time":
        return "not reached (time limit)"
    if run.stopped_by == "diverged":
        return "not reached (diverged)"
    return "not reached"


def status(checks: list[Check], findings: list[Finding]) -> str:
    """The worst check decides; a warning finding alone is enough to warn."""
    if any(c.status == "failed" for c in checks):
        return "failed"
    if any(c.status == "warned" for c in checks) or any(f.severity != "info" for f in findings):
        return "warned"
    return "passed"
