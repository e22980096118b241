"""Write data/digits.npz from scikit-learn's bundled digits dataset (no network needed).

Run from this folder: ``python make_data.py``. The file is committed, so this is only needed
to regenerate it.
"""

from pathlib import Path

import numpy as np
from sklearn.datasets import load_digits


def main(path=Path(__file__).parent / "data" / "digits.npz"):
    digits = load_digits()
    path.parent.mkdir(parents=True, exist_ok=True)
    images = digits.images.astype(np.uint8)  # grey levels 0..16
    np.savez_compressed(path, images=images, target=digits.target.astype(np.int64))
    print(f"wrote {path} ({len(digits.target)} images)")


if __name__ == "__main__":
    main()
