"""``auditkit generate nas ...``: parse flags, run the search, exit code.

Exit codes follow auditkit's: 0 a Pareto front was found, 2 bad input (one line), 3 no child
finished (every trial failed; nas.json says why).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from auditkit.errors import AuditkitInputError, one_line

EXIT_OK, EXIT_BAD_INPUT, EXIT_NO_FRONT = 0, 2, 3


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors become auditkit's one line
        raise AuditkitInputError(f"generate nas: {message}")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="auditkit generate nas",
        description="Architecture search whose reward is the audit: children are trained, "
        "audited (fast budget) and the result is a Pareto front of audited models.",
    )
    p.add_argument("--data", required=True, help="digits | credit | a file (.npz/.pt/CSV/parquet/image folder)")
    p.add_argument("--trials", type=int, required=True, help="trials in total (a rerun runs only the missing ones)")
    p.add_argument("--strategy", default="random", help="random | nsga2 | controller (default: random)")
    p.add_argument("--objectives", default="accuracy,adversarial.robust_accuracy,calibration.ece",
                   help="audit.json metric names, comma-separated; better side from each probe's declaration")
    p.add_argument("--out", default="nas-out", help="output folder; holds the study (rerun to resume)")
    p.add_argument("--minutes", type=float, default=None, help="no new trial starts after this wall time")
    p.add_argument("--workers", type=int, default=1, help="processes working on the one study")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=10, help="training epochs per child (the fixed recipe)")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate per child")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--max-train", type=int, default=None, help="train children on at most this many examples")
    p.add_argument("--target", default=None, help="label column of a CSV/parquet")
    p.add_argument("--sensitive", default=None, help="sensitive columns, comma-separated (bias objectives)")
    p.add_argument("--storage", default=None,
                   help="Optuna storage URL shared by several machines (default: SQLite in --out)")
    p.add_argument("--final-budget", default="fast", help="budget of the chosen model's full scorecard")
    p.add_argument("--final-probes", default=None, help="probes of the scorecard (default: all)")
    p.add_argument("--controller-lr", type=float, default=0.05, help="controller's Adam learning rate")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``auditkit.generators`` group: ``fn(argv) -> exit code``."""
    from auditkit_nas.run import run_search
    from auditkit_nas.search import Settings

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            args = parser().parse_args(argv)
        except SystemExit as exc:  # -h printed the help (`--help` is auditkit's own)
            return int(exc.code or 0)
        settings = Settings(
            data=args.data, out=args.out, trials=args.trials, strategy=args.strategy,
            objectives=tuple(n.strip() for n in args.objectives.split(",") if n.strip()),
            minutes=args.minutes, workers=args.workers, seed=args.seed, epochs=args.epochs,
            lr=args.lr, batch_size=args.batch_size, max_train=args.max_train, target=args.target,
            sensitive=tuple(s.strip() for s in (args.sensitive or "").split(",") if s.strip()),
            storage=args.storage, final_budget=args.final_budget,
            final_probes=tuple(s.strip() for s in args.final_probes.split(",")) if args.final_probes else None,
            controller_lr=args.controller_lr, quiet=args.quiet,
        )
        document = run_search(settings)
    except AuditkitInputError as exc:
        print(f"auditkit: error: {one_line(exc, 4000)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("auditkit: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    if not document["pareto_front"]:
        print("auditkit: no child finished; nas.json lists why each trial failed", file=sys.stderr)
        return EXIT_NO_FRONT
    print(f"{settings.out}/nas_report.html")
    return EXIT_OK
