"""Stage ``preprocess``: load the raw digits, normalise them, split train/test."""

import numpy as np

from pipeline.features import RANDOM_SEED, normalize


def preprocess(raw, scale=True, test_size=0.25):
    """Return ``{"X_train", "X_test", "y_train", "y_test"}`` from the ``digits.npz`` file."""
    with np.load(raw) as archive:
        images, labels = archive["images"], archive["target"]
    features = normalize(images, scale=scale)
    rng = np.random.default_rng(RANDOM_SEED)
    order = rng.permutation(len(labels))
    n_test = int(round(len(labels) * test_size))
    test, train = order[:n_test], order[n_test:]
    return {
        "X_train": features[train],
        "X_test": features[test],
        "y_train": labels[train],
        "y_test": labels[test],
    }
