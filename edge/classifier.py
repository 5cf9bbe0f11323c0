"""Audio → emotion: features, windows, int8 inference and pooling, as the bundle's manifest says."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge import reproducible
from edge.audio import load_audio
from edge.bundle import ModelBundle
from edge.errors import AudioError
from edge.frontend import compute_features
from edge.model_input import prepare
from edge.runtime import run_windows


@dataclass(frozen=True)
class Prediction:
    """The emotion of one clip."""

    label: str
    """The most probable class."""
    confidence: float
    """Its pooled probability (0..1)."""
    scores: dict[str, float]
    """Pooled probability of every class, in the model's label order."""
    windows: int
    """How many model windows were pooled."""
    duration: float
    """Seconds of audio classified."""


def output_probabilities(outputs: np.ndarray, manifest) -> np.ndarray:
    """Class probabilities from a model's real-valued outputs, (windows, classes), by the manifest's
    output activation."""
    return reproducible.softmax(outputs) if manifest.output_activation == "softmax" else outputs


def pool(window_probabilities: np.ndarray) -> np.ndarray:
    """A clip's class probabilities from its windows': their mean (the windowing's "mean" pooling),
    renormalised against rounding."""
    pooled = window_probabilities.mean(axis=0)
    return pooled / pooled.sum() if pooled.sum() > 0 else np.full(len(pooled), 1 / len(pooled))


class Classifier:
    """Runs a verified bundle on audio, features or files."""

    def __init__(self, bundle: ModelBundle):
        self.bundle = bundle
        self.manifest = bundle.manifest

    def window_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of each model window over a clip's features: (windows, classes)."""
        manifest = self.manifest
        inputs = prepare(features, manifest.normalisation, manifest.windowing)
        if self.bundle.variant == "float32":
            outputs = run_windows(self.bundle.interpreter, inputs.astype(np.float32)).astype(np.float64)
        else:
            quantized = manifest.input_quantization.quantize(inputs)
            outputs = manifest.output_quantization.dequantize(run_windows(self.bundle.interpreter, quantized))
        return output_probabilities(outputs, manifest)

    def _seconds(self, frames: int) -> float:
        """Seconds of audio that ``frames`` complete frames span."""
        frontend = self.manifest.frontend
        return ((frames - 1) * frontend.frame_step + frontend.frame_length) / frontend.sample_rate

    def classify_features(self, features: np.ndarray, what: str = "audio") -> Prediction:
        """Classify a clip given its frontend features; ``what`` names it in errors."""
        min_frames = self.manifest.windowing.min_frames
        if len(features) < min_frames:
            raise AudioError(f"{what}: too short to classify (needs at least {self._seconds(min_frames):.2f} s of audio)")
        probabilities = self.window_probabilities(features)
        pooled = pool(probabilities)
        best = int(np.argmax(pooled))
        return Prediction(
            label=self.manifest.labels[best],
            confidence=float(pooled[best]),
            scores={label: float(p) for label, p in zip(self.manifest.labels, pooled)},
            windows=len(probabilities),
            duration=self._seconds(len(features)),
        )

    def classify_samples(self, samples: np.ndarray, what: str = "audio") -> Prediction:
        """Classify mono float samples at the model's sample rate."""
        return self.classify_features(compute_features(samples, self.manifest.frontend), what)

    def classify_file(self, path: str | Path) -> Prediction:
        """Classify an audio file; raises AudioError naming the file if it cannot be used."""
        samples = load_audio(path, self.manifest.frontend.sample_rate)
        return self.classify_samples(samples, str(path))
