"""The GPU check of issue #16: a CIFAR-shaped ResNet-18 through the ``standard`` scan on one GPU.

Random weights (torchvision, nothing downloaded) and random data. Prints, as one JSON object
(also written to ``$OUT/gpu_check.json`` when ``$OUT`` is set):
- the card, torch version, and each probe's seconds, status and the sizing plan of the scan;
- whether the CUDA paths ran: channels_last, the automatic batch sizes, peak GPU memory;
- PGD throughput of the probe's PGD vs a raw loop (and torchattacks / ART when installed);
- robust accuracy under bf16 autocast vs float32 on a sample (must stay within one point).
Run it through ``benchmarks/gpu_check.sh`` from the repository root.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch

#: ``GPU_CHECK_DEVICE=cpu`` dry-runs the script on a machine without a GPU (tiny sizes).
DEVICE = os.environ.get("GPU_CHECK_DEVICE", "cuda")
CUDA = DEVICE.startswith("cuda")


def _step(report: dict, name: str, fn) -> None:
    started = time.perf_counter()
    try:
        report[name] = fn()
    except Exception as exc:  # one failing part must not hide the others' numbers
        report[name] = {"error": f"{type(exc).__name__}: {exc}",
                        "traceback": traceback.format_exc(limit=6)}
    report.setdefault("step_seconds", {})[name] = round(time.perf_counter() - started, 2)
    print(json.dumps({name: report[name]}), flush=True)


def scan(n: int, budget: str) -> dict:
    import torchvision

    import auditkit
    from auditkit.loading import ModelMetadata

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 32, 32, generator=g)
    # Labels are the model's own predictions: a random network is then "accurate", so the
    # probes do their full work (a model at chance is not attacked).
    mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    model.eval()
    with torch.inference_mode():
        m, s = torch.tensor(mean).view(3, 1, 1), torch.tensor(std).view(3, 1, 1)
        y = torch.cat([model((x[i : i + 256] - m) / s).argmax(-1) for i in range(0, n, 256)])
    meta = ModelMetadata(input_shape=(3, 32, 32), input_range=(0.0, 1.0), mean=mean, std=std)
    if CUDA:
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    result = auditkit.scan(model, (x, y), budget=budget, device=DEVICE, metadata=meta, seed=0)
    wall = time.perf_counter() - started
    return {
        "n": n,
        "budget": budget,
        "scan_seconds": round(wall, 2),
        "probe_seconds": {k: p.seconds for k, p in result.probes.items()},
        "status": {k: p.status for k, p in result.probes.items()},
        "errors": {k: p.error for k, p in result.probes.items() if p.error},
        "verdict": result.verdict,
        "sizing": (result.settings.get("sizing") or {}).get("summary"),
        "peak_gpu_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
        if CUDA else None,
    }


def adapter_paths() -> dict:
    import torchvision

    from auditkit.adapters import TorchModelAdapter

    model = torchvision.models.resnet18(weights=None, num_classes=10)
    adapter = TorchModelAdapter(model, input_shape=(3, 32, 32), device=DEVICE)
    x = torch.rand(8, 3, 32, 32)
    cpu = TorchModelAdapter(torchvision.models.resnet18(weights=None, num_classes=10),
                            input_shape=(3, 32, 32), device="cpu")
    cpu.model.load_state_dict(model.state_dict())
    gpu_logits = adapter.predict_logits(x)
    cpu_logits = cpu.predict_logits(x)
    return {
        "channels_last": adapter.channels_last,
        "auto_batch_forward": adapter.auto_batch_size("forward"),
        "auto_batch_gradient": adapter.auto_batch_size("gradient"),
        "activation_mb_per_example": round(adapter._activation_bytes() / 2**20, 3),
        "max_abs_logit_diff_gpu_vs_cpu": float((gpu_logits - cpu_logits).abs().max()),
        "bf16_supported": torch.cuda.is_bf16_supported() if CUDA else False,
    }


def bf16_vs_fp32(n: int) -> dict:
    import torchvision

    from auditkit.adapters import TorchModelAdapter
    from auditkit.probes.adversarial.bf16 import compare_bf16_robust_accuracy

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=10)
    adapter = TorchModelAdapter(model, input_shape=(3, 32, 32), device=DEVICE)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(n, 3, 32, 32, generator=g)
    # Random weights: judge the attack against the model's own predictions, so clean accuracy
    # is 100% and robust accuracy measures only how far the attack gets at each eps.
    y = adapter.predict_logits(x).argmax(-1)
    rows = []
    for eps in (0.25 / 255, 1 / 255, 2 / 255):
        rows.append(compare_bf16_robust_accuracy(adapter, x, y, eps=eps, steps=10, seed=0))
    worst = max(abs(r["difference"]) for r in rows)
    return {"sample": n, "by_eps": rows, "max_abs_difference": worst,
            "within_one_point": worst <= 0.01 + 1e-9}


def main() -> int:
    n = int(os.environ.get("GPU_CHECK_N", "1000"))
    budget = os.environ.get("GPU_CHECK_BUDGET", "standard")
    if CUDA and not torch.cuda.is_available():
        print(json.dumps({"error": "no CUDA device visible to torch"}))
        return 1
    report: dict = {
        "card": torch.cuda.get_device_name(0) if CUDA else "cpu (dry run)",
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "python": sys.version.split()[0],
    }
    print(json.dumps(report), flush=True)
    _step(report, "adapter", adapter_paths)
    _step(report, "scan", lambda: scan(n, budget))
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_pgd import run as pgd_run

    batch = 1024 if CUDA else 16
    _step(report, "pgd_throughput", lambda: pgd_run("resnet18", batch=batch, steps=10,
                                                     repeats=5 if CUDA else 1, device=DEVICE))
    _step(report, "bf16_vs_fp32_robust_accuracy", lambda: bf16_vs_fp32(512 if CUDA else 16))
    out = os.environ.get("OUT")
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "gpu_check.json").write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
