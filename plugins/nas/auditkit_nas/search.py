"""The search: an Optuna multi-objective study whose children are trained, then audited.

One *worker* asks the study for a trial, draws an architecture, trains it with the fixed recipe,
audits it with the probes the objectives need (``fast`` budget, on a validation split carved out
of the training data), and tells the study the objective values. Resume and several workers come
from the study's storage (an SQLite file in ``--out`` by default): a rerun counts the trials that
already finished and only runs the rest. After the workers stop, ``finish`` writes ``nas.json``,
saves the Pareto models as self-describing files, writes the full scorecard of the chosen model
and ``nas_report.html`` (``run.run_search`` calls both).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit.data import AuditData, load_data
from auditkit.errors import AuditkitInputError, one_line
from auditkit_nas.objectives import Objective, parse_objectives, scalarize
from auditkit_nas.space import SearchSpace, architecture, build, count_parameters, search_space

STRATEGIES = ("random", "nsga2", "controller")
STUDY_NAME = "auditkit-nas"
VALIDATION_FRACTION = 0.2
AUDIT_FRACTION = 0.3  # only for data without an attached training split
#: Settings that define the search; a rerun with other values would mix two searches.
IDENTITY = ("data", "target", "sensitive", "strategy", "objectives", "seed", "epochs", "lr",
            "batch_size", "max_train")


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs (picklable: workers are separate processes)."""

    data: str
    out: str
    trials: int
    strategy: str = "random"
    objectives: tuple[str, ...] = ("accuracy", "adversarial.robust_accuracy", "calibration.ece")
    minutes: float | None = None
    workers: int = 1
    seed: int = 0
    epochs: int = 10
    lr: float = 3e-3
    batch_size: int = 64
    max_train: int | None = None
    target: str | None = None
    sensitive: tuple[str, ...] = ()
    storage: str | None = None
    final_budget: str = "fast"
    final_probes: tuple[str, ...] | None = None
    controller_lr: float = 0.05
    quiet: bool = False

    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{Path(self.out).resolve() / 'nas.db'}"

    def identity(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(d[k]) if isinstance(d[k], tuple) else d[k] for k in IDENTITY}


def validate(settings: Settings) -> list[Objective]:
    """Every check that needs no training; raises ``AuditkitInputError`` (one line, exit 2)."""
    if settings.strategy not in STRATEGIES:
        raise AuditkitInputError(
            f"--strategy {settings.strategy}: unknown; use one of {', '.join(STRATEGIES)}"
        )
    for flag, value, low in (("--trials", settings.trials, 1), ("--workers", settings.workers, 1),
                             ("--epochs", settings.epochs, 1), ("--batch-size", settings.batch_size, 1)):
        if value < low:
            raise AuditkitInputError(f"{flag} {value}: use a whole number >= {low}")
    if settings.seed < 0:
        raise AuditkitInputError(f"--seed {settings.seed}: use a whole number >= 0")
    if settings.minutes is not None and not settings.minutes > 0:
        raise AuditkitInputError(f"--minutes {settings.minutes}: use a positive number")
    if not settings.lr > 0:
        raise AuditkitInputError(f"--lr {settings.lr}: use a positive number")
    if settings.max_train is not None and settings.max_train < 10:
        raise AuditkitInputError(f"--max-train {settings.max_train}: use at least 10 examples")
    from auditkit.probes.base import check_budget

    check_budget(settings.final_budget)
    return parse_objectives(settings.objectives)


# --- data ------------------------------------------------------------------------------------


@dataclass
class SearchData:
    """Children train on ``train`` and are audited on ``valid``; the chosen model on ``audit``."""

    train: AuditData
    valid: AuditData
    audit: AuditData
    pool: AuditData  # train + valid: what the chosen model's scorecard compares against


def subset(data: AuditData, index: np.ndarray, name: str) -> AuditData:
    index = np.sort(np.asarray(index, dtype=np.int64))
    return AuditData(
        name=name,
        x=data.x[index],
        y=data.y[index],
        groups={k: v[index] for k, v in data.groups.items()},
        class_names=data.class_names,
        modality=data.modality,
        input_range=data.input_range,
        synthetic=data.synthetic,
        description=data.description,
        source=data.source,
        feature_names=data.feature_names,
    )


def prepare_data(settings: Settings) -> SearchData:
    audit = load_data(settings.data, target=settings.target, sensitive=list(settings.sensitive) or None)
    rng = np.random.default_rng(settings.seed)
    pool = audit.train
    if pool is None:
        # A file without a training split: hold out a fixed share for the final scorecard.
        perm = rng.permutation(len(audit))
        n_audit = max(1, int(round(len(audit) * AUDIT_FRACTION)))
        pool = subset(audit, perm[n_audit:], f"{audit.name}-train")
        audit = subset(audit, perm[:n_audit], audit.name)
    perm = rng.permutation(len(pool))
    n_valid = max(2, int(round(len(pool) * VALIDATION_FRACTION)))
    valid_idx, train_idx = perm[:n_valid], perm[n_valid:]
    if settings.max_train is not None:
        train_idx = train_idx[: settings.max_train]
        valid_idx = valid_idx[: max(10, settings.max_train // 4)]
    if len(train_idx) < 2:
        raise AuditkitInputError(f"--data {settings.data}: too few examples to train and validate")
    return SearchData(
        train=subset(pool, train_idx, f"{audit.name}-nas-train"),
        valid=subset(pool, valid_idx, f"{audit.name}-nas-validation"),
        audit=audit,
        pool=pool,
    )


def metadata_for(data: AuditData, extra: dict[str, Any] | None = None) -> Any:
    from auditkit.data.loaders import builtin_datasets
    from auditkit.loading import ModelMetadata

    dataset = data.source.split(":", 1)[1].split(" ")[0] if data.source.startswith("builtin:") else None
    return ModelMetadata(
        input_shape=tuple(data.input_shape),
        input_range=data.input_range,
        class_names=tuple(data.class_names) if data.class_names else None,
        dataset=dataset if dataset in builtin_datasets() else None,
        modality=data.modality,
        extra=extra or {},
    )


# --- one child -------------------------------------------------------------------------------


def train_child(model: nn.Module, data: AuditData, settings: Settings, seed: int) -> nn.Module:
    """The fixed recipe: Adam, cross-entropy, ``epochs`` passes, deterministic for a seed."""
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, weight_decay=1e-4)
    model.train()
    n = len(data)
    for _ in range(settings.epochs):
        order = torch.randperm(n, generator=generator)
        for start in range(0, n, settings.batch_size):
            idx = order[start : start + settings.batch_size]
            if len(idx) < 2 and n > 1:
                continue  # batch norm needs two examples
            optimizer.zero_grad(set_to_none=True)
            loss = nn.functional.cross_entropy(model(data.x[idx]), data.y[idx])
            if not torch.isfinite(loss):
                raise RuntimeError("training diverged (non-finite loss)")
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def make_child(arch: dict[str, Any], data: SearchData, settings: Settings, number: int) -> nn.Module:
    torch.manual_seed(settings.seed * 100_003 + number)  # initial weights: same trial, same net
    model = build(arch)
    model.standardize.fit(data.train.x)
    return train_child(model, data.train, settings, seed=settings.seed * 100_003 + number)


def audit_child(
    model: nn.Module, data: AuditData, objectives: Sequence[Objective], seed: int
) -> dict[str, float]:
    """A ``fast`` audit with only the probes the objectives need; one value per objective."""
    import auditkit

    probes = list(dict.fromkeys(o.probe for o in objectives))
    result = auditkit.scan(
        model, data, probes=probes, budget="fast", seed=seed, device="cpu",
        metadata=metadata_for(data),
    )
    values: dict[str, float] = {}
    for o in objectives:
        probe = result.probes.get(o.probe)
        if probe is None or probe.status in ("error", "skipped"):
            why = (probe.error or probe.skip_reason if probe is not None else None) or "did not run"
            raise RuntimeError(f"probe {o.probe} {getattr(probe, 'status', 'missing')}: {one_line(why)}")
        value = probe.metrics.get(o.metric)
        if value is None or not math.isfinite(float(value)):
            raise RuntimeError(f"{o.name} was not measured on this data")
        values[o.name] = float(value)
    return values


def weights_path(out: Path, number: int) -> Path:
    return out / "children" / f"trial-{number:04d}.safetensors"


# --- workers ---------------------------------------------------------------------------------


def make_sampler(settings: Settings, space: SearchSpace, objectives: Sequence[Objective], salt: int) -> Any:
    import optuna

    # Every worker and every rerun draws its own stream (a rerun must not redraw the first run).
    seed = int(np.random.SeedSequence([settings.seed, salt]).generate_state(1)[0])
    if settings.strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if settings.strategy == "nsga2":
        # Optuna's default population (50) would leave a small search entirely random.
        population = max(4, min(50, settings.trials // 3))
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=population)
    from auditkit_nas.controller import ControllerSampler

    def reward(trial: Any) -> float | None:
        return trial_reward(trial, objectives)

    # The controller replays the study's history, so its seed must not depend on the worker.
    return ControllerSampler(space.distributions(), reward=reward, seed=settings.seed, lr=settings.controller_lr)


def trial_reward(trial: Any, objectives: Sequence[Objective]) -> float | None:
    values = trial.values
    if values is None or len(values) != len(objectives):
        return None
    return scalarize(values, objectives)


def open_study(settings: Settings, objectives: Sequence[Objective], sampler: Any = None) -> Any:
    import optuna
    from optuna.storages import RDBStorage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    url = settings.storage_url()
    # SQLite serializes writers; a generous busy timeout lets several workers share the file.
    kwargs = {"connect_args": {"timeout": 120}} if url.startswith("sqlite") else {}
    storage = RDBStorage(url, engine_kwargs=kwargs)
    study = optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        sampler=sampler,
        directions=[o.optuna_direction for o in objectives],
        load_if_exists=True,
    )
    return study


def check_same_search(study: Any, settings: Settings) -> None:
    """A rerun must continue the same search: refuse a different one in the same storage."""
    stored = study.user_attrs.get("settings")
    current = settings.identity()
    if stored is None:
        study.set_user_attr("settings", current)
        return
    changed = [k for k in IDENTITY if stored.get(k) != current.get(k)]
    if changed:
        k = changed[0]
        raise AuditkitInputError(
            f"--out {settings.out}: holds a search with {k}={stored.get(k)!r}, not {current.get(k)!r}; "
            "rerun with the same settings to resume it, or pick a new --out"
        )


def _here() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# A live worker writes its ``worker`` attribute right after asking for a trial: milliseconds,
# or up to SQLite's busy timeout (120 s, ``open_study``) on a contended file. Older than this,
# an unnamed RUNNING trial on a shared ``--storage`` is an orphan.
ORPHAN_AFTER_SECONDS = 600


def mark_interrupted(study: Any, settings: Settings) -> int:
    """Fail the RUNNING trials of dead processes (a killed run leaves them); returns how many.

    A trial names its worker right after it is asked for, inside the claim lock. A process killed
    in between leaves a RUNNING trial with no worker: holding the lock, no live worker can be in
    that gap, so such a trial is an orphan when every writer shares this lock (the default SQLite
    study in ``--out``). With a ``--storage`` shared by several machines it is one once it is older
    than ``ORPHAN_AFTER_SECONDS``. Takes the claim lock: never call it while holding it (flock
    is per open file, so a second ``claim_lock`` in the same process would wait forever).
    """
    import datetime

    from optuna.trial import TrialState

    host, count = socket.gethostname(), 0
    now = datetime.datetime.now()
    with claim_lock(Path(settings.out)):
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = trial.user_attrs.get("worker")
            if worker is None:
                started = trial.datetime_start or now
                dead = settings.storage is None or (now - started).total_seconds() > ORPHAN_AFTER_SECONDS
            else:
                dead = worker.get("host") == host and not _alive(int(worker.get("pid", -1)))
            if dead:
                study._storage.set_trial_user_attr(trial._trial_id, "interrupted", True)
                study.tell(trial.number, state=TrialState.FAIL)
                count += 1
    return count


def counted(study: Any) -> int:
    """Trials that use up the budget: finished ones (complete, or failed on their own) and live ones."""
    from optuna.trial import TrialState

    n = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state in (TrialState.COMPLETE, TrialState.RUNNING, TrialState.WAITING):
            n += 1
        elif trial.state == TrialState.FAIL and not trial.user_attrs.get("interrupted"):
            n += 1
    return n


@contextlib.contextmanager
def claim_lock(out: Path) -> Iterator[None]:
    """Serializes "count, then ask" among this machine's workers: no trial beyond ``--trials``."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".nas.lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def log(settings: Settings, message: str) -> None:
    if not settings.quiet:
        print(f"nas: {message}", file=sys.stderr, flush=True)


def run_worker(settings: Settings, index: int, deadline: float | None) -> int:
    """Ask, train, audit, tell — until the study holds ``--trials`` trials or time is up.

    Ctrl-C is not caught here: a storage write from the handler could wait on the very
    transaction the interrupt cut short. The trial stays RUNNING in the storage and the next run
    marks it interrupted (its process is gone), exactly as after a crash.
    """
    from optuna.trial import TrialState

    threads = max(1, (os.cpu_count() or 1) // settings.workers)
    torch.set_num_threads(threads)
    objectives = parse_objectives(settings.objectives)
    data = prepare_data(settings)
    space = search_space(data.train.modality)
    out = Path(settings.out)
    done = 0
    with claim_lock(out):
        salt = index * 1_000_003 + len(open_study(settings, objectives).trials)
    study = open_study(settings, objectives, make_sampler(settings, space, objectives, salt))
    while deadline is None or time.time() < deadline:
        with claim_lock(out):
            if counted(study) >= settings.trials:
                break
            trial = study.ask()
            trial.set_user_attr("worker", {**_here(), "index": index})
        started = time.perf_counter()
        try:
            params = space.suggest(trial)
            arch = architecture(params, data.train.input_shape, data.train.num_classes)
            trial.set_user_attr("architecture", arch)
            model = make_child(arch, data, settings, trial.number)
            trial.set_user_attr("parameters", count_parameters(model))
            values = audit_child(model, data.valid, objectives, settings.seed)
            weights = weights_path(out, trial.number)
            weights.parent.mkdir(parents=True, exist_ok=True)
            from safetensors.torch import save_file

            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
        except Exception as exc:  # a child that fails is a failed trial, not a crash
            trial.set_user_attr("error", f"{type(exc).__name__}: {one_line(exc)}")
            trial.set_user_attr("seconds", time.perf_counter() - started)
            study.tell(trial, state=TrialState.FAIL)
            log(settings, f"trial {trial.number} failed: {one_line(exc)}")
            continue
        seconds = time.perf_counter() - started
        trial.set_user_attr("seconds", seconds)
        trial.set_user_attr("reward", scalarize([values[o.name] for o in objectives], objectives))
        study.tell(trial, [values[o.name] for o in objectives])
        done += 1
        shown = ", ".join(f"{k}={v:.3f}" for k, v in values.items())
        log(settings, f"trial {trial.number}: {shown} ({seconds:.1f} s)")
    return done


def _worker_entry(settings: Settings, index: int, deadline: float | None) -> None:
    try:
        run_worker(settings, index, deadline)
    except KeyboardInterrupt:
        pass


# --- summary ---------------------------------------------------------------------------------


__all__ = ["STRATEGIES", "Settings"]
