"""Stage ``model``: fit a support-vector classifier."""

from sklearn.svm import SVC


def train(data, C=1.0, gamma="scale"):
    """Return an ``SVC`` (RBF kernel) fitted on ``data["X_train"]`` and ``data["y_train"]``."""
    model = SVC(C=C, gamma=gamma)
    model.fit(data["X_train"], data["y_train"])
    return model
