"""The runner: one shared clean pass, isolated probes, seeds, budgets, checkpoints."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest
import torch
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.context import DIAGNOSTIC_SAMPLE
from auditkit.data import AuditData
from auditkit.errors import AuditkitInputError
from auditkit.gates import exit_code
from auditkit.outputs import write_outputs
from auditkit.pipeline import build_context, derive_seed, run_audit
from auditkit.probes.base import Probe
from auditkit.results import AuditResult, ProbeResult

N = 300


class IdRecorder(nn.Module):
    """A linear classifier whose first input feature is the example's id (1..N).

    It records which examples pass through ``forward`` and how often, so a test can tell
    a diagnostic call on a few examples from a pass over the whole audit set.
    """

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = nn.Linear(5, 3)
        self.seen: Counter[int] = Counter()
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.update(int(round(v)) for v in x[:, 0].detach().tolist())
        return self.linear(x)


def id_data() -> AuditData:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(N, 5, generator=g)
    x[:, 0] = torch.arange(1, N + 1, dtype=torch.float32)
    return AuditData(name="ids", x=x, y=torch.randint(0, 3, (N,), generator=g),
                     modality="tabular", input_range=None)


def id_adapter(model: nn.Module) -> TorchModelAdapter:
    return TorchModelAdapter(model, input_shape=(5,), input_range=None, num_classes=3,
                             device="cpu")


class ReadsCleanLogits(Probe):
    name = "reads_clean_logits"
    seen: list[torch.Tensor] = []

    def run(self, context) -> ProbeResult:
        type(self).seen.append(context.clean_logits)
        top = context.clean_probabilities.max(-1).values.mean()
        return ProbeResult(name=self.name, status="passed", metrics={"confidence": float(top)})


class AlsoReadsCleanLogits(Probe):
    name = "also_reads_clean_logits"

    def run(self, context) -> ProbeResult:
        agree = (context.clean_predictions == context.data.y).float().mean()
        return ProbeResult(name=self.name, status="passed", metrics={"accuracy": float(agree)})


class Boom(Probe):
    name = "boom"

    def run(self, context) -> ProbeResult:
        raise ValueError("planted failure 42")


# --- the shared clean pass --------------------------------------------------------------------


def test_one_clean_forward_pass_is_shared_by_all_probes():
    """Exact count: examples outside the diagnostic sample go through the model exactly once.

    build_context diagnoses the adapter on the first DIAGNOSTIC_SAMPLE examples (a few small
    passes, with and without gradients); every other example is touched only by the clean pass.
    Probes that read context.clean_logits must add no forward pass at all, so the per-example
    counts of a full audit equal those of building the context alone.
    """
    model, data = IdRecorder(), id_data()
    ReadsCleanLogits.seen = []
    result = run_audit(id_adapter(model), data,
                       probes=["performance", ReadsCleanLogits, AlsoReadsCleanLogits])
    # Every probe ran (the random linear model is at chance, so performance grades it failed).
    assert [p.status for p in result.probes.values()] == ["failed", "passed", "passed"]

    assert set(model.seen) == set(range(1, N + 1))  # (no rows from outside the data)
    beyond_sample = {i: model.seen[i] for i in range(DIAGNOSTIC_SAMPLE + 1, N + 1)}
    assert set(beyond_sample.values()) == {1}, "the clean pass must run exactly once"

    alone = IdRecorder()
    build_context(id_adapter(alone), data)
    # Sizing the budget times a few passes on the diagnostic sample (auditkit.sizing); beyond
    # it, a full audit touches each example exactly as often as building the context alone.
    assert {i: c for i, c in model.seen.items() if i > DIAGNOSTIC_SAMPLE} == {
        i: c for i, c in alone.seen.items() if i > DIAGNOSTIC_SAMPLE
    }
    unsized = IdRecorder()
    run_audit(id_adapter(unsized), data, probes=["performance", ReadsCleanLogits,
                                                 AlsoReadsCleanLogits], size_to_clock=False)
    assert unsized.seen == alone.seen and unsized.calls == alone.calls

    # What the probes read is the model's output on the audit data.
    with torch.no_grad():
        torch.testing.assert_close(ReadsCleanLogits.seen[0], model.linear(data.x))
    assert result.metrics["also_reads_clean_logits.accuracy"] == pytest.approx(
        result.metrics["performance.accuracy"]
    )


# --- isolation --------------------------------------------------------------------------------


def test_a_crashing_probe_is_isolated_and_gives_exit_code_3(tmp_path):
    result = run_audit(id_adapter(IdRecorder()), id_data(),
                       probes=[AlsoReadsCleanLogits, Boom, ReadsCleanLogits])
    boom = result.probes["boom"]
    assert boom.status == "error"
    assert boom.error == "ValueError: planted failure 42"
    assert "planted failure 42" in boom.details["traceback"]
    assert result.probes["also_reads_clean_logits"].status == "passed"
    assert result.probes["reads_clean_logits"].status == "passed"  # ran after the crash
    assert result.verdict == "error"
    assert result.errors == {"boom": "ValueError: planted failure 42"}
    assert exit_code(result) == 3
    # The report is still written, and audit.json carries the error.
    paths = write_outputs(result, tmp_path)
    assert paths["report.html"].exists()
    saved = json.loads((tmp_path / "audit.json").read_text())
    assert saved["probes"]["boom"]["status"] == "error" and saved["verdict"] == "error"


def test_debug_lets_the_exception_through():
    with pytest.raises(ValueError, match="planted failure 42"):
        run_audit(id_adapter(IdRecorder()), id_data(), probes=[Boom], debug=True)


class ReturnsNothing(Probe):
    name = "returns_nothing"

    def run(self, context):
        return None


class BrokenSkipCheck(Probe):
    name = "broken_skip_check"

    def skip_reason(self, context):
        raise RuntimeError("cannot decide")

    def run(self, context) -> ProbeResult:
        return ProbeResult(name=self.name, status="passed")


class BrokenConstructor(Probe):
    name = "broken_constructor"

    def __init__(self, **kwargs) -> None:
        raise RuntimeError("constructor exploded")

    def run(self, context) -> ProbeResult:
        return ProbeResult(name=self.name, status="passed")


def test_every_way_a_probe_can_break_is_an_error_row():
    result = run_audit(id_adapter(IdRecorder()), id_data(),
                       probes=[ReturnsNothing, BrokenSkipCheck, BrokenConstructor,
                               AlsoReadsCleanLogits])
    assert "not a ProbeResult" in result.probes["returns_nothing"].error
    assert "cannot decide" in result.probes["broken_skip_check"].error
    assert "constructor exploded" in result.probes["broken_constructor"].error
    assert result.probes["also_reads_clean_logits"].status == "passed"
    assert exit_code(result) == 3


# --- selection and budgets --------------------------------------------------------------------


class RecordsBudget(Probe):
    name = "records_budget"
    options = {"level": 1}
    budgets: list[str] = []

    def run(self, context) -> ProbeResult:
        type(self).budgets.append(self.budget)
        return ProbeResult(name=self.name, status="passed",
                           metrics={"level": float(self.config["level"])})


def test_probes_select_and_budget_and_options_reach_the_probe():
    RecordsBudget.budgets = []
    result = run_audit(id_adapter(IdRecorder()), id_data(), probes=["performance", RecordsBudget],
                       budget="thorough", options={"records_budget": {"level": 3}})
    assert list(result.probes) == ["performance", "records_budget"]
    assert RecordsBudget.budgets == ["thorough"]
    assert result.metrics["records_budget.level"] == 3.0
    assert result.settings["budget"] == "thorough"


def test_bad_selection_and_budget_are_bad_input():
    adapter, data = id_adapter(IdRecorder()), id_data()
    with pytest.raises(AuditkitInputError, match="unknown probe"):
        run_audit(adapter, data, probes=["performance", "no_such_probe"])
    with pytest.raises(AuditkitInputError, match="--budget huge"):
        run_audit(adapter, data, probes=["performance"], budget="huge")
    with pytest.raises(AuditkitInputError, match="unknown option"):
        run_audit(adapter, data, probes=[RecordsBudget], options={"records_budget": {"x": 1}})


def test_one_budget_check_serves_the_runner_and_the_probes():
    from auditkit.probes.base import check_budget

    with pytest.raises(AuditkitInputError) as from_helper:
        check_budget("huge")
    with pytest.raises(AuditkitInputError) as from_runner:
        run_audit(id_adapter(IdRecorder()), id_data(), probes=["performance"], budget="huge")
    with pytest.raises(AuditkitInputError) as from_probe:
        RecordsBudget(budget="huge")
    assert str(from_helper.value) == str(from_runner.value) == str(from_probe.value)
    assert "fast, standard, thorough" in str(from_helper.value)
    assert check_budget("fast") == "fast"


# --- shapes of tables with sensitive columns ----------------------------------------------------


@pytest.fixture()
def credit_csv(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(0)
    n = 40
    frame = pd.DataFrame({"income": rng.normal(size=n), "sex": rng.integers(0, 2, n),
                          "debt": rng.normal(size=n), "age": rng.integers(20, 70, n),
                          "outcome": rng.integers(0, 2, n)})
    frame.to_csv(tmp_path / "credit.csv", index=False)
    return tmp_path / "credit.csv"


def test_a_model_trained_with_the_sensitive_columns_is_told_how_to_keep_them(credit_csv):
    from auditkit.data import load_data

    def table(keep: bool) -> AuditData:
        return load_data(credit_csv, target="outcome", sensitive=["sex", "age"],
                         keep_sensitive_features=keep)

    def adapter(width: int) -> TorchModelAdapter:
        torch.manual_seed(0)
        return TorchModelAdapter(nn.Linear(width, 2), input_shape=(width,), input_range=None,
                                 device="cpu")

    with pytest.raises(AuditkitInputError) as excinfo:
        build_context(adapter(4), table(keep=False))  # a model trained on all four columns
    message = str(excinfo.value)
    assert "(2,)" in message and "(4,)" in message and "\n" not in message
    assert "pass --keep-sensitive-features" in message and "sex, age" in message
    assert "--input-shape" not in message.split(";")[-1]
    build_context(adapter(4), table(keep=True))  # and that is the fix

    with pytest.raises(AuditkitInputError) as excinfo:
        build_context(adapter(2), table(keep=True))  # kept, but the model never took them
    assert "drop --keep-sensitive-features" in str(excinfo.value)
    with pytest.raises(AuditkitInputError) as excinfo:
        build_context(adapter(3), table(keep=False))  # off by one: not the sensitive columns
    assert "keep-sensitive-features" not in str(excinfo.value)


# --- seeds ------------------------------------------------------------------------------------


class Seeded(Probe):
    name = "seeded"

    def run(self, context) -> ProbeResult:
        noise = torch.randn(context.data.x.shape, generator=context.generator(self.name))
        logits = context.adapter.predict_logits(context.data.x + noise)
        return ProbeResult(name=self.name, status="passed", metrics={
            "noisy_accuracy": float((logits.argmax(-1) == context.data.y).float().mean()),
            "numpy_draw": float(context.rng(self.name).random()),
            "global_torch_draw": float(torch.rand(1)),  # the runner seeds global state too
            "global_numpy_draw": float(np.random.random()),
        })


class ConsumesGlobalRandomness(Probe):
    name = "consumes_global_randomness"

    def run(self, context) -> ProbeResult:
        torch.rand(100)
        np.random.random(100)
        return ProbeResult(name=self.name, status="passed")


def test_same_seed_same_metrics_and_a_different_seed_changes_them():
    data = id_data()

    def audit(seed, probes=(Seeded,)):
        return run_audit(id_adapter(IdRecorder()), data, probes=list(probes), seed=seed)

    first, again, other = audit(3), audit(3), audit(4)
    assert first.metrics == again.metrics
    assert first.data["splits"] == again.data["splits"]
    assert all(first.metrics[k] != other.metrics[k] for k in
               ("seeded.numpy_draw", "seeded.global_torch_draw", "seeded.global_numpy_draw"))
    assert first.data["splits"] != other.data["splits"]
    # A probe's numbers do not depend on which other probes ran before it.
    crowded = audit(3, probes=("performance", Boom, ConsumesGlobalRandomness, Seeded))
    assert {k: v for k, v in crowded.metrics.items() if k.startswith("seeded.")} == first.metrics
    assert derive_seed(3, "seeded") != derive_seed(3, "other")


# --- checkpoints ------------------------------------------------------------------------------


class Counted(Probe):
    name = "counted"
    options = {"level": 1}
    calls = 0

    def run(self, context) -> ProbeResult:
        type(self).calls += 1
        return ProbeResult(name=self.name, status="passed",
                           metrics={"logit_sum": float(context.clean_logits.sum())})


class MustNotRun(Probe):
    name = "counted"  # same probe name as Counted: its finished result is on disk
    options = {"level": 1}

    def run(self, context) -> ProbeResult:
        raise AssertionError("should have been served from the checkpoint")


class FlakyThenFine(Probe):
    name = "boom"

    def run(self, context) -> ProbeResult:
        return ProbeResult(name=self.name, status="passed")


def test_resume_serves_finished_probes_from_the_checkpoint(tmp_path):
    data = id_data()
    Counted.calls = 0

    def audit(*probes, seed=0, options=None):
        return run_audit(id_adapter(IdRecorder()), data, probes=list(probes), seed=seed,
                         options=options, checkpoint_dir=tmp_path)

    first = audit(Counted, Boom)
    assert Counted.calls == 1 and first.probes["boom"].status == "error"
    second = audit(MustNotRun, FlakyThenFine)
    assert second.probes["counted"] == first.probes["counted"]
    # An errored probe is never cached: it runs again on resume.
    assert second.probes["boom"].status == "passed"

    audit(Counted, seed=1)  # another seed is another audit
    assert Counted.calls == 2
    audit(Counted, options={"counted": {"level": 2}})  # other options: recomputed
    assert Counted.calls == 3
    audit(Counted(level=2))  # a probe instance configured differently: recomputed too
    assert Counted.calls == 4
    audit(Counted(level=2))
    assert Counted.calls == 4
    for stored in tmp_path.rglob("counted.json"):
        stored.write_text("{ not json")
    audit(Counted)  # a damaged checkpoint is recomputed, not trusted
    assert Counted.calls == 5


def test_in_memory_models_do_not_share_checkpoints(tmp_path):
    data = id_data()
    Counted.calls = 0
    run_audit(id_adapter(IdRecorder()), data, probes=[Counted], checkpoint_dir=tmp_path)
    other = IdRecorder()
    with torch.no_grad():
        other.linear.weight.mul_(-1)  # a different model, no file hash to tell them apart
    run_audit(id_adapter(other), data, probes=[Counted], checkpoint_dir=tmp_path)
    assert Counted.calls == 2


# --- context and progress ---------------------------------------------------------------------


def test_context_generators_are_seeded_per_name():
    context = build_context(id_adapter(IdRecorder()), id_data(), seed=5)
    a = torch.rand(3, generator=context.generator("a"))
    assert torch.equal(a, torch.rand(3, generator=context.generator("a")))
    assert not torch.equal(a, torch.rand(3, generator=context.generator("b")))
    assert context.rng("a").random() == context.rng("a").random()
    assert len(context.splits["calibration"]) + len(context.splits["evaluation"]) == N


def test_empty_data_is_bad_input():
    empty = AuditData(name="empty", x=torch.zeros(0, 5), y=torch.zeros(0, dtype=torch.long),
                      modality="tabular", input_range=None)
    with pytest.raises(AuditkitInputError, match="no examples"):
        build_context(id_adapter(IdRecorder()), empty)


def test_result_of_a_real_run_is_plain_json(tmp_path):
    result = run_audit(id_adapter(IdRecorder()), id_data(), probes=["performance", Boom])
    assert AuditResult.from_json(result.to_json()) == result
