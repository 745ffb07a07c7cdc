"""Throughput of the adversarial probe's PGD against a raw PGD loop, torchattacks and IBM ART,
side by side in one run, printed as JSON.

All attack the same model (seen through the adapter, as the probe sees it), on the same batch
and device, with the same eps / steps / step size, and all end with the forward pass that
scores the result. The probe's PGD also tracks the best iterate per example; the raw loop is
the ten lines everyone writes; torchattacks' PGD and ART's ProjectedGradientDescent (numpy in
and out, as ART is called) are shown for reference. Target: probe ≥ 0.95 × raw. A library that
is not installed is reported under "unavailable" instead of failing the run.

    python benchmarks/bench_pgd.py                      # demo CNN on 8×8 digits (CPU-friendly)
    python benchmarks/bench_pgd.py --model resnet18 --batch 1024 --device cuda
    python benchmarks/bench_pgd.py --model resnet18 --batch 64 --device cpu --threads 2

The issue's reference (one H200, CIFAR-shaped ResNet-18, batch 1024): raw PGD-10 ≈ 15.3k
images/s, torchattacks ≈ 15.4k; ART 0.24× raw on the H200 and 0.60× on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from auditkit.adapters import TorchModelAdapter, resolve_device
from auditkit.attacks import PGD


def build(model_name: str, device: torch.device) -> tuple[TorchModelAdapter, tuple[int, ...]]:
    if model_name == "digits-cnn":
        from auditkit.demo import DIGITS_MEAN, DIGITS_STD, DigitsCNN

        shape = (1, 8, 8)
        model, mean, std = DigitsCNN(), DIGITS_MEAN, DIGITS_STD
    elif model_name == "resnet18":
        import torchvision

        shape = (3, 32, 32)
        model = torchvision.models.resnet18(weights=None, num_classes=10)
        mean, std = (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)
    else:
        raise SystemExit(f"--model {model_name}: use digits-cnn or resnet18")
    adapter = TorchModelAdapter(model, input_shape=shape, input_range=(0.0, 1.0), mean=mean,
                                std=std, device=device, num_classes=10)
    return adapter, shape


def raw_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
            steps: int, generator: torch.Generator) -> torch.Tensor:
    """Madry's PGD as commonly written, ending with the pass that scores it."""
    adv = (x + torch.empty_like(x).uniform_(-eps, eps, generator=generator)).clamp(0, 1)
    for _ in range(steps):
        adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(F.cross_entropy(model(adv), y), adv)
        adv = adv.detach() + alpha * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    with torch.no_grad():
        return (model(adv).argmax(1) == y).float().mean()


def probe_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float,
              steps: int, generator: torch.Generator) -> torch.Tensor:
    out = PGD(model, eps=eps, alpha=alpha, steps=steps, generator=generator).perturb(x, y)
    return (out.margin <= 0).float().mean()


def torchattacks_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float,
                     alpha: float, steps: int, generator: torch.Generator) -> torch.Tensor:
    import torchattacks

    adv = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)(x, y)
    with torch.no_grad():
        return (model(adv).argmax(1) == y).float().mean()


def art_pgd_factory(model: nn.Module, x: torch.Tensor, num_classes: int = 10) -> Callable:
    """ART's ProjectedGradientDescent on a PyTorchClassifier (built once, outside the timing)."""
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import PyTorchClassifier

    device_type = "gpu" if x.device.type == "cuda" else "cpu"
    classifier = PyTorchClassifier(
        model=model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]),
        nb_classes=num_classes, clip_values=(0.0, 1.0), device_type=device_type,
    )

    def run(model, x, y, eps, alpha, steps, generator) -> torch.Tensor:
        attack = ProjectedGradientDescent(
            classifier, norm=np.inf, eps=eps, eps_step=alpha, max_iter=steps,
            num_random_init=1, batch_size=len(x), verbose=False,
        )
        adv = torch.from_numpy(attack.generate(x.cpu().numpy(), y=y.cpu().numpy())).to(x.device)
        with torch.no_grad():
            return (model(adv).argmax(1) == y).float().mean()

    return run


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    fn().item()  # .item() waits for the device
    return time.perf_counter() - started


def run(model_name: str, *, batch: int, steps: int = 10, eps: float = 8 / 255,
        repeats: int = 5, device: str = "auto") -> dict:
    """Images per second of each implementation and its ratio to the raw loop."""
    device_t = resolve_device(device)
    if device_t.type == "cuda":
        torch.backends.cudnn.benchmark = True
    adapter, shape = build(model_name, device_t)
    module = adapter.as_module()
    g = torch.Generator(device=device_t).manual_seed(0)
    x = torch.rand(batch, *shape, device=device_t, generator=g)
    y = torch.randint(0, 10, (batch,), device=device_t, generator=g)
    alpha = 2.5 * eps / steps

    runners: dict[str, Callable] = {"raw loop": raw_pgd, "probe PGD": probe_pgd}
    unavailable: dict[str, str] = {}
    try:
        import torchattacks  # noqa: F401

        runners["torchattacks"] = torchattacks_pgd
    except ImportError:
        unavailable["torchattacks"] = "not installed (pip install torchattacks)"
    try:
        runners["IBM ART"] = art_pgd_factory(module, x)
    except ImportError:
        unavailable["IBM ART"] = "not installed (pip install adversarial-robustness-toolbox)"
    times: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():  # warm-up (cuDNN autotuning, allocator)
        timed(lambda fn=fn: fn(module, x, y, eps, alpha, steps, g), device_t)
    for _ in range(repeats):  # interleaved, so drifting clocks or load hit all alike
        for name, fn in runners.items():
            times[name].append(timed(lambda fn=fn: fn(module, x, y, eps, alpha, steps, g),
                                     device_t))
    raw = statistics.median(times["raw loop"])
    return {
        "benchmark": "pgd_throughput",
        "device": torch.cuda.get_device_name(device_t) if device_t.type == "cuda"
        else f"CPU, {torch.get_num_threads()} threads",
        "model": model_name,
        "input_shape": list(shape),
        "batch": batch,
        "steps": steps,
        "eps": eps,
        "repeats": repeats,
        "images_per_s": {k: round(batch / statistics.median(v), 1) for k, v in times.items()},
        "ratio_to_raw": {k: round(raw / statistics.median(v), 3) for k, v in times.items()},
        "unavailable": unavailable,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="digits-cnn | resnet18 "
                        "(default: resnet18 on CUDA, digits-cnn on the CPU)")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--eps", type=float, default=8 / 255)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model_name = args.model or ("resnet18" if device.type == "cuda" else "digits-cnn")
    print(json.dumps(run(model_name, batch=args.batch, steps=args.steps, eps=args.eps,
                         repeats=args.repeats, device=args.device)))


if __name__ == "__main__":
    main()
