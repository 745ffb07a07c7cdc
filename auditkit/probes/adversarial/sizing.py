"""What the adversarial probe's work costs, and how it shrinks to fit the clock."""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from auditkit.sizing import LADDER_EXAMPLES, Cost, ProbeSizing

#: Floors: below them the experiment stops meaning what its name says.
MIN_ATTACKED = 50
#: A model too costly to attack 50 examples within the limit even with the curves and
#: checks at their smallest: this many (a small sample, said as such in the plan).
MIN_ATTACKED_COSTLY = 20
MIN_EOT_SAMPLES = 2
#: Draws that judge an EOT verdict (the expected prediction under the transformations).
MIN_EVAL_SAMPLES = 4
MIN_STEPS = 10
#: What the probe's bookkeeping (best iterates, EOT transformations, margins) adds to the
#: bare passes: attack by attack, a ResNet-50 at 224×224 on 2 idle CPU cores took 0.9–1.4×
#: its passes at the measured cost (EOT's transformations the most).
ADVERSARIAL_OVERHEAD = 1.4
#: Examples per attack batch the estimates assume (the CPU default; a GPU's are larger).
_ATTACK_BATCH = 256


def attacked_radii(given: Sequence[float] | None, multiples: Sequence[float]) -> int:
    """Radii the gradient attacks run at: the curve's nonzero radii and the headline (a
    radius of 0 changes no input and is not attacked). Explicit radii may not include the
    headline, which is then one more."""
    if given is not None:
        return len({float(v) for v in given if v > 0}) + 1
    return len({float(m) for m in multiples if m > 0} | {1.0})


def _passes(s: Mapping[str, Any]) -> tuple[float, float, float]:
    """Per attacked example: gradient example-passes, the batched gradient passes they take per
    batch of examples (EOT's draws of one step share a pass), and forward passes (one batched
    pass each).

    PGD stops an example at its first fooling iterate. Without a pilot (``fgsm_fooled``
    absent) every example is charged every step: a model no attack fools. With one, the share
    ``f`` that one FGSM step at the headline eps fooled is charged the steps PGD's step size
    (2.5·eps/steps) needs to go as far, and only the others are charged every step and the
    checks that attack survivors alone (restarts, doubled steps). A batch runs as long as its
    slowest example, so the batched passes stay the worst case."""
    steps = int(s["steps"])
    restarts = int(s["restarts"])
    radii = int(s["radii"]) + int(s["l2_radii"])
    eot = int(s["eot_samples"])
    fooled = min(max(float(s.get("fgsm_fooled", 0.0)), 0.0), 1.0)
    survivors = 1.0 - fooled

    def pgd(n: int) -> float:
        return fooled * min(n, math.ceil(n / 2.5) + 1) + survivors * n

    batched = (
        radii * (1 + steps)  # FGSM and PGD at every radius, both norms
        + (restarts * steps if restarts > 1 else 0)  # the restarts at the headline eps
        + 2 * steps  # the doubled-steps check
        + 2 * steps  # the unbounded attack (and its retries on the few survivors)
        + 2  # input-gradient statistics
    )
    gradients = (
        radii * (1 + pgd(steps))
        + (restarts * steps * survivors if restarts > 1 else 0)
        + 2 * steps * survivors
        + 2 * pgd(steps)
        + 2
        + eot * steps  # EOT-PGD: one pass of ``eot`` copies per step, every step
    )
    batched += steps * eot  # ... in batches ``eot`` times smaller
    if s.get("autoattack"):
        gradients += 4 * 100
        batched += 4 * 100
    forwards = radii * (int(s["noise_draws"]) + 1)
    return gradients, batched, forwards


class AdversarialSizing(ProbeSizing):
    """Fewer examples attacked (down to 50), one restart, 4 EOT draws, the curves at the
    headline radii only, PGD-10; then, for a model too costly even so, down to 20 examples
    attacked, 2 EOT draws and 4 draws per verdict (a small sample: the report's interval says how
    wide), and last the L2 attacks beside an L∞ headline."""

    option_keys = (
        "n_examples", "steps", "restarts", "eot_samples", "eval_samples", "sweep", "l2_sweep",
        "l2_attacks",
    )
    labels = {
        "n_examples": "examples attacked",
        "restarts": "PGD restarts",
        "eot_samples": "EOT draws",
        "eval_samples": "verdict draws",
        "steps": "PGD steps",
        "sweep": "accuracy-vs-eps curves",
        "l2_sweep": "accuracy-vs-eps curves",
        "l2_attacks": "L2 attacks",
    }
    # (Not l2_attacks: the shrinker never changes it when the user set it, and restoring
    # l2_radii with it would undo the curve step's cut in the estimate.)
    derived = {"sweep": "radii", "l2_sweep": "l2_radii"}
    #: A policy gate on an L2 metric keeps the L2 attacks whatever the clock.
    gated = {m: {"l2_attacks": True} for m in ("fgsm_l2_accuracy", "pgd_l2_accuracy", "l2_eps")}

    def settings(self, opts: Any, *, budget: str, clean_accuracy: float) -> dict[str, Any]:
        from auditkit.probes.adversarial.options import BUDGET_SWEEPS

        sweeps = BUDGET_SWEEPS[budget]
        return {
            "n_examples": opts.n_examples,
            "steps": opts.steps,
            "restarts": opts.restarts,
            "eot_samples": opts.eot_samples,
            "eval_samples": opts.eval_samples,
            "noise_draws": opts.noise_draws,
            "radii": attacked_radii(opts.sweep, sweeps["sweep"]),
            "l2_attacks": bool(opts.l2_attacks),
            "l2_radii": (
                attacked_radii(opts.l2_sweep, sweeps["l2_sweep"])
                if opts.norm == "Linf" and opts.l2_attacks
                else 0
            ),
            "autoattack": bool(opts.autoattack),
            # Only the examples the model gets right are attacked (the clean accuracy is
            # known before the probes run).
            "attacked_share": min(1.0, max(float(clean_accuracy), 0.02)),
        }

    def pilot(self, probe: Any, context: Any) -> dict[str, float]:
        """One FGSM step at the headline eps on the correctly classified examples of the
        diagnostic sample: the share it fools (deterministic; for a deterministic float32
        model only — a random model or a bf16 search runs every PGD step)."""
        from auditkit.attacks.pgd import FGSM
        from auditkit.context import diagnostic_sample_size
        from auditkit.probes.adversarial._runner import attack_space, detect_stochastic
        from auditkit.probes.adversarial.measure import make_plan

        adapter, data = context.adapter, context.data
        if not adapter.supports_gradients or probe.opts.mixed_precision:
            return {}
        n = min(len(data), diagnostic_sample_size(tuple(data.input_shape)))
        right = context.clean_correct[:n].bool()
        if not bool(right.any()):
            return {}
        space = attack_space(adapter, data)
        z = space.to_space(data.x[:n][right])
        if detect_stochastic(adapter, space, z)[0]:
            return {}
        plan = make_plan(probe.opts, probe.budget, context, False)
        out = FGSM(space.module, eps=plan.eps, norm=plan.norm, box=space.box).perturb(
            z.to(adapter.device), data.y[:n][right].to(adapter.device)
        )
        return {"fgsm_fooled": round(float((out.margin > 0).float().mean()), 4)}

    def seconds(self, s: Mapping[str, Any], n_data: int, cost: Cost) -> float:
        # The EOT verdicts judge every example, clean and attacked, on ``eval_samples`` draws.
        n = min(int(s["n_examples"]), n_data)
        gradients, gradient_batches, forwards = _passes(s)
        attacked = n * float(s.get("attacked_share", 1.0))
        batches = math.ceil(attacked / _ATTACK_BATCH)
        judged = cost.forward_seconds(
            n * 2 * int(s["eval_samples"]),
            2 * math.ceil(n * int(s["eval_samples"]) / _ATTACK_BATCH),
        )
        return ADVERSARIAL_OVERHEAD * (
            cost.gradient_seconds(attacked * gradients, batches * gradient_batches)
            + cost.forward_seconds(attacked * forwards, batches * forwards)
            + judged
        )

    def shrink(
        self, s: dict[str, Any], target: float, n_data: int, cost: Cost, fixed: Collection[str]
    ) -> list[str]:
        reasons = []
        default_n = min(int(s["n_examples"]), n_data)
        default_eot = int(s["eot_samples"])

        def over(key: str) -> bool:
            """Over the target, and ``key`` is not the user's to keep."""
            return key not in fixed and self.seconds(s, n_data, cost) > target

        def examples(floor: int) -> None:
            self.fit_to_ladder(
                s, "n_examples", LADDER_EXAMPLES, floor, current=min(int(s["n_examples"]), n_data),
                target=target, n_data=n_data, cost=cost, fixed=fixed,
            )

        examples(MIN_ATTACKED)
        if over("restarts") and s["restarts"] > 1:
            reasons.append(f"PGD restarts {s['restarts']} → 1")
            s["restarts"] = 1
        if over("eot_samples") and s["eot_samples"] > 4:
            s["eot_samples"] = 4
        curves = not {"sweep", "l2_sweep"} & set(fixed)
        if curves and over("sweep") and s["radii"] + s["l2_radii"] > (2 if s["l2_radii"] else 1):
            reasons.append(
                f"accuracy-vs-eps curves: {s['radii'] + s['l2_radii']} attacked radii → the "
                "headline radii only"
            )
            s["sweep"], s["radii"] = (0.0,), 1
            if s["l2_radii"]:
                s["l2_sweep"], s["l2_radii"] = (0.0,), 1
        if over("steps") and s["steps"] > MIN_STEPS:
            reasons.append(f"PGD steps {s['steps']} → {MIN_STEPS}")
            s["steps"] = MIN_STEPS
        examples(MIN_ATTACKED_COSTLY)
        if over("eot_samples") and s["eot_samples"] > MIN_EOT_SAMPLES:
            s["eot_samples"] = MIN_EOT_SAMPLES
        if s["eot_samples"] < default_eot:
            reasons.append(f"EOT draws {default_eot} → {s['eot_samples']}")
        if over("eval_samples") and s["eval_samples"] > MIN_EVAL_SAMPLES:
            # Their forward passes are a small part of the worst-case estimate but, for a model
            # that attacks fool within a few steps, a third of the probe's time.
            reasons.append(
                f"verdict draws {s['eval_samples']} → {MIN_EVAL_SAMPLES} (passes averaged per "
                "EOT verdict, or per verdict on a random model)"
            )
            s["eval_samples"] = MIN_EVAL_SAMPLES
        if over("l2_attacks") and s["l2_radii"] and not {"l2_eps", "l2_sweep"} & set(fixed):
            # Last: a second threat model beside the headline. At a small L2 radius on large
            # images (0.5 on 224×224) few examples fall early, and its PGD ran every step: 17 s
            # of a ResNet-50's 50 s. A user who set an L2 radius or curve asked for them.
            reasons.append(
                "L2 attacks beside the L∞ headline → not run (the headline threat model is "
                "attacked in full; a policy gate on an L2 metric keeps them)"
            )
            s["l2_attacks"], s["l2_radii"] = False, 0
        if min(int(s["n_examples"]), n_data) < default_n:
            reasons.insert(0, f"examples attacked {default_n} → {s['n_examples']}")
        return reasons
