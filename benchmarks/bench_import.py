"""How long a command takes before it does anything: `auditkit --version`, `--help`, imports.

Every command first imports auditkit.cli; whatever that pulls in (torch, above all) is paid by
`--version` and every `--help` too. Printed as JSON: the median wall time of each command over
``--repeats`` fresh processes, and the modules with the largest cumulative import time in
``python -X importtime -c "import auditkit.cli"``. A benchmark, not a test: the numbers depend
on the machine and its load (say both when quoting them)::

    python benchmarks/bench_import.py
    python benchmarks/bench_import.py --repeats 5 --top 15
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "auditkit --version": ["--version"],
    "auditkit --help": ["--help"],
    "auditkit scan --help": ["scan", "--help"],
}


def _auditkit() -> list[str]:
    script = Path(sys.executable).with_name("auditkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "auditkit"]


def wall_seconds(argv: list[str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True, env={**os.environ, "COLUMNS": "80"})
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def import_times(module: str, top: int) -> list[dict]:
    """The ``top`` modules by cumulative import time (µs, as -X importtime reports them)."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                          capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        # "import time:   self [us] | cumulative | imported package"
        self_us, cumulative_us, name = line.removeprefix("import time:").split("|", 2)
        rows.append({"module": name.strip(), "cumulative_ms": int(cumulative_us) / 1000,
                     "self_ms": int(self_us) / 1000})
    rows.sort(key=lambda row: row["cumulative_ms"], reverse=True)
    return rows[:top]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args(argv)
    base = _auditkit()
    result = {
        "seconds": {name: round(wall_seconds([*base, *extra], args.repeats), 3)
                    for name, extra in COMMANDS.items()},
        "target_seconds": 0.5,
        "importtime_top": import_times("auditkit.cli", args.top),
        "load_average": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
    }
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
