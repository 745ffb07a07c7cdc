"""Throughput of the adversarial probe's PGD against a raw PGD loop, side by side in one run.

Both attack the same model (seen through the adapter, as the probe sees it), on the same batch
and device, with the same eps / steps / step size, and both end with the forward pass that
scores the result. The probe's PGD also tracks the best iterate per example; the raw loop is
the ten lines everyone writes. torchattacks' PGD (plus the same scoring pass) is shown for
reference. Target: probe ≥ 0.95 × raw.

    python benchmarks/bench_pgd.py                      # demo CNN on 8×8 digits (CPU-friendly)
    python benchmarks/bench_pgd.py --model resnet18 --batch 1024 --device cuda

The issue's reference (one H200, CIFAR-shaped ResNet-18, batch 1024): raw PGD-10 ≈ 15.3k
images/s, torchattacks ≈ 15.4k.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torchattacks
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
    adv = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps)(x, y)
    with torch.no_grad():
        return (model(adv).argmax(1) == y).float().mean()


def timed(fn: Callable[[], torch.Tensor], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    started = time.perf_counter()
    fn().item()  # .item() waits for the device
    return time.perf_counter() - started


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
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    adapter, shape = build(model_name, device)
    module = adapter.as_module()
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(args.batch, *shape, device=device, generator=g)
    y = torch.randint(0, 10, (args.batch,), device=device, generator=g)
    alpha = 2.5 * args.eps / args.steps

    runners = {"raw loop": raw_pgd, "probe PGD": probe_pgd, "torchattacks": torchattacks_pgd}
    times: dict[str, list[float]] = {name: [] for name in runners}
    for fn in runners.values():  # warm-up (cuDNN autotuning, allocator)
        timed(lambda fn=fn: fn(module, x, y, args.eps, alpha, args.steps, g), device)
    for _ in range(args.repeats):  # interleaved, so drifting clocks or load hit all alike
        for name, fn in runners.items():
            times[name].append(
                timed(lambda fn=fn: fn(module, x, y, args.eps, alpha, args.steps, g), device)
            )

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else (
        f"CPU, {torch.get_num_threads()} threads"
    )
    print(f"PGD-{args.steps}, {model_name} {tuple(shape)}, batch {args.batch}, {name}, "
          f"median of {args.repeats}")
    raw = statistics.median(times["raw loop"])
    for runner, values in times.items():
        median = statistics.median(values)
        print(f"  {runner:<13} {args.batch / median:>10,.0f} images/s   "
              f"{raw / median:5.2f}× raw")


if __name__ == "__main__":
    main()
