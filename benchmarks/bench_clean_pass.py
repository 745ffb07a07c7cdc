"""Forward passes per example in the clean pass: exactly one, counted with a forward hook.

Each audit example carries its index in one pixel; a forward pre-hook on the user's model
records which examples every forward pass saw. Printed as JSON: passes per example over the
whole audit (beyond the diagnostic sample, where the adapter is diagnosed and the cost is
measured), for building the context alone and for a full scan whose probes read the shared
clean logits (performance, bias), plus the extra passes on the diagnostic sample.

    python benchmarks/bench_clean_pass.py
"""

from __future__ import annotations

import argparse
import json
from collections import Counter

import torch
from torch import nn


class Recorder(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
        self.seen: Counter[int] = Counter()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ids = torch.round(x[:, 0, 0, 0].detach() * self.n).long().tolist()
        self.seen.update(i for i in ids if 0 < i <= self.n)  # zeros probes are not examples
        return self.body(x)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    args = parser.parse_args(argv)

    from auditkit.adapters import TorchModelAdapter
    from auditkit.data import AuditData
    from auditkit.pipeline import DIAGNOSTIC_SAMPLE, build_context, run_audit

    n = args.n
    x = torch.rand(n, 1, 8, 8)
    x[:, 0, 0, 0] = torch.arange(1, n + 1) / n  # example i carries i/n
    y = torch.randint(0, 10, (n,))
    data = AuditData(x=x, y=y, name="ids")
    report = {"benchmark": "clean_pass_forwards", "n": n, "diagnostic_sample": DIAGNOSTIC_SAMPLE}
    for label, run in (
        ("build_context", lambda a: build_context(a, data)),
        ("scan(performance,bias)", lambda a: run_audit(a, data, probes=["performance", "bias"],
                                                      budget="fast")),
    ):
        model = Recorder(n)
        adapter = TorchModelAdapter(model, input_shape=(1, 8, 8), num_classes=10, device="cpu",
                                    input_range=None)
        run(adapter)
        beyond = [model.seen[i] for i in range(DIAGNOSTIC_SAMPLE + 1, n + 1)]
        sample = [model.seen[i] for i in range(1, DIAGNOSTIC_SAMPLE + 1)]
        report[label] = {
            "forwards_per_example_beyond_sample": sorted(set(beyond)),
            "exactly_one": set(beyond) == {1},
            "passes_on_diagnostic_sample": {"min": min(sample), "max": max(sample)},
        }
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
