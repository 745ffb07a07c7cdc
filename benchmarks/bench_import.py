"""How long the command line takes before it does anything: ``--version``, every ``--help``,
and a flag error, each in a fresh interpreter; plus ``python -X importtime`` of the CLI module.

The CLI must not import torch, numpy or pandas to print its version, its help or a flag error
(issue 26: under 0.5 s on an idle machine). Printed as JSON; exit 1 when ``--version`` (median)
exceeds ``--limit`` seconds or a heavy module was imported.

    python benchmarks/bench_import.py [--repeat 5] [--limit 0.5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "--version": ["--version"],
    "--help": ["--help"],
    "scan --help": ["scan", "--help"],
    "demo --help": ["demo", "--help"],
    "report --help": ["report", "--help"],
    "diff --help": ["diff", "--help"],
    "probes --help": ["probes", "--help"],
    "generate --help": ["generate", "--help"],
    "scan bad --set": ["scan", "model.pt2", "--set", "adversarial"],
}
HEAVY = ("torch", "numpy", "pandas")


def wall(args: list[str], repeat: int) -> float:
    """Median seconds of ``python -m auditkit ARGS`` (fresh interpreter each time)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "auditkit", *args], capture_output=True, check=False)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def importtime() -> tuple[float, list[tuple[str, float]], list[str]]:
    """Total seconds importing ``auditkit.cli``, its slowest imports, the heavy ones present."""
    code = f"import sys, auditkit.cli; print([m for m in {HEAVY!r} if m in sys.modules])"
    proc = subprocess.run([sys.executable, "-X", "importtime", "-c", code],
                          capture_output=True, text=True, check=True)
    rows = []
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (p.strip() for p in line[len("import time:"):].split("|"))
            if cumulative.isdigit():
                rows.append((name, int(cumulative) / 1e6))
    total = next((s for n, s in rows if n == "auditkit.cli"), 0.0)
    slowest = sorted(rows, key=lambda r: -r[1])[:8]
    return total, slowest, eval(proc.stdout.strip())  # noqa: S307 - our own printed list


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--limit", type=float, default=0.5)
    args = parser.parse_args()
    total, slowest, heavy = importtime()
    seconds = {name: round(wall(cmd, args.repeat), 3) for name, cmd in COMMANDS.items()}
    print(json.dumps({
        "seconds_median": seconds,
        "import_auditkit_cli_s": round(total, 3),
        "slowest_imports_s": {n: round(s, 3) for n, s in slowest},
        "heavy_modules_imported": heavy,
    }, indent=1))
    return 0 if seconds["--version"] <= args.limit and not heavy else 1


if __name__ == "__main__":
    sys.exit(main())
