"""Synthetic data sets with a documented, planted property. Generated, never downloaded.

``credit`` is a credit-scoring-like table whose *training* labels carry a planted bias against
one group, so users and tests can watch the bias probe find it (and not find it in the unbiased
variant, ``credit(bias=0.0)``).
"""

from __future__ import annotations

import numpy as np
import torch

from auditkit.data.core import AuditData
from auditkit.errors import AuditkitInputError

CREDIT_FEATURES = (
    "income",
    "debt_ratio",
    "credit_history_years",
    "late_payments",
    "savings",
    "loan_amount",
    "employment_years",
    "spending_profile",
)
# How each feature pushes repayment (the last one, spending_profile, carries no signal: it is
# the proxy that leaks sex).
_CREDIT_WEIGHTS = np.array([1.4, -1.1, 0.9, -1.2, 0.8, -0.7, 0.6, 0.0])
CREDIT_CLASSES = ["default", "repaid"]
SEX_VALUES = ("F", "M")
AGE_BANDS = ("18-29", "30-49", "50+")


def credit(
    *,
    n_audit: int = 2000,
    n_train: int = 4000,
    bias: float = 0.5,
    proxy_strength: float = 1.5,
    female_share: float = 0.4,
    seed: int = 0,
) -> AuditData:
    """A SYNTHETIC credit-like table with a planted bias against women in the training labels.

    Every applicant has seven standardized financial features that decide repayment through
    the same logistic rule for everyone, plus ``spending_profile``, a feature with no bearing on
    repayment whose mean differs by sex (a proxy that leaks the group). Base rates are equal
    across groups and the audit labels are the true outcomes. The planted bias lives in the
    training split only: a share ``bias`` of the women who repaid are recorded as defaults, as
    if the history came from biased past decisions. A model trained on ``.train`` can find women
    through the proxy and learns to deny creditworthy women; ``bias=0.0`` gives clean training
    labels (a fair model). ``age_band`` is independent of features and labels: no disparity is
    expected there.

    The audit split (inputs, labels, groups) depends only on ``seed``, ``n_audit``, ``n_train``,
    ``proxy_strength`` and ``female_share``, not on ``bias``: biased and unbiased variants share
    the same audit data, so their models can be audited side by side.

    Args:
        n_audit: audit examples (returned).
        n_train: training examples (attached as ``.train``).
        bias: share of women's "repaid" training labels flipped to "default", in [0, 1].
        proxy_strength: separation of ``spending_profile`` between the sexes (0: no leak).
        female_share: fraction of women in the population.
        seed: everything is a deterministic function of the seed.

    Example:
        >>> data = credit(seed=0)            # planted bias
        >>> fair = credit(seed=0, bias=0.0)  # same audit data, clean training labels
    """
    if not 0.0 <= float(bias) <= 1.0:
        raise AuditkitInputError(f"credit: bias={bias} must be in [0, 1]")
    if not 0.0 < float(female_share) < 1.0:
        raise AuditkitInputError(f"credit: female_share={female_share} must be in (0, 1)")
    if int(n_audit) < 2 or int(n_train) < 2:
        raise AuditkitInputError("credit: n_audit and n_train must each be at least 2")
    n = int(n_audit) + int(n_train)
    rng = np.random.default_rng([int(seed), 0])
    sex = np.where(rng.random(n) < female_share, SEX_VALUES[0], SEX_VALUES[1])
    age_band = rng.choice(np.array(AGE_BANDS), size=n, p=[0.3, 0.45, 0.25])
    signal = rng.standard_normal((n, len(CREDIT_FEATURES) - 1))
    leak = proxy_strength * np.where(sex == SEX_VALUES[0], 1.0, -1.0)
    proxy = leak + rng.standard_normal(n)
    raw = np.column_stack([signal, proxy])
    # Same rule for everyone; logistic noise keeps the task realistic (~87% Bayes accuracy).
    score = raw @ _CREDIT_WEIGHTS + 0.2
    repaid = (score + rng.logistic(size=n) > 0).astype(np.int64)

    train_idx = np.arange(int(n_audit), n)
    audit_idx = np.arange(int(n_audit))
    mean = raw[train_idx].mean(axis=0)
    std = raw[train_idx].std(axis=0)
    x = ((raw - mean) / std).astype(np.float32)

    train_labels = repaid[train_idx].copy()
    # A separate stream, so the audit split and training inputs do not depend on ``bias``.
    flip_rng = np.random.default_rng([int(seed), 1])
    flips = flip_rng.random(len(train_idx)) < float(bias)
    targeted = (sex[train_idx] == SEX_VALUES[0]) & (train_labels == 1) & flips
    train_labels[targeted] = 0

    common = {
        "class_names": list(CREDIT_CLASSES),
        "modality": "tabular",
        "input_range": None,
        "synthetic": True,
        "source": f"builtin:credit (synthetic, seed {seed})",
        "feature_names": list(CREDIT_FEATURES),
    }
    planted = (
        f"planted bias: {bias:.0%} of the women who repaid are recorded as defaults in the "
        "training labels, and spending_profile leaks sex"
        if bias > 0
        else "no planted bias (bias=0.0): training labels are the true outcomes"
    )
    train = AuditData(
        name="credit-train",
        x=torch.from_numpy(x[train_idx]),
        y=torch.from_numpy(train_labels),
        groups={"sex": sex[train_idx], "age_band": age_band[train_idx]},
        description=f"SYNTHETIC training split ({len(train_idx)} applicants); {planted}",
        **common,
    )
    return AuditData(
        name="credit",
        x=torch.from_numpy(x[audit_idx]),
        y=torch.from_numpy(repaid[audit_idx]),
        groups={"sex": sex[audit_idx], "age_band": age_band[audit_idx]},
        description=(
            f"SYNTHETIC credit-like data generated by auditkit (seed {seed}): {n_audit} audit "
            f"applicants, {len(CREDIT_FEATURES)} standardized features, label 1 = repaid; "
            f"sensitive columns sex and age_band. {planted[0].upper()}{planted[1:]}; audit "
            "labels are the true outcomes with equal base rates, so a model trained on .train "
            "under-approves creditworthy women. age_band is independent of everything (no "
            "disparity expected). credit(bias=0.0) is the unbiased variant."
        ),
        train=train,
        **common,
    )
