"""How a model does for female and male speakers: per-gender metrics with bootstrap confidence
intervals, a permutation test of the difference, and the gender-dependent training experiment."""

from __future__ import annotations

import numpy as np

from trainer.evaluate import accuracy, classification_metrics, uar

METRICS = {"accuracy": accuracy, "uar": uar}


def bootstrap_interval(
    y_true, y_pred, metric: str, n_classes: int, rng: np.random.Generator, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of a metric, resampling clips with replacement."""
    n = len(y_true)
    values = []
    for _ in range(resamples):
        index = rng.integers(0, n, n)
        values.append(METRICS[metric](y_true[index], y_pred[index], n_classes))
    return _percentile_interval(values, level)


def difference_interval(
    y_true, y_pred, genders, metric: str, n_classes: int, rng: np.random.Generator, resamples: int = 1000, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the female-minus-male difference in a metric, resampling
    each gender's clips with replacement (as with the p-value, clips and not speakers)."""
    female, male = (np.flatnonzero(np.asarray(genders) == g) for g in ("female", "male"))
    values = []
    for _ in range(resamples):
        f, m = rng.choice(female, len(female)), rng.choice(male, len(male))
        values.append(METRICS[metric](y_true[f], y_pred[f], n_classes) - METRICS[metric](y_true[m], y_pred[m], n_classes))
    return _percentile_interval(values, level)


def _percentile_interval(values, level: float) -> tuple[float, float]:
    low, high = np.percentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return round(float(low), 4), round(float(high), 4)


def permutation_p_value(
    y_true, y_pred, genders, metric: str, n_classes: int, rng: np.random.Generator, permutations: int = 2000
) -> float:
    """Two-sided p-value of the female-minus-male difference in a metric, against shuffled genders.

    Clips are exchanged, not speakers: with few test speakers per gender, this tests whether these
    clips differ, and a small p-value is weaker evidence about genders in general.
    """
    genders = np.asarray(genders)

    def difference(g):
        return METRICS[metric](y_true[g == "female"], y_pred[g == "female"], n_classes) - METRICS[metric](
            y_true[g == "male"], y_pred[g == "male"], n_classes
        )

    observed = abs(difference(genders))
    extreme = sum(abs(difference(rng.permutation(genders))) >= observed - 1e-12 for _ in range(permutations))
    return round((extreme + 1) / (permutations + 1), 4)


def gender_analysis(y_true, y_pred, genders, labels, seed: int = 0) -> dict:
    """Per-gender metrics, confusion matrices and 95 % bootstrap intervals, and permutation-test
    p-values of the female-male differences in accuracy and UAR."""
    y_true, y_pred, genders = np.asarray(y_true), np.asarray(y_pred), np.asarray(genders)
    rng = np.random.default_rng(seed)
    result = {"by_gender": {}, "difference": {}}
    for gender in ("female", "male"):
        mask = genders == gender
        if not mask.any():
            continue
        metrics = classification_metrics(y_true[mask], y_pred[mask], labels)
        for metric in METRICS:
            metrics[f"{metric}_ci95"] = bootstrap_interval(y_true[mask], y_pred[mask], metric, len(labels), rng)
        result["by_gender"][gender] = metrics
    if len(result["by_gender"]) == 2:
        for metric in METRICS:
            female, male = result["by_gender"]["female"][metric], result["by_gender"]["male"][metric]
            result["difference"][metric] = {
                "female_minus_male": round(female - male, 4),
                "ci95": difference_interval(y_true, y_pred, genders, metric, len(labels), rng),
                "p_value": permutation_p_value(y_true, y_pred, genders, metric, len(labels), rng),
            }
    return result
