"""The Python API, for programs that embed edge-ser: the emotion of a file, of an array at any
sample rate, or of live audio arriving in blocks (with the daemon's own segmenter and classifier).

    from edge.api import EmotionModel

    model = EmotionModel.load()                        # the shipped default, or a name or a bundle folder
    print(model.classify_file("clip.wav").label)
    print(model.classify(samples, sample_rate=44100))  # mono, or (frames, channels)
    stream = model.stream(sample_rate=48000)
    for block in blocks:                               # any size
        for event in stream.push(block):               # an EmotionEvent per finished utterance
            print(event.emotion, event.confidence)
    leftover = stream.close()                          # the utterance still open at the end, if any

Importing this module loads nothing heavy; ``EmotionModel.load`` starts the TFLite interpreter.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from edge.audio import StreamResampler, resample, to_mono
from edge.bundle import load_bundle
from edge.classifier import Classifier, Prediction
from edge.events import EmotionEvent
from edge.segmenter import Levels, Segmenter, Utterance
from edge.settings import SegmenterSettings

__all__ = ["EmotionModel", "EmotionStream", "EmotionEvent", "Prediction", "SegmenterSettings"]


class EmotionStream:
    """Live audio in, emotion events out: blocks of any size at ``sample_rate`` are resampled to
    the model's rate, cut into utterances by voice activity, and each utterance is classified as
    soon as it ends. The daemon runs exactly this on its microphone."""

    def __init__(
        self,
        classifier: Classifier,
        sample_rate: int,
        settings: SegmenterSettings = SegmenterSettings(),
        live: bool = True,
        clock: Callable[[], float] = time.time,
    ):
        self.classifier = classifier
        self.sample_rate = sample_rate
        """Rate of the samples given to ``push``, in Hz."""
        self.live = live
        """True: audio arrives as it is recorded (a sound card, which may drop blocks), and event
        times are now minus how far the stream has moved on since. False: every sample arrives,
        perhaps faster than real time (a pipe, a file), and times count from the stream's start."""
        self._model_rate = classifier.manifest.frontend.sample_rate
        self._segmenter = Segmenter(settings, classifier.manifest.frontend, classifier.manifest.windowing.min_frames)
        self._clock = clock
        self.seconds = 0.0
        """Audio pushed since the start or the last reset, in seconds."""
        self.reset()

    def push(self, samples: np.ndarray) -> list[EmotionEvent]:
        """Feed mono float samples in [-1, 1] (or (frames, channels), averaged); returns an event for
        each utterance that ended in them."""
        resampled = self._resampler.push(to_mono(np.asarray(samples, dtype=np.float64)))
        self.seconds += len(resampled) / self._model_rate
        return [self._event(u) for u in self._segmenter.push(resampled)]

    def close(self) -> list[EmotionEvent]:
        """End of audio: events for the utterance still open, if any; the stream starts afresh."""
        tail = self._resampler.flush()
        self.seconds += len(tail) / self._model_rate
        events = [self._event(u) for u in [*self._segmenter.push(tail), *self._segmenter.flush()]]
        self.reset()
        return events

    def take_levels(self) -> Levels:
        """What the voice-activity detector heard since the last call (see edge.segmenter.Levels)."""
        return self._segmenter.voice.take_levels()

    def reset(self) -> None:
        """Forget the audio so far (after a gap): an open utterance is dropped."""
        self._resampler = StreamResampler(self.sample_rate, self._model_rate)
        self._segmenter.reset()
        self.seconds = 0.0
        self._started_at = self._clock()

    def _event(self, utterance: Utterance) -> EmotionEvent:
        prediction = self.classifier.classify_features(utterance.features, "utterance")
        if self.live:  # from how far the stream has moved on since the utterance ended
            now = self._clock()
            start, end = (now - (self.seconds - t) for t in (utterance.start, utterance.end))
        else:
            start, end = self._started_at + utterance.start, self._started_at + utterance.end
        bundle = self.classifier.bundle
        return EmotionEvent(
            prediction.label,
            prediction.confidence,
            prediction.scores,
            start,
            end,
            utterance.duration,
            utterance.part,
            bundle.manifest.name,
            bundle.model_sha256,
        )


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
