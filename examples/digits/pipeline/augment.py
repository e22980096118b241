"""Stage ``augment``: add shifted, noisy copies of the training images."""

import numpy as np

from pipeline.features import RANDOM_SEED, normalize

SIDE = 8  # the digits images are 8x8


def jitter(images, rng, noise):
    """Shift each image by one pixel left or right and add Gaussian noise, clipped to [0, 1]."""
    shifts = rng.choice([-1, 1], size=len(images))
    moved = np.stack([np.roll(image, shift, axis=1) for image, shift in zip(images, shifts)])
    return np.clip(moved + rng.normal(0.0, noise, size=moved.shape), 0.0, 1.0)


def augment(data, noise=0.1, copies=1):
    """Return ``data`` with ``copies`` jittered duplicates of the training set appended."""
    rng = np.random.default_rng(RANDOM_SEED)
    X, y = data["X_train"], data["y_train"]
    images = X.reshape(len(X), SIDE, SIDE)
    # already scaled by preprocess: only flatten the jittered copies back to rows
    extra = [normalize(jitter(images, rng, noise), scale=False) for _ in range(copies)]
    return {
        **data,
        "X_train": np.concatenate([X, *extra]),
        "y_train": np.concatenate([y] * (copies + 1)),
    }
