"""The digits pipeline: preprocess -> augment -> model -> evaluate (see ../manifest.yaml)."""
