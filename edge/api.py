"""The Python API, for programs that embed edge-ser: the emotion of a file, of an array at any
sample rate, or of live audio arriving in blocks (with the daemon's own segmenter and classifier).

    from edge.api import EmotionModel

    model = EmotionModel.load()                        # the shipped default, or a name or a bundle folder
    print(model.classify_file("clip.wav").emotion)
    print(model.classify(samples, sample_rate=44100))  # mono, or (frames, channels)
    stream = model.stream(sample_rate=48000)
    for block in blocks:                               # any size
        for event in stream.push(block):               # an EmotionEvent per finished utterance
            print(event.emotion, event.confidence)
    leftover = stream.close()                          # the utterance still open at the end, if any

Importing this module loads nothing heavy; ``EmotionModel.load`` starts the TFLite interpreter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge.audio import resample, to_mono
from edge.bundle import load_bundle
from edge.classifier import Classifier, Prediction
from edge.events import EmotionEvent
from edge.settings import SegmenterSettings
from edge.stream import EmotionStream

__all__ = ["EmotionModel", "EmotionStream", "EmotionEvent", "Prediction", "SegmenterSettings"]


class EmotionModel:
    """A verified model bundle, ready to classify."""

    def __init__(self, classifier: Classifier):
        self.classifier = classifier

    @classmethod
    def load(
        cls, name_or_path: str | Path | None = None, *, variant: str | None = None, runtime: str | None = None
    ) -> EmotionModel:
        """A shipped bundle by name (default: the default model) or a bundle folder, checked as the
        device checks it. Raises edge.errors.BundleError with a one-line reason."""
        return cls(Classifier(load_bundle(name_or_path, runtime=runtime, variant=variant)))

    @property
    def labels(self) -> tuple[str, ...]:
        """The emotions it tells apart, in the order of its scores."""
        return self.classifier.manifest.labels

    def classify_file(self, path: str | Path) -> Prediction:
        """The emotion of an audio file (any format libsndfile reads), in constant memory. Raises
        edge.errors.AudioError naming the file if it cannot be used or holds no speech."""
        return self.classifier.classify_file(path)

    def classify(self, samples: np.ndarray, sample_rate: int) -> Prediction:
        """The emotion of a whole clip: float samples in [-1, 1], mono or (frames, channels)."""
        mono = to_mono(np.asarray(samples, dtype=np.float64))
        return self.classifier.classify_samples(resample(mono, sample_rate, self.classifier.manifest.frontend.sample_rate))

    def stream(
        self, sample_rate: int | None = None, settings: SegmenterSettings = SegmenterSettings(), live: bool = True
    ) -> EmotionStream:
        """Audio in blocks at ``sample_rate`` (default: the model's), cut into utterances by
        ``settings``; ``live`` False for audio that comes faster than real time (see EmotionStream)."""
        return EmotionStream(self.classifier, sample_rate or self.classifier.manifest.frontend.sample_rate, settings, live)
