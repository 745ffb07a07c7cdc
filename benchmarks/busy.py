"""Run a command beside a job that keeps K CPU threads busy: the suite must pass on a busy machine.

A test that reads the machine's speed passes on an idle laptop and fails on a shared CI runner.
This runs any command (by default the test suite) while K other processes spin a core each, so
such a test fails here first::

    python benchmarks/busy.py                       # pytest -q beside 2 busy threads
    python benchmarks/busy.py --threads 1 -- python -m pytest -q tests/test_sizing.py
    make test-busy

The busy processes are plain Python loops (no torch, no memory to speak of), started before the
command and killed when it ends, whatever its exit code, which is this script's exit code. A
SIGTERM or Ctrl-C to this script ends the command and the busy loops too.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time

_SPIN = "while True: pass"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, metavar="K",
                        help="busy processes beside the command (default 2: both cores of a "
                             "2-core machine)")
    parser.add_argument("command", nargs="*", help="the command (after --); default: pytest -q")
    args = parser.parse_args(argv)
    command = args.command or [sys.executable, "-m", "pytest", "-q"]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # so that `finally` runs
    busy = [subprocess.Popen([sys.executable, "-c", _SPIN]) for _ in range(max(0, args.threads))]
    started = time.monotonic()
    run = None
    try:
        run = subprocess.Popen(command)
        code = run.wait()
    finally:
        for job in [*busy, *([run] if run is not None and run.poll() is None else [])]:
            job.kill()
            job.wait()
    minutes, seconds = divmod(round(time.monotonic() - started), 60)
    print(f"busy.py: {' '.join(command)} exited {code} after {minutes} min {seconds:02d} s "
          f"beside {args.threads} busy thread(s)", file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
