"""Speaker-independent evaluation: clip-level predictions and their metrics (scikit-learn)."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def accuracy(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Share of clips classified correctly (plain numpy: bootstraps call it thousands of times)."""
    return float(np.mean(y_true == y_pred))


def uar(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Unweighted average recall over the classes present in y_true (plain numpy, as above)."""
    hits = np.bincount(y_true[y_true == y_pred], minlength=n_classes)
    support = np.bincount(y_true, minlength=n_classes)
    present = support > 0
    return float(np.mean(hits[present] / support[present]))


def classification_metrics(y_true, y_pred, labels: tuple[str, ...]) -> dict:
    """Accuracy, unweighted average recall (UAR), macro F1, per-class P/R/F1 and the confusion
    matrix (rows: true class, columns: predicted), as plain JSON-ready numbers."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    classes = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    return {
        "clips": int(len(y_true)),
        "accuracy": round(float(accuracy_score(y_true, y_pred)), 4),
        "uar": round(uar(y_true, y_pred, len(labels)), 4),  # classes absent from y_true do not count
        "macro_f1": round(float(f1_score(y_true, y_pred, labels=classes, average="macro", zero_division=0)), 4),
        "per_class": {
            label: {"precision": round(float(p), 4), "recall": round(float(r), 4), "f1": round(float(f), 4), "support": int(s)}
            for label, p, r, f, s in zip(labels, precision, recall, f1, support)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=classes).tolist(),
    }
