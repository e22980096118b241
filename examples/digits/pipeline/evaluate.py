"""Stage ``evaluate``: score the model on the held-out split and log the metrics."""

from sklearn.metrics import accuracy_score, f1_score

from modver import log_metrics


def evaluate(model, data):
    """Return ``{"accuracy", "f1"}`` on ``data["X_test"]`` and record them for the run."""
    predicted = model.predict(data["X_test"])
    metrics = {
        "accuracy": float(accuracy_score(data["y_test"], predicted)),
        "f1": float(f1_score(data["y_test"], predicted, average="macro")),
    }
    log_metrics(**metrics)
    return metrics
