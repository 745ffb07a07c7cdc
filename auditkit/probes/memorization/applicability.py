"""Which models the random-label test means something for.

The test asks whether training can drive a model to fit labels drawn at random (Zhang et al.
2017): a question about an over-parameterized model and its training run. A torch network is
re-trained from scratch; a scikit-learn estimator with capacity to spare (boosting, forests, an
MLP) is re-fitted as a clone, one fit standing for the training run. A *linear* model has no such
capacity: it draws one hyperplane whatever the labels, it has no epochs, and "cannot memorize"
would be a warning about its kind, not about this model. For those the probe is not applicable.
"""

from __future__ import annotations

from typing import Any

APPLIES_TO = (
    "models whose training can fit arbitrary labels (neural networks trained by gradient "
    "descent; scikit-learn tree ensembles and MLPs, re-fitted as clones)"
)
_LINEAR_MODULES = ("sklearn.linear_model", "sklearn.discriminant_analysis", "sklearn.naive_bayes")
_LINEAR_CLASSES = ("LinearSVC",)


def final_estimator(estimator: Any) -> Any:
    """The last step of a scikit-learn pipeline (the estimator itself otherwise)."""
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


def not_applicable(adapter: Any) -> str | None:
    """``APPLIES_TO`` for a scikit-learn linear model, else None."""
    estimator = getattr(adapter, "estimator", None)
    if estimator is None:
        return None
    final = final_estimator(estimator)
    module = type(final).__module__
    if module.startswith(_LINEAR_MODULES) or type(final).__name__ in _LINEAR_CLASSES:
        return APPLIES_TO
    return None
