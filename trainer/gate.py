"""The quantization gate: does the int8 model classify like the float model it came from?

Both models run through the device's own classifier (``edge.classifier``) on the same clips:
what is measured here is what the device computes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.bundle import AS_ACCURATE_POINTS, ModelBundle
from edge.classifier import Classifier, pool
from edge.manifest import Manifest
from edge.runtime import load_interpreter
from trainer.corpus import Corpus, Utterance
from trainer.evaluate import classification_metrics


@dataclass(frozen=True)
class GateLimits:
    """How much int8 may lose against float32, in percentage points."""

    max_uar_drop: float = AS_ACCURATE_POINTS["uar"]
    """Largest allowed drop of unweighted average recall."""
    max_accuracy_drop: float = AS_ACCURATE_POINTS["accuracy"]
    """Largest allowed drop of accuracy."""


def gate_utterances(manifest: Manifest, corpus: Corpus, speakers: tuple[str, ...] | None) -> tuple[list[Utterance], int]:
    """The clips a gate compares on: those of ``speakers`` (by default the bundle's own test
    speakers, if it was trained on this corpus; else every speaker) whose labels the model has, and
    how many clips were left out for their labels."""
    if speakers is None and manifest.training_corpus == corpus.name:
        speakers = manifest.test_speakers
    chosen = [u for u in corpus.utterances if (speakers is None or u.speaker in speakers) and u.label in manifest.labels]
    return chosen, sum(1 for u in corpus.utterances if u.label not in manifest.labels)


def float32_twin(bundle: ModelBundle) -> ModelBundle:
    """The same bundle running its float32 model file instead of the int8 one."""
    float_file = bundle.manifest.float32_file
    if not float_file:
        raise ValueError(f"{bundle.path}: the bundle has no float32 model to compare with")
    interpreter = load_interpreter(bundle.runtime, bundle.path / float_file)
    return ModelBundle(bundle.path, bundle.manifest, bundle.runtime, interpreter, "float32")


def device_probabilities(bundle: ModelBundle, clip_features: list[np.ndarray]) -> np.ndarray:
    """Each clip's pooled class probabilities exactly as the device computes them (windowing,
    quantization, inference, softmax, pooling: ``edge.classifier``): (clips, classes)."""
    device = Classifier(bundle)
    return np.array([pool(device.window_probabilities(features)) for features in clip_features])


def compare_float_int8(bundle: ModelBundle, clip_features: list[np.ndarray], targets: list[int]) -> dict:
    """Clip-level metrics of the float32 and int8 models on the same clips, both run through the
    device's classifier, their argmax agreement and the largest difference of any pooled class
    probability."""
    int8_pooled = device_probabilities(bundle, clip_features)
    float_pooled = device_probabilities(float32_twin(bundle), clip_features)
    y_true = np.asarray(targets)
    y_int8, y_float = int8_pooled.argmax(axis=1), float_pooled.argmax(axis=1)
    labels = bundle.manifest.labels
    return {
        "float32": classification_metrics(y_true, y_float, labels),
        "int8": classification_metrics(y_true, y_int8, labels),
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
