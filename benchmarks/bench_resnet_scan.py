"""Whole `--budget fast` scans of ResNet-18 at 32×32 and ResNet-50 at 224×224 (60 images each).

Random weights and random data (torchvision architectures, nothing downloaded), seeded; the last
layer is fitted to the data's labels so the model is accurate and every probe has work. Prints
one JSON object per model: wall time of the whole scan, each probe's seconds and status, the
sizing plan's summary and peak resident memory; with ``--compare-unsized`` the same scan without
the clock-sized plan runs in the same process for a side-by-side ratio. Targets (issue #16, 2 CPU
cores): ResNet-18 ≤ 90 s, ResNet-50 ≤ 3 min for the whole scan.

    python benchmarks/bench_resnet_scan.py                       # both models
    python benchmarks/bench_resnet_scan.py --busy 2              # beside a job holding 2 cores
    python benchmarks/bench_resnet_scan.py --models resnet18 --budget fast --device cpu
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import time

import torch

SHAPES = {"resnet18": (3, 32, 32), "resnet50": (3, 224, 224)}


def peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024 if sys.platform != "darwin" else kb / 2**20


def accurate_resnet(name: str, *, n: int = 60, seed: int = 0, classes: int = 10):
    """A random-weight torchvision ResNet whose last layer is fitted (least squares on its
    features) to balanced labels of ``n`` random images: 100% accurate on them, so every
    probe has its full work (a model at chance is not attacked, and a random ResNet-50
    predicts one class for every image). Returns ``(model, x, y)``."""
    import torchvision

    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None, num_classes=classes).eval()
    x = torch.rand(n, *SHAPES[name], generator=torch.Generator().manual_seed(seed))
    y = torch.arange(n) % classes
    features = []
    hook = model.fc.register_forward_hook(lambda m, i, o: features.append(i[0]))
    with torch.inference_mode():
        for start in range(0, n, 16):
            model(x[start : start + 16])
    hook.remove()
    f = torch.cat(features)
    mu, sd = f.mean(0), f.std(0) + 1e-6
    design = torch.cat([(f - mu) / sd, torch.ones(n, 1)], dim=1)
    target = torch.nn.functional.one_hot(y, classes).float() * classes - 1
    solution = torch.linalg.lstsq(design, target).solution
    weight = solution[:-1].T / sd
    with torch.no_grad():
        model.fc.weight.copy_(weight)
        model.fc.bias.copy_(solution[-1] - weight @ mu)
    return model, x, y


def scan_once(name: str, *, n: int, budget: str, device: str, seed: int, sized: bool,
              max_minutes: float | None) -> dict:
    import auditkit
    from auditkit.adapters.base import ModelAdapter  # noqa: F401  (import cost outside timing)

    model, x, y = accurate_resnet(name, n=n, seed=seed)
    shape = SHAPES[name]
    started = time.perf_counter()
    result = auditkit.scan(model, (x, y), budget=budget, device=device, seed=seed,
                           size_to_clock=sized, max_minutes=max_minutes)
    wall = time.perf_counter() - started
    sizing = result.settings.get("sizing") or {}
    return {
        "model": name,
        "input_shape": list(shape),
        "n": n,
        "budget": budget,
        "sized_to_clock": sized,
        "scan_seconds": round(wall, 2),
        "probe_seconds": {k: p.seconds for k, p in result.probes.items()},
        "status": {k: p.status for k, p in result.probes.items()},
        "memorization_stopped_by": [
            r.get("stopped_by") for r in (result.probes["memorization"].details or {}).get(
                "levels", [])
        ] if "memorization" in result.probes else None,
        "sizing": sizing.get("summary"),
        "estimated_seconds": sizing.get("estimated_seconds"),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "load_average": list(__import__("os").getloadavg()),
        # The threads the scan ran on (the plan may switch to 1 on busy cores; torch's setting
        # is restored afterwards).
        "threads": (sizing.get("threads") or {}).get("threads", torch.get_num_threads()),
    }


#: Another job on the same cores: a training-like torch matmul loop on K threads.
_COMPETITOR = (
    "import sys, torch\n"
    "torch.set_num_threads(int(sys.argv[1]))\n"
    "a = torch.randn(1024, 1024)\n"
    "print('ready', flush=True)\n"
    "while True:\n"
    "    a = torch.tanh(a @ a / 32)\n"
)


@contextlib.contextmanager
def competing_job(threads: int):
    """Run the scans beside another job holding ``threads`` cores (0: an idle machine)."""
    if threads <= 0:
        yield
        return
    job = subprocess.Popen([sys.executable, "-c", _COMPETITOR, str(threads)],
                           stdout=subprocess.PIPE, text=True)
    try:
        job.stdout.readline()  # torch imported: it is about to take the cores
        time.sleep(1)
        yield
    finally:
        job.kill()
        job.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--n", type=int, default=60)
    parser.add_argument("--budget", default="fast")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-minutes", type=float, default=None)
    parser.add_argument("--compare-unsized", action="store_true")
    parser.add_argument("--busy", type=int, default=0, metavar="K",
                        help="run beside another job: a K-thread torch matmul loop (2 holds "
                             "both cores of a 2-core machine)")
    args = parser.parse_args(argv)
    with competing_job(args.busy):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    rows = []
    for name in args.models.split(","):
        row = scan_once(name, n=args.n, budget=args.budget, device=args.device, seed=args.seed,
                        sized=True, max_minutes=args.max_minutes)
        if args.compare_unsized:
            plain = scan_once(name, n=args.n, budget=args.budget, device=args.device,
                              seed=args.seed, sized=False, max_minutes=None)
            row["unsized"] = plain
            row["unsized_over_sized"] = round(plain["scan_seconds"] / row["scan_seconds"], 2)
        row["busy_threads"] = args.busy
        rows.append(row)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
