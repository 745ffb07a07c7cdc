"""Built-in data sets. Nothing here downloads: scikit-learn ships digits on disk, and the
synthetic sets are generated, with their planted property documented."""

from __future__ import annotations

import numpy as np
import torch

from auditkit.data.core import AuditData

DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.3


def digits(*, seed: int = DIGITS_SPLIT_SEED) -> AuditData:
    """scikit-learn's bundled 8×8 handwritten digits (1,797 images, values scaled to [0, 1]).

    The audit data is a fixed, stratified 30% hold-out; the other 70% is attached as ``train``
    (what ``auditkit demo`` trains on, and what the memorization probe can compare against).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    x = (bunch.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = bunch.target.astype(np.int64)
    idx_train, idx_test = train_test_split(
        np.arange(len(y)), test_size=DIGITS_TEST_FRACTION, random_state=seed, stratify=y
    )
    names = [str(c) for c in range(10)]
    common = {
        "class_names": names,
        "modality": "image",
        "input_range": (0.0, 1.0),
        "source": "builtin:digits (scikit-learn load_digits)",
    }
    train = AuditData(
        name="digits-train", x=torch.from_numpy(x[idx_train]), y=torch.from_numpy(y[idx_train]),
        description="training split (70%)", **common,
    )
    return AuditData(
        name="digits",
        x=torch.from_numpy(x[idx_test]),
        y=torch.from_numpy(y[idx_test]),
        description=(
            "scikit-learn's bundled 8×8 handwritten digits, stratified 30% hold-out "
            f"(split seed {seed}); grey levels 0–16 scaled to [0, 1]"
        ),
        train=train,
        **common,
    )
