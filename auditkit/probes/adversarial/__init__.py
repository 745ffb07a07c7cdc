"""Adversarial robustness: FGSM, PGD and EOT, worst case per example, and a validity checklist.

Most published robustness claims that later collapsed were evaluation mistakes (Athalye et al.
2018; Carlini et al. 2019), so next to the numbers the probe runs the checks that catch them
and reports each one with its numbers. A failed check marks the probe ``warned``.

Threat model. Perturbations ``δ`` with ``‖δ‖ ≤ eps`` (L∞ by default, L2 as well) such that
``x + δ`` stays in the adapter's input box. Defaults per data (options override):

==================================  ===========  ========  ==================================
data                                L∞ eps       L2 eps    why
==================================  ===========  ========  ==================================
``digits`` / any 1×8×8 images        0.1          0.5       64 coarse pixels: 8/255 barely
                                                            moves them; 0.1 is ~1.6 grey levels
1×28×28 images (MNIST-like)         0.3          2.0       Madry et al.'s MNIST setting
other images                        8/255        0.5       CIFAR-10 / RobustBench setting
unbounded inputs (tables)           0.1 std      0.5 std   a tenth of each feature's spread
==================================  ===========  ========  ==================================

Image defaults are fractions of the box width (a ``[0, 255]`` box gets 255× larger values).
For an unbounded box (``input_range`` None, e.g. standardized tables) nothing is clamped and
``eps`` is measured in feature standard deviations (estimated on the audit data): the attack
runs on ``x / std`` with the model wrapped to undo it (EOT's transformations of images still
act on the pixels, not on ``x / std``).

Accuracies count an example as correct only if it is classified correctly clean *and* under
the attack (attacks run on the correctly classified examples only, as in AutoAttack), so every
attack accuracy is ≤ ``clean_accuracy`` and eps = 0 reproduces it exactly — except EOT, which
also requires the transformations to leave the example correct, so at eps = 0 it reproduces
``transform_accuracy``. ``robust_accuracy`` is one threat model: correct under every
headline-norm attack at the headline eps — FGSM, PGD (every restart, and the doubled-step run),
random noise of that norm and, in the thorough budget, AutoAttack; for a random model also
EOT-PGD over its own randomness. Robustness to the transformation distribution is its own
number (``eot_accuracy``, ``transform_accuracy``), never folded into ``robust_accuracy``. A model that answers NaN on an input an
attack tried is fooled there, never robust; NaN / inf logits or gradients met by any attack
fail the gradient check.

How results are judged:

- A deterministic model is judged by the attack's own margins (largest wrong logit minus the
  true logit of the best iterate): exact, and no second forward pass.
- A random model (two passes differ) is judged by its averaged prediction — the softmax
  averaged over ``eval_samples`` passes — in fixed chunks with fixed seeds (common random
  numbers), so equal inputs always get equal verdicts; its clean accuracy is judged the same
  way, not by the single shared clean pass. Best-iterate tracking is off for it (single-pass
  margins are noise) and EOT averages over its own randomness.
- EOT (deterministic model): the perturbation is optimized against random rotation, scale,
  translation, brightness and noise (``Transformations``), then judged under freshly drawn
  transformations: an example is EOT-robust only if the prediction expected under the draws is
  right for the clean input *and* for the adversarial one (the attacker may always pick
  δ = 0), so a model that the transformations alone break is not robust under EOT.
  ``transform_accuracy`` is the clean half alone; ``eot_accuracy_given_transform_correct`` is
  the attack's own effect, on the examples that the transformations leave correct.

The probe is a package with the same rooms as every probe: ``options`` (the option schema),
``measure`` (runs the attacks, returns an ``AdversarialMeasurement``), ``judge`` (metrics,
checklist and findings from the measurement alone), ``present`` (summary, figures, details)
and ``probe`` (the ``AdversarialProbe`` class wiring them).
"""

from auditkit._lazy import lazy_exports

# Imported on first use: ``adversarial.options`` stays importable without torch (the CLI
# checks --set values before it loads anything heavy).
_EXPORTS = {
    "CHECK_NAMES": "judge",
    "default_threat": "measure",
    "AdversarialOptions": "options",
    "AdversarialProbe": "probe",
}
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__all__ = sorted(_EXPORTS)
