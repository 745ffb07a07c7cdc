"""point_cloud: is a point-cloud classifier a function of the *set* of points, and how fragile?

- Permutation invariance: a point cloud is an unordered set, so shuffling its points must not
  change the prediction. A failure is a defect of the model (it reads the storage order), so the
  probe fails.
- Rotations: accuracy under random rotations about the vertical axis (the symmetry of the
  synthetic shapes) and under uniformly random 3-D rotations.
- Point perturbations: L∞ PGD on the coordinates (every point moves at most ``eps``), and EOT-PGD
  that attacks the expectation over random vertical-axis rotations (Athalye et al. 2018), judged
  under freshly drawn rotations.

Rooms: ``measure`` (model → numbers), ``judge`` (numbers → checks, findings), ``present``.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import nn

from auditkit.errors import AuditkitInputError
from auditkit.probes.base import MetricSpec, Probe
from auditkit.results import Check, Finding, ProbeResult
from auditkit_graph._threads import one_thread

BUDGET_PLANS = {
    "fast": {"examples": 100, "permutations": 3, "rotations": 8, "steps": 10, "eot_samples": 4},
    "standard": {"examples": 500, "permutations": 5, "rotations": 16, "steps": 20, "eot_samples": 8},
    "thorough": {"examples": 5000, "permutations": 10, "rotations": 32, "steps": 50, "eot_samples": 16},
}
# Logit changes below this are float round-off of a reordered computation, not order dependence.
LOGIT_TOLERANCE = 1e-3


def random_rotations(n: int, generator: torch.Generator, *, axis: str) -> torch.Tensor:
    """``n`` rotation matrices: about the z axis (``axis="z"``) or uniform on SO(3) (``"any"``)."""
    if axis == "z":
        angle = torch.rand(n, generator=generator) * 2 * math.pi
        c, s = torch.cos(angle), torch.sin(angle)
        zero, one = torch.zeros(n), torch.ones(n)
        return torch.stack([c, -s, zero, s, c, zero, zero, zero, one], 1).view(n, 3, 3)
    q = torch.randn(n, 4, generator=generator)  # uniform unit quaternions
    q = q / q.norm(dim=1, keepdim=True)
    w, x, y, z = q.unbind(1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], 1).view(n, 3, 3)


def rotate(clouds: torch.Tensor, rotations: torch.Tensor) -> torch.Tensor:
    return clouds @ rotations.transpose(1, 2).to(clouds.device, clouds.dtype)


class PointCloudProbe(Probe):
    """Permutation invariance, rotations and point-perturbation attacks for (points, 3) inputs."""

    name = "point_cloud"
    title = "Point-cloud invariances and attacks"
    description = "Does shuffling, rotating or nudging the points change the prediction?"
    order = 36
    needs_gradients = True
    report_template: ClassVar[str | None] = "auditkit_graph:templates/point_cloud.html.j2"
    metrics = {
        "clean_accuracy": MetricSpec("higher", "accuracy on the evaluated clouds, points as given"),
        "permutation_agreement": MetricSpec(
            "higher", "fraction of (cloud, shuffle) pairs whose prediction equals the unshuffled one (1 = invariant)"
        ),
        "max_permutation_logit_change": MetricSpec("lower", "largest |Δ logit| caused by shuffling the points"),
        "z_rotation_accuracy": MetricSpec("higher", "mean accuracy under random rotations about the vertical axis"),
        "rotation_accuracy": MetricSpec("higher", "mean accuracy under uniformly random 3-D rotations"),
        "pgd_accuracy": MetricSpec("higher", "accuracy under L∞ PGD moving every point at most eps"),
        "eot_accuracy": MetricSpec(
            "higher", "accuracy under EOT-PGD over vertical-axis rotations, judged under fresh rotations"
        ),
        "eps": MetricSpec(None, "L∞ radius of the point attacks, in coordinate units"),
    }
    budget_levels = {
        level: f"{p['examples']} clouds, {p['permutations']} shuffles, {p['rotations']} rotations, "
        f"PGD {p['steps']} steps, EOT {p['eot_samples']} rotations per step"
        for level, p in BUDGET_PLANS.items()
    }
    options = {"eps": 0.05, "examples": None}

    def __init__(self, *, budget: str = "standard", **options: Any) -> None:
        super().__init__(budget=budget, **options)
        eps = self.config["eps"]
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or eps < 0:
            raise AuditkitInputError(f"--set point_cloud.eps={eps!r}: expected a number >= 0")
        examples = self.config["examples"]
        if examples is not None and (isinstance(examples, bool) or not isinstance(examples, int) or examples < 1):
            raise AuditkitInputError(f"--set point_cloud.examples={examples!r}: expected an integer >= 1")
        self.plan = dict(BUDGET_PLANS[budget])
        if examples is not None:
            self.plan["examples"] = examples
        self.eps = float(eps)

    def skip_reason(self, context) -> str | None:
        shape = tuple(context.adapter.input_shape)
        if len(shape) != 2 or shape[1] != 3:
            return f"examples of shape {shape} are not point clouds (points, 3)"
        return super().skip_reason(context)

    def run(self, context) -> ProbeResult:
        with one_thread():
            measured = self.measure(context)
        checks, findings = judge(measured)
        return present(self.name, measured, checks, findings)

    # ---- measure ------------------------------------------------------------------------
    def measure(self, context) -> dict[str, Any]:
        adapter, data = context.adapter, context.data
        index = context.splits["evaluation"][: self.plan["examples"]]
        x, y = data.x[index], data.y[index]
        clean_logits = context.clean_logits[index]
        clean_pred = clean_logits.argmax(-1)
        clean_correct = clean_pred == y
        g = context.generator("point_cloud")
        agree, max_change = [], 0.0
        for _ in range(self.plan["permutations"]):
            order = torch.argsort(torch.rand(x.shape[0], x.shape[1], generator=g), dim=1)
            shuffled = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
            logits = adapter.predict_logits(shuffled)
            change = (logits - clean_logits).abs().amax(dim=1)
            same = (logits.argmax(-1) == clean_pred) | (change <= LOGIT_TOLERANCE)
            agree.append(same.float())
            max_change = max(max_change, float(change.max()))
        rotations = {}
        for axis in ("z", "any"):
            hits = []
            for _ in range(self.plan["rotations"]):
                turned = adapter.clamp(rotate(x, random_rotations(len(x), g, axis=axis)))
                hits.append((adapter.predict_logits(turned).argmax(-1) == y).float())
            rotations[axis] = float(torch.stack(hits).mean())
        pgd_correct = self._pgd(adapter, x, y, g, eot=False) & clean_correct
        eot_correct = self._pgd(adapter, x, y, g, eot=True) & clean_correct
        return {
            "examples": int(len(x)),
            "points": int(x.shape[1]),
            "clean_accuracy": float(clean_correct.float().mean()),
            "permutations": self.plan["permutations"],
            "permutation_agreement": float(torch.stack(agree).mean()),
            "max_permutation_logit_change": max_change,
            "z_rotation_accuracy": rotations["z"],
            "rotation_accuracy": rotations["any"],
            "rotations": self.plan["rotations"],
            "eps": self.eps,
            "steps": self.plan["steps"],
            "eot_samples": self.plan["eot_samples"],
            "pgd_accuracy": float(pgd_correct.float().mean()),
            "eot_accuracy": float(eot_correct.float().mean()),
        }

    def _pgd(self, adapter, x: torch.Tensor, y: torch.Tensor, g: torch.Generator, *, eot: bool) -> torch.Tensor:
        """Per cloud: still classified correctly after the attack (best iterate, or under fresh
        rotations for EOT)."""
        module, device = adapter.as_module(), adapter.device
        samples = self.plan["eot_samples"] if eot else 1
        steps, eps = self.plan["steps"], self.eps
        correct = torch.zeros(len(x), dtype=torch.bool)
        for start in range(0, len(x), 64):
            xb, yb = x[start : start + 64].to(device), y[start : start + 64].to(device)
            delta = torch.zeros_like(xb, requires_grad=True)
            still = torch.ones(len(xb), dtype=torch.bool, device=device)
            for step in range(steps + 1):
                total = 0.0
                for _ in range(samples):
                    turned = adapter.clamp(xb + delta)
                    if eot:
                        turned = rotate(turned, random_rotations(len(xb), g, axis="z"))
                    logits = module(turned)
                    if not eot:
                        still &= logits.argmax(-1) == yb
                    total = total + nn.functional.cross_entropy(logits, yb, reduction="sum")
                if step == steps or eps == 0:
                    break
                (grad,) = torch.autograd.grad(total, delta)
                with torch.no_grad():
                    delta += 2.5 * eps / steps * grad.sign()
                    delta.clamp_(-eps, eps)
            if eot:  # judged by the prediction expected under fresh rotations
                with torch.no_grad():
                    probs = 0
                    for _ in range(self.plan["rotations"]):
                        turned = rotate(adapter.clamp(xb + delta), random_rotations(len(xb), g, axis="z"))
                        probs = probs + torch.softmax(module(turned).float(), -1)
                    still = probs.argmax(-1) == yb
            correct[start : start + 64] = still.cpu()
        return correct


# ---- judge -------------------------------------------------------------------------------
def judge(measured: dict[str, Any]) -> tuple[list[Check], list[Finding]]:
    invariant = measured["permutation_agreement"] >= 1.0
    checks = [
        Check(
            "permutation_invariance", "passed" if invariant else "failed",
            f"shuffling the points never changed a prediction ({measured['permutations']} "
            f"shuffles × {measured['examples']} clouds; max |Δ logit| "
            f"{measured['max_permutation_logit_change']:.2g})" if invariant else
            f"shuffling the points changed {1 - measured['permutation_agreement']:.1%} of the "
            "predictions: the model reads the order the points are stored in",
            {"agreement": measured["permutation_agreement"],
             "max_logit_change": measured["max_permutation_logit_change"]},
        ),
        Check(
            "attack_below_clean", "passed" if measured["pgd_accuracy"] <= measured["clean_accuracy"] else "failed",
            f"PGD accuracy {measured['pgd_accuracy']:.1%} ≤ clean {measured['clean_accuracy']:.1%}",
            {"pgd": measured["pgd_accuracy"], "clean": measured["clean_accuracy"]},
        ),
    ]
    findings = []
    if not invariant:
        findings.append(Finding(
            "critical", "the prediction depends on the order of the points",
            why="point clouds from scanners and meshes come in arbitrary order; the same object "
            "gets different answers",
            action="use a permutation-invariant architecture (shared per-point layers and a "
            "symmetric pooling such as max, as in PointNet/DGCNN)",
        ))
    if measured["clean_accuracy"] - measured["rotation_accuracy"] > 0.2:
        findings.append(Finding(
            "warning",
            f"random 3-D rotations cut accuracy from {measured['clean_accuracy']:.1%} to "
            f"{measured['rotation_accuracy']:.1%}",
            why="objects seen in another pose are misclassified",
            action="augment training with rotations, or canonicalize the pose before classifying",
        ))
    return checks, findings


def present(name: str, measured: dict[str, Any], checks: list[Check], findings: list[Finding]) -> ProbeResult:
    keys = ("clean_accuracy", "permutation_agreement", "max_permutation_logit_change",
            "z_rotation_accuracy", "rotation_accuracy", "pgd_accuracy", "eot_accuracy", "eps")
    failed = any(c.status == "failed" for c in checks if c.name == "permutation_invariance")
    status = "failed" if failed else ("warned" if any(c.status == "failed" for c in checks) else "passed")
    bars = [
        ("clean", measured["clean_accuracy"]), ("vertical rotations", measured["z_rotation_accuracy"]),
        ("3-D rotations", measured["rotation_accuracy"]), (f"PGD ε={measured['eps']:g}", measured["pgd_accuracy"]),
        ("EOT-PGD (rotations)", measured["eot_accuracy"]),
    ]
    return ProbeResult(
        name=name, status=status, metrics={k: measured[k] for k in keys}, checks=checks,
        findings=findings, headline="permutation_agreement",
        summary=(
            "permutation invariant" if not failed else
            f"NOT permutation invariant ({1 - measured['permutation_agreement']:.0%} of shuffles change the answer)"
        ) + f"; accuracy {measured['clean_accuracy']:.1%} clean, {measured['rotation_accuracy']:.1%} under "
        f"3-D rotations, {measured['pgd_accuracy']:.1%} under PGD ε={measured['eps']:g}",
        figures=[{
            "kind": "bar", "id": "point-cloud-accuracy", "title": "Accuracy under each transformation",
            "x_label": "condition", "y_label": "accuracy", "y_range": [0, 1],
            "bars": [{"label": label, "value": value} for label, value in bars],
        }],
        details=measured,
    )
