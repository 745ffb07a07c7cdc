"""Where and how the attacks run: attack space, the attack runner and its verdicts.

A private helper of ``measure``: everything here touches the model.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from auditkit import distributed
from auditkit.attacks import EOTPGD, Transformations, margin
from auditkit.attacks._base import BoxAttack


class Standardized(nn.Module):
    """The model seen from feature-std units: ``z ↦ model(z · std)`` (unbounded inputs)."""

    def __init__(self, model: nn.Module, scale: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("scale", scale, persistent=False)

    def train(self, mode: bool = True) -> Standardized:
        self.training = mode  # never reaches the wrapped model
        return self

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(z * self.scale)


@dataclass
class AttackSpace:
    """Where the attacks run: the adapter's pixels, or feature-std units for unbounded boxes."""

    module: nn.Module
    box: tuple[float, float] | None
    scale: torch.Tensor | None = None

    def to_space(self, x: torch.Tensor) -> torch.Tensor:
        return x if self.scale is None else x / self.scale.cpu()

    def from_space(self, z: torch.Tensor) -> torch.Tensor:
        return z if self.scale is None else z * self.scale.to(z.device)

    def scale_on(self, device: torch.device) -> torch.Tensor | None:
        return None if self.scale is None else self.scale.to(device)

    def transform(
        self, z: torch.Tensor, transform: Transformations, params: dict[str, torch.Tensor]
    ) -> torch.Tensor:
        """EOT's transformations of attack-space inputs, applied to the pixels they stand for."""
        return transform.apply(z, params, box=self.box, scale=self.scale_on(z.device))


@dataclass
class AttackRunner:
    """Runs one attack over the correctly classified examples and judges every result.

    A deterministic model is judged by the attack's own margins (exact, no second pass). A
    random model is judged by its averaged prediction (softmax averaged over ``eval_samples``
    passes), always in the same chunks of all attacked examples with the same seeds — common
    random numbers — so two attacks that return the same input get the same verdict, and an
    attack that changes nothing (eps = 0) reproduces the clean verdict exactly. A non-finite
    answer (NaN logits) is never a right one; the examples where an attack met one are counted
    in ``nonfinite`` for the gradient check.
    """

    space: AttackSpace
    z: torch.Tensor
    y: torch.Tensor
    clean_correct: np.ndarray
    device: torch.device
    batch_size: int
    stochastic: bool
    eval_samples: int
    seed_of: Callable[[str], torch.Generator]
    int_seed_of: Callable[[str], int]
    timings: dict[str, float] = field(default_factory=dict)
    nonfinite: dict[str, int] = field(default_factory=dict)
    _clean_transformed: np.ndarray | None = None
    #: bf16 autocast for the attacks' passes (GPU only; see ``TorchModelAdapter.mixed_precision``).
    mixed_precision: bool = False
    autocast: Callable[[], Any] = contextlib.nullcontext
    progress: Any = None  # the context's Progress: each attack's batches are reported

    @property
    def stop_when_fooled(self) -> bool:
        """Whether PGD may stop an example at its first fooling iterate: the verdict is the
        attack's own margin (a deterministic model in float32), so stopping changes no verdict
        (``PGD.stop_when_fooled``). A random model or a bf16 search is judged again
        afterwards, where a barely fooling input could flip back: they run every step."""
        return not self.stochastic and not self.mixed_precision

    @property
    def targets(self) -> np.ndarray:
        return np.flatnonzero(self.clean_correct)

    def correct(
        self,
        tag: str,
        attack_class: type[BoxAttack],
        *,
        keep: bool = False,
        judge: str = "default",
        seed_tag: str | None = None,
        among: np.ndarray | None = None,
        **kwargs: Any,
    ) -> tuple[np.ndarray, torch.Tensor | None]:
        """Per example: correct clean and still correct under the attack; optionally the
        adversarial examples (attack space, CPU). ``seed_tag`` names the random stream
        (default ``tag``): two runs with the same one start from the same random points.
        ``among`` (a subset of the clean-correct examples) limits whom the attack targets;
        the others keep their clean verdict."""
        started = time.perf_counter()
        targets = self.targets if among is None else np.flatnonzero(among & self.clean_correct)
        adversarial = self.z.clone()
        correct = self.clean_correct.copy()
        if len(targets):
            stream = seed_tag or tag
            attack = attack_class(
                self.space.module,
                box=self.space.box,
                generator=self.seed_of(stream),
                **kwargs,
            )
            per_batch = self.batch_size
            if isinstance(attack, EOTPGD):
                per_batch = max(1, self.batch_size // attack.samples)
            shape = tuple(self.z.shape[1:])

            def run_batch(start: int, stop: int) -> torch.Tensor:
                # Every batch after the first draws from its own stream (and a random model
                # from its own seed), so under torchrun any rank can compute any batch and the
                # gathered results equal the single process's.
                if start:
                    attack.generator = self.seed_of(f"{stream}@{start}")
                if self.stochastic:
                    torch.manual_seed(self.int_seed_of(f"{stream}@{start}/model"))
                index = torch.as_tensor(targets[start:stop])
                with self.autocast():
                    out = attack.perturb(
                        self.z[index].to(self.device), self.y[index].to(self.device)
                    )
                if self.progress is not None:
                    done = min(stop, len(targets))
                    self.progress.advance(f"attack {tag}", done, len(targets))
                flags = (
                    out.nonfinite.float().cpu()
                    if out.nonfinite is not None
                    else torch.zeros(stop - start)
                )
                return torch.cat(
                    [
                        out.margin.detach().float().cpu()[:, None],
                        flags[:, None],
                        out.adversarial.detach().float().cpu().flatten(1),
                    ],
                    dim=1,
                )

            rows = distributed.gather_batches(len(targets), per_batch, run_batch)
            margins = [rows[:, 0]]
            nonfinite = int(rows[:, 1].sum())
            adversarial[torch.as_tensor(targets)] = (
                rows[:, 2:].reshape(len(targets), *shape).to(adversarial.dtype)
            )
            if nonfinite:
                self.nonfinite[tag] = nonfinite
            if judge == "eot":
                fooled = self.fooled_under_transformations(adversarial, kwargs.get("transform"))
            elif self.stochastic:
                fooled = self.fooled_random(adversarial)
            elif self.mixed_precision:
                # bf16 searched; the verdict is float32's.
                fooled = self.fooled_deterministic(adversarial)
            else:
                fooled = np.zeros(len(self.z), dtype=bool)
                fooled[targets] = (torch.cat(margins) > 0).numpy()
            correct[targets] = ~fooled[targets]
        self.timings[tag] = round(time.perf_counter() - started, 4)
        return correct, adversarial if keep else None

    def _chunks(self) -> range:
        return range(0, len(self.z), self.batch_size)

    def probabilities(self, x: torch.Tensor, tag: str) -> torch.Tensor:
        """Softmax of one batch, averaged over ``eval_samples`` passes for a random model."""
        samples = self.eval_samples if self.stochastic else 1
        torch.manual_seed(self.int_seed_of(tag))  # the model's own randomness, reproducibly
        with torch.inference_mode():
            copies = x.unsqueeze(0).expand(samples, *x.shape).reshape(-1, *x.shape[1:])
            logits = self.space.module(copies).float().view(samples, len(x), -1)
        return torch.softmax(logits, dim=-1).mean(dim=0)

    def all_probabilities(self, x: torch.Tensor) -> torch.Tensor:
        """``probabilities`` of every attacked example, in the fixed judging chunks."""
        return torch.cat(
            [
                self.probabilities(x[s : s + self.batch_size].to(self.device), f"judge/{s}").cpu()
                for s in self._chunks()
            ]
        )

    def fooled_random(self, x: torch.Tensor) -> np.ndarray:
        return ~right_answers(self.all_probabilities(x), self.y)

    def _transformed_right(
        self, x: torch.Tensor, transform: Transformations, start: int
    ) -> np.ndarray:
        """Whether the prediction expected under transformation — the softmax averaged over
        ``eval_samples`` fresh draws — is right; the draws and the model's randomness are fixed
        by chunk, so every input of a chunk meets the very same draws."""
        samples = self.eval_samples
        xb = x[start : start + self.batch_size].to(self.device)
        yb = self.y[start : start + self.batch_size].to(self.device)
        copies = xb.unsqueeze(0).expand(samples, *xb.shape).reshape(-1, *xb.shape[1:])
        with torch.inference_mode():
            params = transform.sample(
                copies.shape, generator=self.seed_of(f"eot-draws/{start}"), device=copies.device
            )
            copies = self.space.transform(copies, transform, params)
            torch.manual_seed(self.int_seed_of(f"eot-judge/{start}"))
            logits = self.space.module(copies).float().view(samples, len(xb), -1)
        expected = torch.softmax(logits, dim=-1).mean(dim=0)
        return right_answers(expected.cpu(), yb.cpu())

    def clean_transformed_right(self, transform: Transformations) -> np.ndarray:
        """``_transformed_right`` of every clean input (computed once)."""
        if self._clean_transformed is None:
            right = [self._transformed_right(self.z, transform, s) for s in self._chunks()]
            self._clean_transformed = np.concatenate(right) if right else np.zeros(0, bool)
        return self._clean_transformed

    def fooled_under_transformations(
        self, x: torch.Tensor, transform: Transformations | None
    ) -> np.ndarray:
        """Misclassified in expectation over fresh draws of the transformations — the
        adversarial input, or the clean one under the very same draws and model randomness
        (the attacker may always choose δ = 0, so transformations that break the model on
        their own count against it). Without transformations this is the ordinary verdict."""
        if transform is None:
            return self.fooled_random(x) if self.stochastic else self.fooled_deterministic(x)
        right = [self._transformed_right(x, transform, s) for s in self._chunks()]
        adversarial_right = np.concatenate(right) if right else np.zeros(0, dtype=bool)
        return ~(adversarial_right & self.clean_transformed_right(transform))

    def fooled_deterministic(self, x: torch.Tensor) -> np.ndarray:
        with torch.inference_mode():
            return (
                np.concatenate(
                    [
                        (
                            margin(
                                self.space.module(
                                    x[s : s + self.batch_size].to(self.device)
                                ).float(),
                                self.y[s : s + self.batch_size].to(self.device),
                            )
                            > 0
                        )
                        .cpu()
                        .numpy()
                        for s in self._chunks()
                    ]
                )
                if len(x)
                else np.zeros(0, dtype=bool)
            )

    def transform_correct(self, transform: Transformations) -> np.ndarray:
        """Correct clean and in expectation over freshly transformed copies (no perturbation)."""
        return self.clean_correct & self.clean_transformed_right(transform)


def _mean(values: np.ndarray) -> float:
    return float(np.mean(values)) if len(values) else float("nan")


def right_answers(scores: torch.Tensor, y: torch.Tensor) -> np.ndarray:
    """Per example: the top score is the true class, and no score is NaN / infinite."""
    finite = torch.isfinite(scores).all(dim=-1)
    return ((scores.argmax(dim=-1) == y) & finite).cpu().numpy()


def fooling_input(
    first: torch.Tensor, restarts: torch.Tensor, restarts_correct: np.ndarray
) -> torch.Tensor:
    """Per example, the adversarial input of the run that fooled it: the restarts' where they
    succeeded, else restart 0's (which may have succeeded alone)."""
    pick = torch.as_tensor(~restarts_correct).view(-1, *([1] * (first.dim() - 1)))
    return torch.where(pick, restarts, first)


def attack_space(adapter, data) -> AttackSpace:
    module = adapter.as_module()
    if adapter.input_range is not None:
        return AttackSpace(module=module, box=tuple(adapter.input_range))
    # Unbounded inputs: measure perturbations in feature standard deviations of the audit data.
    std = data.x.float().std(dim=0, unbiased=False)
    scale = torch.where(std > 0, std, torch.ones_like(std))
    return AttackSpace(module=Standardized(module, scale.to(adapter.device)), box=None, scale=scale)


def detect_stochastic(adapter, space: AttackSpace, z: torch.Tensor) -> tuple[bool, float]:
    """Whether two passes over ``z`` (attack-space inputs: the diagnostic sample) differ."""
    sample = z.to(adapter.device)
    with torch.inference_mode():
        first = space.module(sample).float()
        second = space.module(sample).float()
    diff = float((first - second).abs().max()) if len(sample) else 0.0
    # Relative to the logits' size, so float round-off of non-deterministic GPU kernels on
    # large logits is not mistaken for a random model.
    scale = max(1.0, float(first.abs().max())) if len(sample) else 1.0
    flagged = bool(getattr(adapter.diagnostics, "stochastic", False))
    adapter_diff = float(getattr(adapter.diagnostics, "stochastic_max_diff", 0.0) or 0.0)
    return flagged or diff > 1e-5 * scale, max(diff, adapter_diff)


def gradient_stats(
    space: AttackSpace, z: torch.Tensor, y: torch.Tensor, device: torch.device, batch_size: int
) -> dict[str, Any]:
    """Input gradients of the cross-entropy and of the margin on every attacked example."""
    ce_max, margin_max, finite = [], [], True
    for start in range(0, len(z), batch_size):
        zb = z[start : start + batch_size].to(device).requires_grad_(True)
        yb = y[start : start + batch_size].to(device)
        with torch.enable_grad():
            logits = space.module(zb).float()
            # Sum, not mean: a 1/N factor would push small gradients below float32's range.
            ce = nn.functional.cross_entropy(logits, yb, reduction="sum")
            (g_ce,) = torch.autograd.grad(ce, zb, retain_graph=True)
            (g_margin,) = torch.autograd.grad(margin(logits, yb).sum(), zb)
        finite = finite and bool(torch.isfinite(g_ce).all()) and bool(torch.isfinite(logits).all())
        ce_max.append(g_ce.flatten(1).abs().amax(1).nan_to_num(0).cpu())
        margin_max.append(g_margin.flatten(1).abs().amax(1).nan_to_num(0).cpu())
    ce_all = torch.cat(ce_max) if ce_max else torch.zeros(0)
    margin_all = torch.cat(margin_max) if margin_max else torch.zeros(0)
    n = max(len(ce_all), 1)
    return {
        "finite": finite,
        "nonzero_fraction": float((ce_all > 0).sum()) / n,
        "margin_nonzero_fraction": float((margin_all > 0).sum()) / n,
        "median_abs_max": float(ce_all.median()) if len(ce_all) else 0.0,
    }
