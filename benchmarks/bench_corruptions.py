"""The corruptions probe's time per example per corruption, on the CPU and (when there is one)
the GPU.

Two numbers per device:

- ``transform``: the corruption alone (severity 3, one batch), per example, for each image
  corruption at 8 px grey (digits), 32 px and 224 px RGB (a seeded random batch);
- ``probe``: the whole probe (corruptions, forward passes, tallies) per example per corruption
  per severity, on the demo CNN over digits, and on an untrained torchvision ResNet-18 over
  random 32 px (CPU) or 224 px (GPU) images (no weights are downloaded).

Printed as JSON lines; each timing is the best of ``--repeats`` runs. Run with one thread for
numbers comparable with the CI machine::

    OMP_NUM_THREADS=1 python benchmarks/bench_corruptions.py [--device cpu|cuda|all]
"""

from __future__ import annotations

import argparse
import json
import time

import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _best(fn, device: str, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return best


def transform_rows(device: str, repeats: int) -> list[dict]:
    from auditkit.probes.corruptions.catalog import IMAGE, corrupt_image

    rows = []
    for channels, side, batch in ((1, 8, 256), (3, 32, 256), (3, 224, 32)):
        x = torch.rand(batch, channels, side, side, generator=torch.Generator().manual_seed(0))
        x = x.to(device)
        for name, corruption in IMAGE.items():
            if corruption.min_side > side:
                continue

            def run(name: str = name, x: torch.Tensor = x) -> None:
                corrupt_image(x, name, 3, torch.Generator().manual_seed(1))

            run()  # warm-up (kernels, cuDNN plans)
            seconds = _best(run, device, repeats)
            rows.append({"benchmark": "corruption_transform", "device": device,
                         "input": f"{channels}x{side}x{side}", "corruption": name,
                         "ms_per_example": round(1000 * seconds / batch, 4)})
    return rows


def probe_rows(device: str, repeats: int) -> list[dict]:
    import torchvision

    from auditkit.adapters import TorchModelAdapter
    from auditkit.data import AuditData
    from auditkit.data.builtin import digits
    from auditkit.demo import DIGITS_MEAN, DIGITS_STD, DigitsCNN
    from auditkit.pipeline import build_context
    from auditkit.probes.corruptions import CorruptionsProbe

    torch.manual_seed(0)
    side = 224 if device.startswith("cuda") else 32
    n_resnet = 256 if device.startswith("cuda") else 64
    g = torch.Generator().manual_seed(0)
    cases = [
        ("demo CNN, digits 1x8x8", DigitsCNN().eval(), digits(), (1, 8, 8),
         {"mean": DIGITS_MEAN, "std": DIGITS_STD}, 300),
        (f"ResNet-18 (untrained), random 3x{side}x{side}",
         torchvision.models.resnet18(num_classes=10).eval(),
         AuditData(name="random", x=torch.rand(n_resnet, 3, side, side, generator=g),
                   y=torch.randint(0, 10, (n_resnet,), generator=g)),
         (3, side, side), {}, n_resnet),
    ]
    rows = []
    for label, model, data, shape, norm, n in cases:
        adapter = TorchModelAdapter(model, input_shape=shape, input_range=(0.0, 1.0),
                                    device=device, **norm)
        context = build_context(adapter, data, seed=0, budget="standard")
        probe = CorruptionsProbe(budget="standard", n_examples=n)
        result = probe.run(context)  # warm-up, and the corruption count for this input size
        seconds = _best(lambda probe=probe, context=context: probe.run(context), device, repeats)
        corruptions = len(result.details["accuracy_table"])
        severities = len(result.details["severities"])
        examples = result.details["n_examples"]
        rows.append({
            "benchmark": "corruptions_probe", "device": device, "model": label,
            "examples": examples, "corruptions": corruptions, "severities": severities,
            "seconds": round(seconds, 3),
            "ms_per_example_per_corruption": round(1000 * seconds / (examples * corruptions), 4),
            "ms_per_example_per_corruption_per_severity":
                round(1000 * seconds / (examples * corruptions * severities), 4),
            "threads": torch.get_num_threads(),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="all", choices=("all", "cpu", "cuda"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-probe", action="store_true", help="corruptions alone")
    args = parser.parse_args(argv)
    devices = ["cpu", "cuda"] if args.device == "all" else [args.device]
    for device in devices:
        if device == "cuda" and not torch.cuda.is_available():
            print(json.dumps({"benchmark": "corruptions", "device": "cuda",
                              "skipped": "no CUDA device"}))
            continue
        rows = transform_rows(device, args.repeats)
        if not args.skip_probe:
            rows += probe_rows(device, args.repeats)
        for row in rows:
            print(json.dumps(row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
