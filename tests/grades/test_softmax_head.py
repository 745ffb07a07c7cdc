"""No masked gradients of our own making: a network whose graph ends in a softmax is attacked on
the logits before it, so it gets the robust accuracy of the same network exported with logits;
run as a black box, its query-limited result never passes unconverged."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import auditkit
from auditkit.adapters import CallableAdapter
from auditkit.demo import DIGITS_MEAN, DIGITS_STD, digits_metadata
from auditkit.loading import save_model


class _Scaled(nn.Module):
    def __init__(self, net, scale):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, x):
        return self.net(x) * self.scale


class _SoftmaxHead(_Scaled):
    def forward(self, x):
        return torch.softmax(super().forward(x), dim=-1)


def _normalized(x):
    mean = torch.tensor(DIGITS_MEAN).view(1, -1, 1, 1)
    std = torch.tensor(DIGITS_STD).view(1, -1, 1, 1)
    return (x - mean) / std


@pytest.fixture(scope="module")
def exports(demo_model, digits_data, tmp_path_factory):
    """The demo CNN with its logits scaled so the typical margin is 40: past the point where a
    float32 softmax rounds the winner to 1.0 (the log of its probabilities has no gradient),
    still short of where the logits' own cross-entropy underflows."""
    with torch.no_grad():
        logits = demo_model(_normalized(digits_data.x))
        top2 = logits.topk(2, dim=1).values
    scale = float(40.0 / (top2[:, 0] - top2[:, 1]).median())
    folder = tmp_path_factory.mktemp("softmax-head")
    sample = digits_data.x[:2]
    plain = save_model(
        _Scaled(demo_model, scale).eval(),
        folder / "logits.pt2",
        example_input=sample,
        metadata=digits_metadata(),
    )
    head = save_model(
        _SoftmaxHead(demo_model, scale).eval(),
        folder / "softmax.pt2",
        example_input=sample,
        metadata=digits_metadata(),
    )
    return scale, plain, head


def _scan(path, data, **extra):
    options = {"adversarial": {"n_examples": len(data), "eps": 0.1, "sweep": [0.05, 0.1], **extra}}
    return auditkit.scan(
        path, data, probes=["adversarial"], budget="fast", device="cpu", options=options
    ).probes["adversarial"]


def _plain_pgd_accuracy(net, x, y, eps, steps):
    """A plain PGD loop on the logits, at the probe's steps and step size (2.5 · eps / steps):
    cross-entropy, sign steps, no random start."""
    adv = x.clone()
    for _ in range(steps):
        adv.requires_grad_(True)
        loss = F.cross_entropy(net(_normalized(adv)), y)
        (grad,) = torch.autograd.grad(loss, adv)
        adv = adv.detach() + 2.5 * eps / steps * grad.sign()
        adv = torch.min(torch.max(adv, x - eps), x + eps).clamp(0, 1)
    with torch.no_grad():
        return float((net(_normalized(adv)).argmax(1) == y).float().mean())


def test_a_softmax_head_gets_the_robust_accuracy_of_the_logits_export(
    exports, digits_data, demo_model
):
    scale, plain_path, head_path = exports
    plain, head = _scan(plain_path, digits_data), _scan(head_path, digits_data)
    assert abs(head.metrics["robust_accuracy"] - plain.metrics["robust_accuracy"]) <= 0.01, (
        head.metrics,
        plain.metrics,
    )
    # And it is as strong as a plain PGD loop on the logits of the same network.
    steps = head.details["settings"]["steps"]
    reference = _plain_pgd_accuracy(
        _Scaled(demo_model, scale), digits_data.x, digits_data.y, 0.1, steps
    )
    # Within sampling noise of the random start (the log of saturated probabilities left
    # 0.75 here against 0.56).
    assert abs(head.metrics["pgd_accuracy"] - reference) <= 0.03, (head.metrics, reference)


def test_the_softmax_is_found_inside_an_onnx_twins_wrappers():
    """A converted graph reaches the adapter wrapped (its output picker, a fixed-batch chunker);
    the softmax is stripped from the graph inside, where tracing the wrapper could fail."""
    from auditkit.adapters.onnx_adapter import _Pick
    from auditkit.adapters.softmax_head import strip_softmax
    from auditkit.loading.onnx_batch import FixedBatch

    torch.manual_seed(0)
    graph = torch.fx.symbolic_trace(nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=-1)))
    x = torch.randn(5, 4)
    logits = graph.get_submodule("0")(x)
    for wrapped in (_Pick(graph, 0), FixedBatch(_Pick(graph, 0), 2)):
        stripped = strip_softmax(wrapped)
        assert stripped is not None and type(stripped) is type(wrapped)
        assert torch.allclose(stripped(x), logits, atol=1e-6)
        assert torch.allclose(wrapped(x), torch.softmax(logits, -1), atol=1e-6)  # untouched


# Two dynamo exports and two scans of 540 examples (~60 s): make test-slow. The wrappers' hook
# is covered in the default suite by the test above.
@pytest.mark.slow
def test_a_fixed_batch_dynamo_export_with_a_softmax_head_is_attacked_on_its_logits(
    exports, digits_data, demo_model, dynamo_export, tmp_path
):
    """Today's exporter at a fixed batch of 1: the converted twin is wrapped (output picker,
    freed batch), and its softmax is still found, so the head costs no robustness."""
    pytest.importorskip("onnx2torch")
    scale, _, _ = exports
    one = digits_data.x[:1]
    head = dynamo_export(_SoftmaxHead(demo_model, scale).eval(), tmp_path / "head", one,
                         dynamic=False)
    plain = dynamo_export(_Scaled(demo_model, scale).eval(), tmp_path / "plain", one,
                          dynamic=False)
    on_head, on_plain = _scan(head, digits_data), _scan(plain, digits_data)
    # The white-box attacks run on the twin's logits: the same numbers as the logits export.
    for metric in ("fgsm_accuracy", "pgd_accuracy"):
        assert abs(on_head.metrics[metric] - on_plain.metrics[metric]) <= 0.01, (
            metric, on_head.metrics, on_plain.metrics)
    gradients = next(c for c in on_head.checks if c.name == "gradients_nonzero_and_finite")
    assert gradients.status == "passed", gradients.detail
    # Square, beside them, queries the shipped runtime, whose float32 softmax rounds these
    # margins of ~40 to exactly 0 and 1: a black-box attacker sees no more. The worst case may
    # therefore keep a few more examples than the logits export's (6 of 540 here), never fewer
    # than PGD's on the twin.
    gap = on_head.metrics["robust_accuracy"] - on_plain.metrics["robust_accuracy"]
    assert -0.01 <= gap <= 0.02, (on_head.metrics, on_plain.metrics)
    assert on_head.metrics["robust_accuracy"] <= on_head.metrics["pgd_accuracy"]


def test_black_box_fast_budget_on_the_softmax_head_never_passes_unconverged(
    exports, digits_data, demo_model
):
    scale, _, _ = exports
    net = _SoftmaxHead(demo_model, scale).eval()

    def probabilities(batch: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return net(_normalized(torch.as_tensor(batch))).numpy()

    adapter = CallableAdapter(
        probabilities, input_shape=(1, 8, 8), num_classes=10, input_range=(0.0, 1.0)
    )
    result = auditkit.scan(
        adapter,
        digits_data,
        probes=["adversarial"],
        budget="fast",
        device="cpu",
        options={"adversarial": {"n_examples": 20}},
    )
    probe = result.probes["adversarial"]
    converged = next(c for c in probe.checks if c.name == "converged_in_steps")
    grade = probe.details["robustness_grade"]
    assert grade["bound"] == "black-box upper bound"
    if probe.status == "passed":
        assert converged.status == "passed" and grade["grade"] == "robust"
    else:
        assert grade["grade"] in ("upper_bound", "not_shown", "none")
        assert any(
            f.title.startswith(("upper bound from", "no robustness at", "robustness not shown"))
            for f in probe.findings
        )
