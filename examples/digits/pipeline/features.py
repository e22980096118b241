"""Feature helpers shared by the preprocess and augment stages.

Both stages reach these definitions, so editing ``normalize`` or ``RANDOM_SEED`` makes a new
version of both stages; editing ``describe`` (used by neither) changes no version.
"""

import numpy as np

RANDOM_SEED = 0
PIXEL_MAX = 16.0  # the digits images use 4-bit grey levels 0..16


def normalize(images, scale=True):
    """Flatten 8x8 images into rows of floats, scaled to [0, 1] when ``scale``."""
    flat = np.asarray(images, dtype=np.float64).reshape(len(images), -1)
    return flat / PIXEL_MAX if scale else flat


def describe(features):
    """A one-line summary of a feature matrix (a helper no stage uses)."""
    return f"{features.shape[0]} samples x {features.shape[1]} features"
