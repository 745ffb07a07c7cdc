"""Evasion attacks that work in the adapter's input box, built on torchattacks.

- ``PGD``: projected gradient descent (Linf / L2) with random restarts and best-iterate
  tracking, which torchattacks' PGD lacks.
- ``FGSM``: the single-step attack (L2: the fast gradient method).
- ``RandomNoise``: random perturbations of the same norm, the baseline an attack must beat.
- ``EOTPGD`` and ``Transformations``: Expectation over Transformation.
- ``AutoAttack``: torchattacks' AutoAttack at the reference settings (100 iterations, 9 target
  classes, fixed seed).
- ``Square`` (scores only) and ``HopSkipJump`` (labels only): gradient-free attacks with a
  per-example query budget, for black boxes (``QueryModel``) and per-feature ``Limits``.

Example:
    >>> from auditkit.attacks import PGD
    >>> out = PGD(adapter.as_module(), eps=0.1, steps=20, restarts=3, generator=g).perturb(x, y)
    >>> (out.margin <= 0).float().mean()   # robust accuracy on (x, y)
"""

from auditkit.attacks._base import NORMS, AttackOutput, check_norm, margin, per_example_norm
from auditkit.attacks._query import Limits, QueryModel
from auditkit.attacks.autoattack import REFERENCE as AUTOATTACK_REFERENCE
from auditkit.attacks.autoattack import AutoAttack
from auditkit.attacks.eot import EOTPGD, Transformations
from auditkit.attacks.hopskipjump import HopSkipJump
from auditkit.attacks.pgd import FGSM, PGD, RandomNoise
from auditkit.attacks.square import QueryAttackOutput, Square

__all__ = [
    "AUTOATTACK_REFERENCE",
    "EOTPGD",
    "FGSM",
    "HopSkipJump",
    "Limits",
    "NORMS",
    "PGD",
    "QueryAttackOutput",
    "QueryModel",
    "AttackOutput",
    "AutoAttack",
    "RandomNoise",
    "Square",
    "Transformations",
    "check_norm",
    "margin",
    "per_example_norm",
]
