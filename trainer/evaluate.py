"""Speaker-independent evaluation: clip-level predictions and their metrics (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support, recall_score


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> dict:
    """Accuracy, unweighted average recall (UAR), macro F1, per-class P/R/F1 and the confusion
    matrix (rows: true class, columns: predicted), as plain JSON-ready numbers."""
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    return {
        "clips": int(len(y_true)),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "uar": round(float(recall_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)), 4),
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)), 4),
        "per_class": {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }


def metrics_by_group(y_true: np.ndarray, y_pred: np.ndarray, groups: list[str], labels: tuple[str, ...]) -> dict:
    """``classification_metrics`` for each group (e.g. gender) separately."""
    groups_array = np.asarray(groups)
    return {
        group: classification_metrics(y_true[groups_array == group], y_pred[groups_array == group], labels)
        for group in sorted(set(groups))
    }
