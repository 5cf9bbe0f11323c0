"""The quantization gate: does the int8 model classify like the float model it came from?

Both models see the same clips through the device's own input pipeline; the int8 one runs
through the device classifier itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.bundle import ModelBundle
from edge.classifier import Classifier, output_probabilities
from edge.model_input import prepare
from edge.runtime import load_interpreter, run_windows
from trainer.evaluate import classification_metrics


@dataclass(frozen=True)
class GateLimits:
    """How much int8 may lose against float32, in percentage points."""

    max_uar_drop: float = 2.0
    """Largest allowed drop of unweighted average recall."""
    max_accuracy_drop: float = 3.0
    """Largest allowed drop of accuracy."""


def compare_float_int8(bundle: ModelBundle, clip_features: list[np.ndarray], targets: list[int]) -> dict:
    """Clip-level metrics of the float32 and int8 models on the same clips, their argmax
    agreement and the largest difference of any pooled class probability."""
    manifest = bundle.manifest
    float_file = manifest.document["model"].get("float32_file")
    if not float_file:
        raise ValueError(f"{bundle.path}: the bundle has no float32 model to compare with")
    float_interpreter = load_interpreter(bundle.runtime, bundle.path / float_file)
    device = Classifier(bundle)
    int8_pooled, float_pooled = [], []
    for features in clip_features:
        int8_pooled.append(device.window_probabilities(features).mean(axis=0))
        inputs = prepare(features, manifest.normalisation, manifest.windowing).astype(np.float32)
        float_outputs = run_windows(float_interpreter, inputs).astype(np.float64)
        float_pooled.append(output_probabilities(float_outputs, manifest).mean(axis=0))
    int8_pooled, float_pooled = np.array(int8_pooled), np.array(float_pooled)
    y_true = np.asarray(targets)
    y_int8, y_float = int8_pooled.argmax(axis=1), float_pooled.argmax(axis=1)
    return {
        "float32": classification_metrics(y_true, y_float, manifest.labels),
        "int8": classification_metrics(y_true, y_int8, manifest.labels),
        "argmax_agreement": round(float(np.mean(y_int8 == y_float)), 4),
        "max_probability_difference": round(float(np.max(np.abs(int8_pooled - float_pooled))), 4),
        "predictions": {"true": y_true.tolist(), "int8": y_int8.tolist(), "float32": y_float.tolist()},
    }


def gate_failures(comparison: dict, limits: GateLimits) -> list[str]:
    """What the int8 model lost beyond the limits, one sentence each; empty if it passes."""
    failures = []
    for metric, limit in (("uar", limits.max_uar_drop), ("accuracy", limits.max_accuracy_drop)):
        drop = 100 * (comparison["float32"][metric] - comparison["int8"][metric])
        if drop > limit:
            failures.append(f"int8 {metric} is {drop:.1f} points below float32 (allowed: {limit})")
    return failures


def summary_line(comparison: dict) -> str:
    f, q = comparison["float32"], comparison["int8"]
    return (
        f"{f['clips']} clips: accuracy float32 {f['accuracy']:.2%} int8 {q['accuracy']:.2%}; "
        f"UAR float32 {f['uar']:.2%} int8 {q['uar']:.2%}; argmax agreement {comparison['argmax_agreement']:.2%}; "
        f"largest probability difference {comparison['max_probability_difference']:.3f}"
    )
