"""Budgets sized to the clock: the plan follows the measured cost, deterministically."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from auditkit.adapters import TorchModelAdapter
from auditkit.data import AuditData
from auditkit.options import option
from auditkit.pipeline import run_audit
from auditkit.probes.adversarial.sizing import MIN_ATTACKED_COSTLY, MIN_EVAL_SAMPLES
from auditkit.probes.base import Probe
from auditkit.probes.memorization.sizing import MIN_TRAIN
from auditkit.sizing import (
    BUDGET_SECONDS,
    Cost,
    ProbeSizing,
    measure_cost,
    plan_work,
    small_model_reason,
)

PROBES = ["adversarial", "memorization", "calibration", "bias"]


def _cost(backward: float, forward: float | None = None, train: float | None = None) -> Cost:
    forward = backward / 2 if forward is None else forward
    return Cost(
        device="cpu",
        forward_s=forward,
        backward_s=backward,
        train_step_s=train or backward * 1.5,
        batch_size=8,
        parameters=1_000_000,
        threads=2,
    )


# A CIFAR-shaped ResNet-18 and a ResNet-50 at 224 px on 2 busy CPU cores (measured orders).
RESNET18 = _cost(0.03, 0.01, 0.05)
RESNET50 = _cost(0.8, 0.3, 2.0)


# The demo CNN (38,282 parameters) as measure_cost read it on an idle core, and the same reading
# with every pass twice as slow (two other jobs on the cores): fixed, so no test reads a clock.
DEMO_CNN = dataclasses.replace(
    _cost(5.3e-05, 2.0e-05, 7.0e-05), batch_size=64, parameters=38_282, threads=1,
    optimizer_step_s=0.001, forward_latency_s=0.0004, backward_latency_s=0.0011,
)
DEMO_CNN_BUSY = dataclasses.replace(
    DEMO_CNN, **{f: getattr(DEMO_CNN, f) * 2 for f in (
        "forward_s", "backward_s", "train_step_s", "optimizer_step_s", "forward_latency_s",
        "backward_latency_s")},
)


@pytest.mark.parametrize("cost", [DEMO_CNN, DEMO_CNN_BUSY], ids=["idle", "busy"])
@pytest.mark.parametrize("budget", ["fast", "standard"])
def test_small_models_keep_the_budgets_full_work(budget, cost, digits_data):
    """The demo CNN's cost, read on an idle or a busy machine, leaves every setting as the budget
    declares it, so its numbers never depend on the machine's speed."""
    from auditkit.demo import DIGITS_MEAN, DIGITS_STD, DigitsCNN

    torch.manual_seed(0)
    adapter = TorchModelAdapter(DigitsCNN(), input_shape=(1, 8, 8), mean=DIGITS_MEAN,
                                std=DIGITS_STD, device="cpu")
    plan = plan_work(cost, budget=budget, n_examples=len(digits_data), probes=PROBES)
    assert plan.options == {}, plan.summary()
    assert not plan.reduced
    assert sum(plan.estimates.values()) < BUDGET_SECONDS[budget]
    assert "nothing was reduced" in plan.summary()
    # Small is decided from the model's size, never from a timing: even a measurement taken
    # during a load spike (here, a ResNet-50's cost) leaves its work as declared.
    adapter.diagnose(digits_data.x[:64])
    reason = small_model_reason(adapter)
    assert reason is not None and "never resized" in reason
    spiked = plan_work(RESNET50, budget=budget, n_examples=len(digits_data), probes=PROBES,
                       small_model=reason)
    assert spiked.options == {} and "kept" in spiked.summary()


def test_an_exported_program_is_as_small_as_its_source(tmp_path):
    """A torch.export graph calls its operators directly, so no module hook fires: the adapter
    counts the graph's operator outputs instead. The demo's exported CNN was not "small" and
    its plan could follow a slow machine's timings; now it is never resized, like its source."""
    from auditkit.demo import DigitsCNN

    torch.manual_seed(0)
    eager = DigitsCNN().eval()
    from auditkit.loading import load_model, save_model

    path = save_model(eager, tmp_path / "cnn.pt2", example_input=torch.zeros(2, 1, 8, 8))
    exported = TorchModelAdapter(load_model(path).module, input_shape=(1, 8, 8), device="cpu")
    source = TorchModelAdapter(eager, input_shape=(1, 8, 8), device="cpu")
    assert exported._activation_bytes() == source._activation_bytes() > 0
    assert small_model_reason(exported) == small_model_reason(source) is not None


@pytest.mark.parametrize("cost", [RESNET18, RESNET50], ids=["resnet18", "resnet50"])
def test_expensive_models_are_sized_down_to_conclusive_floors(cost):
    plan = plan_work(cost, budget="fast", n_examples=60, probes=PROBES)
    assert plan.reduced
    adversarial = plan.options["adversarial"]
    assert adversarial["n_examples"] >= MIN_ATTACKED_COSTLY
    assert "examples attacked 60 → " in plan.summary()
    assert plan.options["memorization"]["train_size"] >= MIN_TRAIN
    # Smaller than the defaults' estimate, and the reasons say what changed and why.
    assert sum(plan.estimates.values()) < sum(plan.default_estimates.values())
    assert "training subset" in plan.summary() and "random-label" in plan.summary()
    # Memorization's clock is a safety net above what its whole epoch cap takes at the
    # measured cost, never the experiment.
    train = plan.options["memorization"]["train_size"]
    cap = 100 * train * (cost.train_step_s + cost.forward_s)
    assert plan.options["memorization"]["time_limit_s"] >= cap


def test_a_model_too_costly_even_at_the_floors_judges_eot_on_fewer_draws():
    plan = plan_work(RESNET50, budget="fast", n_examples=60, probes=PROBES)
    adversarial = plan.options["adversarial"]
    # The last steps, only once every other setting is at its floor: fewer verdict draws,
    # then no L2 attacks beside the headline.
    assert adversarial["n_examples"] == MIN_ATTACKED_COSTLY and adversarial["eot_samples"] == 2
    assert adversarial["eval_samples"] == MIN_EVAL_SAMPLES
    assert plan.reasons["adversarial"][-2].startswith("verdict draws 8 → 4")
    assert plan.reasons["adversarial"][-1].startswith("L2 attacks beside the L∞ headline")
    # A model whose work fits at a larger sample keeps every verdict draw.
    assert "eval_samples" not in plan_work(
        _cost(1e-3), budget="fast", n_examples=5000, probes=PROBES
    ).options.get("adversarial", {})


class _Passes(ProbeSizing):
    """A plugin's sizing: ``repeats`` forward passes over the audit data."""

    option_keys = ("repeats",)
    labels = {"repeats": "repeats"}

    def seconds(self, s, n_data, cost):
        return cost.forward_seconds(s["repeats"] * n_data, s["repeats"])

    def shrink(self, s, target, n_data, cost, fixed):
        # Deliberately ignores ``fixed``: the planner must restore the user's value anyway.
        wanted = max(1, int(target // self.seconds({"repeats": 1}, n_data, cost)))
        if wanted < s["repeats"]:
            reason = f"repeats {s['repeats']} → {wanted}"
            s["repeats"] = wanted
            return [reason]
        return []


class _Broken(_Passes):
    def seconds(self, s, n_data, cost):
        raise ZeroDivisionError("the plugin's estimate divides by zero")


def _plugin_probe(with_sizing: bool | ProbeSizing) -> type[Probe]:
    @dataclasses.dataclass(frozen=True)
    class RepeatOptions:
        repeats: int = option(10, "passes over the data", minimum=1)

    class Repeats(Probe):
        name = "repeats"
        Options = RepeatOptions
        sizing = (
            with_sizing if isinstance(with_sizing, ProbeSizing)
            else _Passes() if with_sizing else None
        )

        def run(self, context):  # pragma: no cover - only planned here
            raise AssertionError

    return Repeats


def test_a_plugin_probe_is_sized_through_the_sizing_it_declares():
    """A probe that declares a ``ProbeSizing`` shares the limit with the built-ins and gives up
    its own work in its own terms; the options the user set stay theirs; a probe without one
    runs as declared and is named as unsized."""
    plan = plan_work(RESNET18, budget="fast", n_examples=2000,
                     probes=[*PROBES, _plugin_probe(True)])
    assert plan.options["repeats"]["repeats"] < 10
    assert plan.reasons["repeats"] == [f"repeats 10 → {plan.options['repeats']['repeats']}"]
    assert "repeats" in plan.estimates and plan.not_sized == []
    assert "repeats: repeats 10 → " in plan.summary()
    kept = plan_work(RESNET18, budget="fast", n_examples=2000,
                     probes=[*PROBES, _plugin_probe(True)],
                     user_options={"repeats": {"repeats": 20}})
    assert "repeats" not in kept.options and "repeats" not in kept.reasons
    assert kept.estimates["repeats"] == pytest.approx(2 * plan.default_estimates["repeats"])
    # An instance is planned from its own options.
    instance = plan_work(RESNET18, budget="fast", n_examples=2000,
                         probes=[*PROBES, _plugin_probe(True)(repeats=20)])
    assert instance.default_estimates["repeats"] == kept.default_estimates["repeats"]
    unsized = plan_work(RESNET18, budget="fast", n_examples=2000,
                        probes=[*PROBES, _plugin_probe(False)])
    assert unsized.not_sized == ["repeats"] and "repeats" not in unsized.estimates
    assert unsized.to_dict()["not_sized"] == ["repeats"]


def test_a_plugins_failing_sizing_never_takes_the_audit_down():
    plan = plan_work(RESNET50, budget="fast", n_examples=60,
                     probes=[*PROBES, _plugin_probe(_Broken())])
    assert "repeats" in plan.not_sized and "repeats" not in plan.estimates
    assert plan.errors == {"repeats": "ZeroDivisionError: the plugin's estimate divides by zero"}
    assert "Sizing failed for repeats" in plan.summary()
    assert plan.options["adversarial"]  # the others are planned as usual


def test_options_the_user_set_make_the_others_give_up_work_instead():
    """The user's 1,000 attacked examples are kept; the other settings shrink in their place
    (before, shrinking the user's setting first, then restoring it, left the plan at 8,100 s
    of a 600 s limit with nothing reduced and a summary saying the work fit)."""
    cost = _cost(0.01)
    plan = plan_work(cost, budget="standard", n_examples=2000, probes=["adversarial"],
                     user_options={"adversarial": {"n_examples": 1000}})
    options = plan.options["adversarial"]
    assert "n_examples" not in options and options["steps"] == 10
    assert not any(r.startswith("examples attacked") for r in plan.reasons["adversarial"])
    everything = {"n_examples": 1000, "steps": 20, "restarts": 2, "eot_samples": 8,
                  "eval_samples": 16, "sweep": [0, 0.5, 1, 2], "l2_sweep": [0, 1]}
    kept = plan_work(cost, budget="standard", n_examples=2000, probes=["adversarial"],
                     user_options={"adversarial": everything})
    assert kept.options == {} and not kept.reduced
    assert "kept although it exceeds" in kept.summary() and "fits" not in kept.summary()


def test_a_time_limit_the_user_set_is_kept():
    plan = plan_work(RESNET50, budget="fast", n_examples=60, probes=PROBES,
                     user_options={"memorization": {"time_limit_s": 7.0}})
    assert "time_limit_s" not in plan.options["memorization"]
    assert plan_work(RESNET50, budget="fast", n_examples=60,
                     probes=PROBES).options["memorization"]["time_limit_s"] > 60


def test_plan_fits_the_limit_when_the_floors_allow_it():
    plan = plan_work(_cost(1e-3), budget="fast", n_examples=5000, probes=PROBES)
    assert plan.reduced
    assert not plan.unfit
    assert sum(plan.estimates.values()) <= plan.limit_seconds


def test_work_that_costs_next_to_nothing_is_never_given_up():
    """A ResNet-18 on 1,000 images at `standard`: the attacks and the training are sized down,
    but 100 bootstrap rounds (milliseconds) are not halved for a share of a second."""
    plan = plan_work(RESNET18, budget="standard", n_examples=1000, probes=PROBES)
    assert plan.reduced and plan.default_estimates["bias"] < 0.02 * plan.limit_seconds
    assert "bias" not in plan.options and "bias" not in plan.reasons


def test_max_minutes_replaces_the_budgets_limit():
    tight = plan_work(RESNET18, budget="standard", n_examples=2000, probes=PROBES, max_minutes=1)
    loose = plan_work(RESNET18, budget="standard", n_examples=2000, probes=PROBES,
                      max_minutes=6000)
    assert tight.limit_seconds == 60 and loose.limit_seconds == 360_000
    assert not loose.reduced
    assert tight.options["adversarial"]["n_examples"] < 1000


def test_a_busier_machine_gets_less_work():
    idle = plan_work(_cost(1e-3), budget="fast", n_examples=5000, probes=PROBES)
    busy = plan_work(_cost(4e-3), budget="fast", n_examples=5000, probes=PROBES)
    pairs = [
        (busy.options[p].get(k, default), idle.options.get(p, {}).get(k, default))
        for p, k, default in (("adversarial", "n_examples", 200), ("adversarial", "restarts", 1),
                              ("memorization", "train_size", 256))
    ]
    assert all(b <= i for b, i in pairs) and any(b < i for b, i in pairs), pairs


def test_options_the_user_set_are_never_changed():
    plan = plan_work(RESNET50, budget="fast", n_examples=60, probes=PROBES,
                     user_options={"adversarial": {"n_examples": 60, "steps": 20}})
    assert "n_examples" not in plan.options.get("adversarial", {})
    assert "steps" not in plan.options.get("adversarial", {})
    assert not any("examples attacked" in r for r in plan.reasons.get("adversarial", []))


def test_the_plan_is_a_pure_function_of_the_recorded_cost():
    first = plan_work(RESNET18, budget="fast", n_examples=60, probes=PROBES)
    recorded = json.loads(json.dumps(first.to_dict()))  # as audit.json stores it
    again = plan_work(Cost.from_dict(recorded["cost"]), budget="fast", n_examples=60,
                      probes=PROBES)
    assert again.to_dict() == first.to_dict()


def test_sizes_snap_to_a_ladder_so_timing_noise_does_not_move_the_plan():
    """Across a 4-fold range of costs in 3 % steps (timing noise), nearly every step leaves
    the plan as it was: sizes move only where the cost crosses a rung of the ladder."""
    costs = [1e-3 * 1.03**i for i in range(48)]
    plans = [
        plan_work(_cost(c), budget="fast", n_examples=5000, probes=PROBES).options for c in costs
    ]
    moved = sum(a != b for a, b in zip(plans, plans[1:], strict=False))
    assert moved <= len(costs) // 4, moved
    assert plans[0] != plans[-1]  # and the plan does follow the cost


# --- wired into the pipeline -------------------------------------------------------------------


class Sized(nn.Module):
    """Cheap to run, but past the small-model line (1.2M parameters), so the plan applies."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
        self.spare = nn.Parameter(torch.zeros(1_200_000))
        with torch.no_grad():  # the class is the brightest of the first three pixels
            self.head[1].weight.zero_()
            self.head[1].weight[:, :3] = 10 * torch.eye(3)
            self.head[1].bias.zero_()

    def forward(self, x):
        return self.head(x) + 0 * self.spare[0]


@pytest.fixture()
def small_setup():
    torch.manual_seed(0)
    net = Sized()
    x = torch.rand(300, 1, 4, 4)
    y = x.flatten(1)[:, :3].argmax(1)  # learnable, so the model is above chance and attacked
    data = AuditData(x=x, y=y, name="tiny")
    adapter = TorchModelAdapter(net, input_shape=(1, 4, 4), device="cpu")
    return adapter, data


def test_audit_runs_the_plan_records_it_and_reuses_the_recorded_cost(small_setup, tmp_path):
    adapter, data = small_setup
    # A recorded cost as if the model were a ResNet-50: the audit must follow the plan.
    result = run_audit(adapter, data, probes=["adversarial"], budget="fast",
                       cost=RESNET50.to_dict(), checkpoint_dir=tmp_path)
    sizing = result.settings["sizing"]
    planned = sizing["options"]["adversarial"]["n_examples"]
    assert result.probes["adversarial"].metrics["n_examples"] == planned < 200
    assert sizing["reasons"]["adversarial"] and sizing["summary"].startswith("Sized to")
    # Resume: the cost recorded in the checkpoint folder is reused, so the plan (and every
    # result) is the same although nothing was passed this time.
    resumed = run_audit(adapter, data, probes=["adversarial"], budget="fast",
                        checkpoint_dir=tmp_path, resume=True)
    assert resumed.settings["sizing"]["cost"] == sizing["cost"]
    assert resumed.probes["adversarial"].metrics == result.probes["adversarial"].metrics


def test_the_report_and_summary_say_what_was_reduced_and_why(small_setup):
    from auditkit.render.html import render_html
    from auditkit.render.markdown import render_markdown

    adapter, data = small_setup
    result = run_audit(adapter, data, probes=["adversarial"], budget="fast",
                       cost=RESNET50.to_dict())
    sentence = result.settings["sizing"]["summary"]
    assert "examples attacked" in sentence
    assert sentence in render_markdown(result)
    html = render_html(result)
    assert "Work sized" in html and "examples attacked" in html


def test_the_plan_is_said_before_the_probes_run(small_setup):
    """A user facing a long scan learns what the clock changed, and the estimate, up front."""
    import io

    from auditkit.progress import Progress

    adapter, data = small_setup
    stream = io.StringIO()
    result = run_audit(adapter, data, probes=["adversarial"], budget="fast",
                       cost=RESNET50.to_dict(),
                       progress=Progress(mode="lines", stream=stream, interval=0.0))
    lines = stream.getvalue().splitlines()
    assert lines[0] == f"auditkit: sizing: {result.settings['sizing']['summary']}"
    assert "examples attacked" in lines[0] and "started" in lines[1]
    quiet = io.StringIO()
    plain = run_audit(adapter, data, probes=["performance"], budget="fast",
                      progress=Progress(mode="lines", stream=quiet, interval=0.0))
    if not plain.settings["sizing"]["threads"]:  # (busy cores may switch the threads)
        assert "sizing" not in quiet.getvalue()  # nothing changed: nothing to say


def test_a_pilot_fgsm_step_tells_how_early_the_attacks_stop(small_setup):
    """Before planning, one FGSM step at the headline eps on the diagnostic sample: the share
    it fools is recorded with the cost, and those examples are charged the few PGD steps that
    go as far instead of every step."""
    from auditkit.attacks.pgd import FGSM
    from auditkit.context import diagnostic_sample_size

    adapter, data = small_setup
    result = run_audit(adapter, data, probes=["adversarial"], budget="fast")
    sizing = result.settings["sizing"]
    fooled = sizing["cost"]["pilots"]["adversarial"]["fgsm_fooled"]
    n = diagnostic_sample_size(tuple(data.input_shape))
    logits = adapter.logits(data.x[:n])
    right = logits.argmax(-1) == data.y[:n]
    out = FGSM(adapter.as_module(), eps=result.probes["adversarial"].metrics["eps"],
               box=(0.0, 1.0)).perturb(data.x[:n][right], data.y[:n][right])
    assert fooled == pytest.approx(float((out.margin > 0).float().mean()), abs=1e-4)
    # The estimate falls with the share fooled, and a share of 0 is the worst case exactly.
    estimates = []
    for share in (0.0, 0.5, 1.0):
        cost = dataclasses.replace(RESNET50, pilots={"adversarial": {"fgsm_fooled": share}})
        estimates.append(plan_work(cost, budget="standard", n_examples=1000,
                                   probes=["adversarial"]).default_estimates["adversarial"])
    worst = plan_work(RESNET50, budget="standard", n_examples=1000, probes=["adversarial"])
    assert estimates[0] == pytest.approx(worst.default_estimates["adversarial"])
    assert estimates[0] > estimates[1] > estimates[2]
    assert "counting every attack step" in worst.summary()
    piloted = plan_work(dataclasses.replace(RESNET50, pilots={"adversarial": {"fgsm_fooled": 0.9}}),
                        budget="fast", n_examples=60, probes=PROBES)
    assert "one FGSM step fooled 90% of a sample" in piloted.summary()
    # Recorded with the cost: the same plan comes back from audit.json.
    again = plan_work(Cost.from_dict(json.loads(json.dumps(piloted.cost.to_dict()))),
                      budget="fast", n_examples=60, probes=PROBES)
    assert again.to_dict() == piloted.to_dict()


def test_l2_attacks_go_last_and_a_gate_on_an_l2_metric_keeps_them(small_setup):
    """The L2 attacks beside an L∞ headline are the plan's last reduction (a ResNet-50's PGD at
    L2 0.5 ran every step: a third of the probe). A policy that gates an L2 metric keeps them."""
    import auditkit

    plan = plan_work(RESNET50, budget="fast", n_examples=60, probes=PROBES)
    assert plan.options["adversarial"]["l2_attacks"] is False
    assert "L2 attacks beside the L∞ headline → not run" in plan.summary()
    assert "their smallest conclusive size adversarial, " in plan.summary()
    alone = plan_work(RESNET50, budget="fast", n_examples=60, probes=["adversarial"])
    assert "its smallest conclusive size adversarial exceeds its share" in alone.summary()
    cheaper = plan_work(_cost(0.008), budget="fast", n_examples=60, probes=PROBES)
    assert cheaper.options["adversarial"]["n_examples"] == 20  # reduced, yet L2 kept
    assert "l2_attacks" not in cheaper.options["adversarial"]
    # Keeping L2 because the user asked changes nothing else, estimate included.
    standard = plan_work(_cost(0.05), budget="standard", n_examples=1000, probes=["adversarial"])
    asked = plan_work(_cost(0.05), budget="standard", n_examples=1000, probes=["adversarial"],
                      user_options={"adversarial": {"l2_attacks": True}})
    assert "l2_attacks" not in standard.options.get("adversarial", {})
    assert asked.options == standard.options
    assert asked.estimates == pytest.approx(standard.estimates)
    for asked in ({"l2_attacks": True}, {"l2_eps": 1.0}, {"l2_sweep": [0, 1]}):  # asked for L2
        kept = plan_work(RESNET50, budget="fast", n_examples=60, probes=PROBES,
                         user_options={"adversarial": asked})
        assert "l2_attacks" not in kept.options.get("adversarial", {}), asked
        assert "L2 attacks" not in kept.summary()

    adapter, data = small_setup
    dropped = auditkit.scan(adapter.model, (data.x, data.y), probes=["adversarial"], budget="fast",
                            cost=RESNET50.to_dict(),
                            policy={"gates": {"adversarial.robust_accuracy": ">= 0"}})
    assert "pgd_l2_accuracy" not in dropped.probes["adversarial"].metrics
    assert dropped.verdict == "passed"
    gated = auditkit.scan(adapter.model, (data.x, data.y), probes=["adversarial"], budget="fast",
                          cost=RESNET50.to_dict(),
                          policy={"gates": {"adversarial.pgd_l2_accuracy": ">= 0"}})
    metrics = gated.probes["adversarial"].metrics
    assert metrics["pgd_l2_accuracy"] is not None and metrics["l2_eps"] > 0
    assert gated.verdict == "passed"
    assert "L2 attacks" not in gated.settings["sizing"]["summary"]


def test_sizing_can_be_turned_off(small_setup):
    adapter, data = small_setup
    result = run_audit(adapter, data, probes=["performance"], budget="fast",
                       size_to_clock=False)
    assert "sizing" not in result.settings


def test_memorization_keeps_the_random_label_test_when_it_drops_levels():
    # Costlier and costlier models: first only true and random labels, then random labels
    # alone — always the random-label test.
    medium = plan_work(_cost(0.005), budget="fast", n_examples=60, probes=["memorization"])
    assert medium.options["memorization"]["corruption_levels"] == (0.0, 1.0)
    assert "true and random labels" in medium.summary()
    plan = plan_work(RESNET50, budget="fast", n_examples=60, probes=["memorization"])
    assert plan.options["memorization"]["corruption_levels"] == (1.0,)
    assert "random labels alone" in plan.summary()
    kept = plan_work(RESNET50, budget="fast", n_examples=60, probes=["memorization"],
                     user_options={"memorization": {"corruption_levels": (0.0, 0.5, 1.0)}})
    assert "corruption_levels" not in kept.options.get("memorization", {})


def test_batch_norm_models_are_charged_the_statistics_pass():
    """Memorization recomputes batch-norm statistics before each accuracy check (one more
    forward pass over the subset per epoch): the pilot counts the layers, the plan charges it."""
    import types

    import torchvision

    from auditkit.probes.memorization.sizing import MemorizationSizing

    def layers(model):
        context = types.SimpleNamespace(adapter=types.SimpleNamespace(model=model))
        return MemorizationSizing().pilot(None, context)["batch_norm_layers"]

    assert layers(torchvision.models.resnet18(num_classes=10)) == 20
    assert layers(nn.Sequential(nn.Linear(4, 4), nn.ReLU())) == 0
    plain = plan_work(RESNET50, budget="fast", n_examples=60, probes=["memorization"],
                      user_options={"memorization": {"train_size": 8, "corruption_levels": (1.0,)}})
    bn = plan_work(dataclasses.replace(RESNET50, pilots={"memorization": {"batch_norm_layers": 53}}),
                   budget="fast", n_examples=60, probes=["memorization"],
                   user_options={"memorization": {"train_size": 8, "corruption_levels": (1.0,)}})
    # One forward pass over the 8 examples more per epoch (plus the loop's overhead), over the
    # fewer epochs a network judged with recomputed statistics is expected to fit in.
    from auditkit.probes.memorization.sizing import (
        EXPECTED_EPOCHS,
        EXPECTED_EPOCHS_PRECISE_BN,
        MEMORIZATION_OVERHEAD,
    )

    assert EXPECTED_EPOCHS_PRECISE_BN < EXPECTED_EPOCHS
    plain_epoch = plain.default_estimates["memorization"] / EXPECTED_EPOCHS
    bn_epoch = bn.default_estimates["memorization"] / EXPECTED_EPOCHS_PRECISE_BN
    per_epoch = RESNET50.forward_seconds(8, 1)
    assert bn_epoch - plain_epoch == pytest.approx(MEMORIZATION_OVERHEAD * per_epoch)


@pytest.fixture(scope="module")
def linear_file(tmp_path_factory, digits_data):
    from auditkit.loading import ModelMetadata, save_model

    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).eval()
    meta = ModelMetadata(input_shape=(1, 8, 8), input_range=(0.0, 1.0), dataset="digits")
    path = tmp_path_factory.mktemp("sizing") / "linear.pt2"
    return save_model(net, path, example_input=digits_data.x[:2], metadata=meta)


def test_cli_cost_from_an_earlier_audit_gives_the_same_plan(tmp_path, linear_file):
    from typer.testing import CliRunner

    from auditkit.cli import app

    earlier = tmp_path / "earlier"
    earlier.mkdir()
    recorded = RESNET18.to_dict()
    (earlier / "audit.json").write_text(json.dumps({"settings": {"sizing": {"cost": recorded}}}))
    args = ["scan", str(linear_file), "--probes", "performance", "--budget", "fast",
            "--device", "cpu", "--cost-from", str(earlier / "audit.json")]
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "a")])
    assert res.exit_code in (0, 1), res.output
    audit = json.loads((tmp_path / "a" / "audit.json").read_text())
    # The plan was made with the recorded cost, not a new measurement.
    assert audit["settings"]["sizing"]["cost"] == recorded

    bad = CliRunner().invoke(app, [*args[:-1], str(linear_file), "--out", str(tmp_path / "b")])
    assert bad.exit_code == 2
    assert "--cost-from" in bad.output and "Traceback" not in bad.output


def test_only_examples_the_model_gets_right_count_as_attack_work():
    full = plan_work(RESNET18, budget="fast", n_examples=60, probes=["adversarial"])
    tenth = plan_work(RESNET18, budget="fast", n_examples=60, probes=["adversarial"],
                      clean_accuracy=0.1)
    # The attacks scale with the examples attacked; only the EOT verdicts judge every one.
    assert (full.default_estimates["adversarial"] / 10
            < tenth.default_estimates["adversarial"]
            < full.default_estimates["adversarial"] / 4)


@pytest.fixture()
def fake_clock(monkeypatch):
    """A clock that only moves when a model says its pass took time: ``fake_clock["t"]``. The
    tests below never read the real one, so a busy machine cannot change what they see."""
    from auditkit.sizing import cost

    clock = {"t": 0.0}
    monkeypatch.setattr(cost.time, "perf_counter", lambda: clock["t"])
    return clock


class _Waits(nn.Module):
    """A tiny linear model whose every call takes a fixed 40 ms of the fake clock plus 10 µs per
    example, as a pass does on cores shared with another job (the wait does not grow with the
    batch)."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.linear = nn.Linear(64, 10)

    def forward(self, x):
        self.clock["t"] += 0.04 + 1e-5 * len(x)
        return self.linear(x.flatten(1))


def test_a_wait_per_pass_is_measured_as_latency_not_as_cost_per_example(digits_data, fake_clock):
    adapter = TorchModelAdapter(_Waits(fake_clock), input_shape=(1, 8, 8), device="cpu")
    cost = measure_cost(adapter, digits_data.x[:64])
    # Most of the 40 ms is a wait per pass (the slope is kept at least a tenth of the average,
    # so examples are never free) ...
    assert 0.03 < cost.forward_latency_s <= 0.04, cost
    assert cost.forward_s < 0.0001, cost  # ... and per example: tens of µs, not the wait
    assert cost.backward_latency_s > 0.03, cost
    recorded = Cost.from_dict(json.loads(json.dumps(cost.to_dict())))
    assert recorded == cost


def test_busy_cores_are_charged_their_wait_once_per_pass_not_once_per_example():
    """Two readings of the same busy machine: a 16-example pass took 0.87 s. Charged per
    example (no latency) the plan cuts everything; split into a wait per pass plus a small
    per-example cost, it keeps more of the budget's work."""
    per_example = _cost(0.119, 0.0545)
    split = dataclasses.replace(
        _cost(0.004, 0.002), forward_latency_s=0.84, backward_latency_s=1.84
    )
    a = plan_work(per_example, budget="fast", n_examples=60, probes=PROBES)
    b = plan_work(split, budget="fast", n_examples=60, probes=PROBES)
    assert sum(b.default_estimates.values()) < sum(a.default_estimates.values()) / 2
    assert b.options.get("adversarial", {}).get("n_examples", 60) > a.options["adversarial"][
        "n_examples"]
    assert "per batched gradient pass" in b.summary()


class _SlowerOnMoreThreads(nn.Module):
    """Above the small-model size, and slower the more threads torch has (20 ms of the fake
    clock per thread) — as every pass is on cores another job keeps busy."""

    def __init__(self, clock):
        super().__init__()
        self.clock = clock
        self.wide = nn.Linear(64, 20_000)  # 1.3 M parameters: not a small model
        self.head = nn.Linear(20_000, 10)

    def forward(self, x):
        self.clock["t"] += 0.02 * torch.get_num_threads()
        return self.head(torch.relu(self.wide(x.flatten(1))))


def test_busy_cores_run_on_one_thread_when_it_is_faster_and_the_threads_come_back(
    digits_data, fake_clock,
):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        adapter = TorchModelAdapter(_SlowerOnMoreThreads(fake_clock), input_shape=(1, 8, 8), device="cpu")
        data = AuditData(x=digits_data.x[:120], y=digits_data.y[:120], name="digits")
        result = run_audit(adapter, data, probes=["performance"], budget="fast")
        threads = result.settings["sizing"]["threads"]
        assert threads["threads"] == 1 and threads["default"] == 2, threads
        assert threads["seconds"]["1"] < threads["seconds"]["2"]
        assert "Ran on 1 of 2 CPU threads" in result.settings["sizing"]["summary"]
        assert torch.get_num_threads() == 2  # restored after the scan
        # A small model is never switched, whatever the timings say.
        small = TorchModelAdapter(nn.Sequential(nn.Flatten(), nn.Linear(64, 10)),
                                  input_shape=(1, 8, 8), device="cpu")
        kept = run_audit(small, data, probes=["performance"], budget="fast")
        assert kept.settings["sizing"]["threads"] is None
    finally:
        torch.set_num_threads(before)


@pytest.fixture()
def clocked():
    """``clocked(took)``: a CPU adapter whose passes take ``took(batch)`` seconds of a fake clock,
    with torch on 2 threads (given back after the test)."""
    import types

    from auditkit import sizing

    clock = {"t": 0.0}

    def adapter(took):
        def logits(batch):
            clock["t"] += took(batch)
            return torch.zeros(len(batch), 3)

        return types.SimpleNamespace(device=torch.device("cpu"), logits=logits)

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sizing.cost.time, "perf_counter", lambda: clock["t"])
        yield adapter
    torch.set_num_threads(before)


def _on_threads(two_or_more, one=0.01):
    """Seconds per pass: ``two_or_more()`` on several threads, ``one`` on one."""
    return lambda batch: two_or_more() if torch.get_num_threads() > 1 else one


def test_busy_cores_are_judged_by_the_typical_pass_not_the_luckiest(clocked):
    """On shared cores a multi-threaded pass is sometimes fast (the other job left every core
    free for a moment) and otherwise stalls; the scan pays the average pass, so the choice of
    threads compares means: neither one lucky timing nor a stall in one pass out of four may keep
    the scan on threads that stall."""
    from auditkit import sizing

    erratic = iter([0.001, 0.05, 0.001, 0.05] * 4)
    adapter = clocked(_on_threads(lambda: next(erratic)))
    choice = sizing.choose_threads(adapter, torch.rand(8, 1, 4, 4), small=False)
    assert choice is not None and choice["threads"] == 1  # min() would have kept 2 (1 ms)
    assert torch.get_num_threads() == 1
    steady = iter([0.004] * 9)  # the first: the 2-example pass that sizes the check
    adapter = clocked(_on_threads(lambda: next(steady)))
    torch.set_num_threads(2)
    assert sizing.choose_threads(adapter, torch.rand(8, 1, 4, 4), small=False) is None
    assert torch.get_num_threads() == 2  # an idle machine keeps its threads
    # One stall in four passes: the median (4 ms) would keep 2 threads, the mean does not.
    stalls = iter([0.004, 0.004, 0.004, 0.05, 0.004])
    adapter = clocked(_on_threads(lambda: next(stalls)))
    choice = sizing.choose_threads(adapter, torch.rand(8, 1, 4, 4), small=False)
    assert choice is not None and choice["threads"] == 1
    # Decided at the stall: the mean of 4 could no longer be 1.25× faster than one thread.
    assert next(stalls) == 0.004
    # Steady, but 2 threads only a tenth faster: not worth their stalls beside another job.
    torch.set_num_threads(2)
    adapter = clocked(_on_threads(lambda: 0.009))
    choice = sizing.choose_threads(adapter, torch.rand(8, 1, 4, 4), small=False)
    assert choice is not None and choice["threads"] == 1


def test_cores_that_turn_busy_during_the_scan_switch_the_threads_before_the_next_probe(
    small_setup, monkeypatch,
):
    """The thread check is repeated (on a 2-example pass) before each later probe until it
    switches once: a job that starts, or was quiet, when the scan began is noticed too."""
    from auditkit import sizing

    adapter, data = small_setup
    calls = []

    def choose(adapter, x, *, small, size=16):
        calls.append(size)
        if size == 16:
            return None  # quiet cores when the scan starts
        torch.set_num_threads(1)
        return {"threads": 1, "default": 2, "seconds": {"2": 0.8, "1": 0.01}}

    monkeypatch.setattr(sizing, "choose_threads", choose)
    before = torch.get_num_threads()
    result = run_audit(adapter, data, probes=["performance", "calibration", "bias"],
                       budget="fast", cost=RESNET50.to_dict())
    assert calls == [16, 2]  # at the start, then before calibration; never again once switched
    threads = result.settings["sizing"]["threads"]
    assert threads["from_probe"] == "calibration" and threads["threads"] == 1
    assert "Ran on 1 of 2 CPU threads from the calibration probe on" in (
        result.settings["sizing"]["summary"])
    assert torch.get_num_threads() == before  # restored after the scan


def test_the_thread_check_is_repeated_only_before_probes_that_cost_ten_times_it(
    small_setup, monkeypatch,
):
    """Six passes of 2 examples before a probe that reads the clean pass (bias) would cost more
    than the probe: the check is skipped there, and made before a costly one."""
    from auditkit import sizing

    adapter, data = small_setup
    calls = []

    def choose(adapter, x, *, small, size=16):
        calls.append(size)
        return None  # the cores stay quiet

    monkeypatch.setattr(sizing, "choose_threads", choose)
    result = run_audit(adapter, data, probes=["performance", "calibration", "bias"],
                       budget="fast", cost=RESNET50.to_dict())
    estimates = result.settings["sizing"]["estimated_seconds"]
    assert estimates["calibration"] > 10 * 6 * RESNET50.forward_seconds(2, 1) > estimates["bias"]
    assert calls == [16, 2]  # at the start, before calibration; not before bias


def test_a_costly_model_is_checked_for_threads_on_a_few_examples(clocked):
    """A ResNet-50 at 224×224 is timed on 4 examples, not 16: waits between threads show as
    well, at a quarter of the check's cost."""
    from auditkit import sizing

    sizes = []

    def resnet50(batch):
        sizes.append(len(batch))
        # 30 ms per example on 2 threads, as a ResNet-50 at 224 px on an idle machine
        return 0.06 * len(batch) / torch.get_num_threads()

    adapter = clocked(resnet50)
    assert sizing.choose_threads(adapter, torch.rand(32, 3, 8, 8), small=False) is None
    assert sizes == [2] + [4] * 6
    sizes.clear()
    adapter = clocked(lambda batch: sizes.append(len(batch)) or 0.0)  # a cheap model
    sizing.choose_threads(adapter, torch.rand(32, 3, 8, 8), small=False)
    assert sizes == [2] + [16] * 6


class _Convs(nn.Module):
    """A conv net past the small-model line (1.2M parameters)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Linear(8 * 8 * 8, 3)
        self.spare = nn.Parameter(torch.zeros(1_200_000))

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).flatten(1)) + 0 * self.spare[0]


def _fake_layout_timings(monkeypatch, adapter, seconds: dict[bool, float]) -> list[bool]:
    """``_timings`` that runs the pass and reports ``seconds`` by the adapter's layout."""
    from auditkit import sizing

    seen = []

    def timings(fn, device, repeats):
        fn()
        seen.append(adapter.channels_last)
        return [seconds[adapter.channels_last]] * repeats

    monkeypatch.setattr(sizing.layout, "_timings", timings)
    return seen


@pytest.mark.parametrize("faster", [True, False])
def test_a_conv_net_on_a_cpu_runs_in_channels_last_only_where_it_measured_faster(
    monkeypatch, faster,
):
    from auditkit import sizing

    torch.manual_seed(0)
    net = _Convs()
    adapter = TorchModelAdapter(net, input_shape=(3, 8, 8), device="cpu")
    x = torch.rand(16, 3, 8, 8)
    default = adapter.predict_logits(x)
    seen = _fake_layout_timings(monkeypatch, adapter, {False: 1.0, True: 0.5 if faster else 0.95})
    record = sizing.choose_layout(adapter, x, small=False)
    assert seen == [False, True] * 3  # interleaved, so a change of load meets both layouts
    assert record == {
        "channels_last": faster,
        "seconds": {"default": 1.0, "channels_last": 0.5 if faster else 0.95},
    }
    assert adapter.channels_last is faster
    layout = torch.channels_last if faster else torch.contiguous_format
    assert net.conv.weight.is_contiguous(memory_format=layout)
    # The same weights, the same answers up to float round-off.
    assert torch.allclose(adapter.predict_logits(x), default, atol=1e-5)
    # Kept as they are: a small model (bit-identical numbers), an MLP, a scripted module.
    assert sizing.choose_layout(adapter, x, small=True) is None
    mlp = TorchModelAdapter(nn.Sequential(nn.Flatten(), nn.Linear(192, 3)),
                            input_shape=(3, 8, 8), device="cpu")
    assert sizing.choose_layout(mlp, x, small=False) is None


def test_the_layout_is_recorded_reused_on_resume_and_given_back_after_the_scan(
    monkeypatch, tmp_path,
):
    from auditkit import sizing

    torch.manual_seed(0)
    net = _Convs()
    x = torch.rand(120, 3, 8, 8)
    adapter = TorchModelAdapter(net, input_shape=(3, 8, 8), device="cpu")
    data = AuditData(x=x, y=adapter.predict_logits(x).argmax(-1), name="tiny")
    switched = []
    real = adapter.use_channels_last

    def logged(on):
        switched.append(on)
        real(on)

    monkeypatch.setattr(adapter, "use_channels_last", logged)
    _fake_layout_timings(monkeypatch, adapter, {False: 1.0, True: 0.5})
    result = run_audit(adapter, data, probes=["performance", "calibration"], budget="fast",
                       checkpoint_dir=tmp_path)
    sizing_record = result.settings["sizing"]
    assert sizing_record["cost"]["layout"]["channels_last"] is True
    assert "channels_last memory layout" in sizing_record["summary"]
    assert switched[-2:] == [True, False]  # chosen (and applied) for the scan, then given back
    assert not adapter.channels_last and net.conv.weight.is_contiguous()
    # Resume: the recorded choice is applied, not measured again.
    switched.clear()
    monkeypatch.setattr(sizing, "choose_layout", lambda *a, **k: pytest.fail("measured again"))
    resumed = run_audit(adapter, data, probes=["performance", "calibration"], budget="fast",
                        checkpoint_dir=tmp_path, resume=True)
    assert resumed.settings["sizing"]["cost"] == sizing_record["cost"]
    assert switched == [True, False]
    assert resumed.probes["calibration"].metrics == result.probes["calibration"].metrics


class _Views(_Convs):
    """``view`` after a convolution: fine in the default layout, an error in channels_last."""

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).view(len(x), -1)) + 0 * self.spare[0]


class _Asserts(_Convs):
    """Refuses channels_last with an assertion, not a RuntimeError."""

    def forward(self, x):
        h = self.conv(x)
        assert h.is_contiguous(), "needs NCHW"
        return self.head(torch.relu(h).flatten(1)) + 0 * self.spare[0]


class _ReadsMemory(_Convs):
    """Reads its activations in memory order: no error in channels_last, other answers."""

    def forward(self, x):
        h = torch.relu(self.conv(x))
        flat = torch.as_strided(h, (len(h), h[0].numel()), (h[0].numel(), 1))
        return self.head(flat) + 0 * self.spare[0]


@pytest.mark.parametrize("net", [_Views, _Asserts, _ReadsMemory])
def test_a_model_that_breaks_or_changes_in_channels_last_keeps_its_layout(monkeypatch, net):
    from auditkit import sizing

    torch.manual_seed(0)
    adapter = TorchModelAdapter(net(), input_shape=(3, 8, 8), device="cpu")
    x = torch.rand(8, 3, 8, 8)
    before = adapter.predict_logits(x)
    _fake_layout_timings(monkeypatch, adapter, {False: 1.0, True: 0.5})  # faster, were it to run
    assert sizing.choose_layout(adapter, x, small=False) is None
    assert not adapter.channels_last and adapter.model.conv.weight.is_contiguous()
    assert torch.equal(adapter.predict_logits(x), before)


def test_a_failure_after_the_layout_switch_gives_the_layout_back(monkeypatch):
    """Sizing that fails after choosing channels_last (here: the cost measurement) runs the
    budget as declared, in the model's own layout."""
    from auditkit import sizing

    torch.manual_seed(0)
    net = _Convs()
    x = torch.rand(60, 3, 8, 8)
    adapter = TorchModelAdapter(net, input_shape=(3, 8, 8), device="cpu")
    data = AuditData(x=x, y=adapter.predict_logits(x).argmax(-1), name="tiny")
    _fake_layout_timings(monkeypatch, adapter, {False: 1.0, True: 0.5})

    def broken(*args, **kwargs):
        assert adapter.channels_last  # measured in the layout just chosen
        raise ValueError("no cost")

    monkeypatch.setattr(sizing, "measure_cost", broken)
    from auditkit import pipeline

    layouts = []
    real_run_probe = pipeline.run_probe

    def run_probe(probe, context, **kwargs):
        layouts.append(context.adapter.channels_last)
        return real_run_probe(probe, context, **kwargs)

    monkeypatch.setattr(pipeline, "run_probe", run_probe)
    result = run_audit(adapter, data, probes=["performance"], budget="fast")
    assert "sizing" not in result.settings
    assert layouts == [False]  # the probes ran in the model's own layout
    assert not adapter.channels_last and net.conv.weight.is_contiguous()


def test_a_recorded_channels_last_layout_is_applied_only_where_it_can_be():
    """``--cost-from`` may bring another model's cost: its channels_last choice is not forced
    on a model that cannot take it (no 2-d convolution, scripted, small), nor on one the user put
    in channels_last (given back as it came), and the plan says so."""
    from auditkit.sizing import apply_layout

    cost = dataclasses.replace(
        RESNET50, layout={"channels_last": True, "seconds": {"default": 1.0, "channels_last": 0.5}}
    ).to_dict()
    x = torch.rand(60, 3, 8, 8)
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(192, 3_000), nn.Linear(3_000, 3))  # not small
    users = _Convs().to(memory_format=torch.channels_last)
    for net in (mlp, torch.jit.script(_Convs()), users):
        adapter = TorchModelAdapter(net, input_shape=(3, 8, 8), device="cpu")
        data = AuditData(x=x, y=adapter.predict_logits(x).argmax(-1), name="tiny")
        result = run_audit(adapter, data, probes=["performance"], budget="fast", cost=cost)
        sizing_record = result.settings["sizing"]
        assert sizing_record["channels_last"] is False
        assert "does not apply to this model" in sizing_record["summary"]
    assert users.conv.weight.is_contiguous(memory_format=torch.channels_last)
    small = TorchModelAdapter(nn.Sequential(nn.Conv2d(3, 2, 3), nn.Flatten(), nn.Linear(72, 3)),
                              input_shape=(3, 8, 8), device="cpu")
    assert apply_layout(small, cost["layout"], small=True) is False
    assert not small.channels_last
    # An adapter without layouts (ONNX, scikit-learn) meets a recorded choice without error.
    import types

    onnx_like = types.SimpleNamespace(device=torch.device("cpu"), model=None)
    assert apply_layout(onnx_like, cost["layout"], small=False) is False


def test_a_probe_the_caller_built_is_still_rechecked_for_threads(small_setup, monkeypatch):
    """A probe passed as an instance has no estimate in the plan: the check is made."""
    from auditkit import sizing

    adapter, data = small_setup
    calls = []
    monkeypatch.setattr(sizing, "choose_threads",
                        lambda adapter, x, *, small, size=16: calls.append(size))
    plan = run_audit(adapter, data, probes=["performance"], budget="fast",
                     cost=RESNET50.to_dict()).settings["sizing"]
    assert "mine" not in plan["estimated_seconds"]
    recorded = sizing.WorkPlan(budget="fast", limit_seconds=60.0, cost=RESNET50)
    sizing.recheck_threads(adapter, data.x, recorded, "mine")
    assert calls == [16, 2]
