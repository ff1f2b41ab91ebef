"""Evaluation metrics, computed by scikit-learn: accuracy, F1 (binary: class 1 is the positive class; macro: the
unweighted mean over classes) and Matthews' correlation coefficient (MCC), and each one's chance level."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from noisesim.configs import METRIC_NAMES, check_metric
from noisesim.errors import UserError

__all__ = ["METRIC_NAMES", "chance_level", "chance_text", "check_metric", "lower_bound", "score", "title", "unit"]


def score(metric: str, labels: Sequence[int] | np.ndarray, predictions: Sequence[int] | np.ndarray) -> float:
    """``metric`` of ``predictions`` against the true ``labels`` (class indices). Binary F1 on more than two classes
    is a UserError (use f1-macro). A class that is never predicted and never true scores 0, without a warning."""
    from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef

    check_metric(metric)
    y, p = np.asarray(labels), np.asarray(predictions)
    if len(y) == 0:
        raise UserError("no examples to evaluate (the data set is empty): give data with at least one row")
    if metric == "accuracy":
        return float(accuracy_score(y, p))
    if metric == "mcc":
        return float(matthews_corrcoef(y, p))
    if metric == "f1":
        if max(int(y.max()), int(p.max())) > 1:
            raise UserError("metric f1 is binary F1 (class 1 positive), but the data have more than two classes:"
                            " give --metric f1-macro")
        return float(f1_score(y, p, pos_label=1, average="binary", zero_division=0))
    return float(f1_score(y, p, average="macro", labels=np.unique(np.concatenate([y, p])), zero_division=0))


def chance_level(metric: str, labels: Sequence[int] | np.ndarray) -> float:
    """The best ``metric`` a constant prediction gets on ``labels``: the majority class's share for accuracy, 0 for
    MCC, the F1 of always predicting class 1 for binary F1 (2p / (1 + p), p its share), and for macro F1 that of
    always predicting the majority class."""
    y = np.asarray(labels)
    classes = np.unique(y)
    if metric == "f1":
        return score("f1", y, np.ones_like(y))
    return max(score(metric, y, np.full_like(y, c)) for c in classes)


def chance_text(metric: str) -> str:
    """How a metric's chance level is made, for tables and plots."""
    return {"accuracy": "majority class", "f1": "always class 1", "f1-macro": "always the majority class",
            "mcc": "any constant prediction"}[check_metric(metric)]


def title(metric: str) -> str:
    """The metric's name in tables and plots."""
    return {"accuracy": "accuracy", "f1": "F1", "f1-macro": "macro F1", "mcc": "MCC"}[check_metric(metric)]


def unit(metric: str) -> str:
    """How values are shown: accuracy and F1 in %, MCC × 100 (as GLUE reports it)."""
    return "× 100" if check_metric(metric) == "mcc" else "%"


def lower_bound(metric: str) -> float:
    """The least value of a metric: -1 for MCC, 0 otherwise."""
    return -1.0 if check_metric(metric) == "mcc" else 0.0
