"""Whole scan at N and 10·N examples, side by side: seconds per probe and peak memory.

Digits resampled (seeded, with replacement) to N and 10·N examples, the demo CNN with random
weights, ``--budget fast`` by default. Each size runs in its own process (peak resident memory
is per process) and the parent prints one JSON object with both runs and the 10·N / N ratios.
Expected: every probe's time grows at most linearly (ratio ≤ ~10; the probes that cap their
examples stay flat) and peak memory stays flat.

    python benchmarks/bench_scan_scaling.py                  # N = 1,797 (digits) and 17,970
    python benchmarks/bench_scan_scaling.py --n 540 --budget standard
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time


def one(n: int, budget: str, seed: int, sized: bool) -> dict:
    import numpy as np
    import torch

    import auditkit
    from auditkit.data.builtin import digits
    from auditkit.demo import DIGITS_MEAN, DIGITS_STD, DigitsCNN
    from auditkit.loading import ModelMetadata

    torch.manual_seed(seed)
    base = digits()
    index = torch.as_tensor(np.random.default_rng(seed).choice(len(base), size=n, replace=True))
    x, y = base.x[index], base.y[index]
    meta = ModelMetadata(input_shape=(1, 8, 8), input_range=(0.0, 1.0), mean=DIGITS_MEAN,
                         std=DIGITS_STD)
    started = time.perf_counter()
    result = auditkit.scan(DigitsCNN(), (x, y), budget=budget, seed=seed, device="cpu",
                           metadata=meta, size_to_clock=sized)
    return {
        "n": n,
        "scan_seconds": round(time.perf_counter() - started, 2),
        "probe_seconds": {k: p.seconds for k, p in result.probes.items()},
        "status": {k: p.status for k, p in result.probes.items()},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1797)
    parser.add_argument("--factor", type=int, default=10)
    parser.add_argument("--budget", default="fast")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-sizing", action="store_true")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        print(json.dumps(one(args.one, args.budget, args.seed, not args.no_sizing)))
        return 0
    runs = []
    for n in (args.n, args.n * args.factor):
        cmd = [sys.executable, __file__, "--one", str(n), "--budget", args.budget,
               "--seed", str(args.seed)] + (["--no-sizing"] if args.no_sizing else [])
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        runs.append(json.loads(out.strip().splitlines()[-1]))
    small, large = runs
    print(json.dumps({
        "benchmark": "scan_scaling",
        "budget": args.budget,
        "runs": runs,
        "time_ratio": {k: round(large["probe_seconds"][k] / max(v, 1e-3), 2)
                       for k, v in small["probe_seconds"].items()},
        "scan_time_ratio": round(large["scan_seconds"] / small["scan_seconds"], 2),
        "memory_ratio": round(large["peak_rss_mb"] / small["peak_rss_mb"], 2),
        "examples_ratio": args.factor,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
