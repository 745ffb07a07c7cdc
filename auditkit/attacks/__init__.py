"""Evasion attacks that work in the adapter's input box, built on torchattacks.

- ``PGD``: projected gradient descent (Linf / L2) with random restarts and best-iterate
  tracking, which torchattacks' PGD lacks.
- ``FGSM``: the single-step attack (L2: the fast gradient method).
- ``RandomNoise``: random perturbations of the same norm, the baseline an attack must beat.
- ``EOTPGD`` and ``Transformations``: Expectation over Transformation.
- ``AutoAttack``: torchattacks' AutoAttack at the reference settings (100 iterations, 9 target
  classes, fixed seed).

Example:
    >>> from auditkit.attacks import PGD
    >>> out = PGD(adapter.as_module(), eps=0.1, steps=20, restarts=3, generator=g).perturb(x, y)
    >>> (out.margin <= 0).float().mean()   # robust accuracy on (x, y)
"""

from auditkit.attacks._base import NORMS, AttackOutput, check_norm, margin, per_example_norm
from auditkit.attacks.autoattack import REFERENCE as AUTOATTACK_REFERENCE
from auditkit.attacks.autoattack import AutoAttack
from auditkit.attacks.eot import EOTPGD, Transformations
from auditkit.attacks.pgd import FGSM, PGD, RandomNoise

__all__ = [
    "AUTOATTACK_REFERENCE",
    "EOTPGD",
    "FGSM",
    "NORMS",
    "PGD",
    "AttackOutput",
    "AutoAttack",
    "RandomNoise",
    "Transformations",
    "check_norm",
    "margin",
    "per_example_norm",
]
