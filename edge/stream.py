"""Live audio in, emotion events out: the daemon's pipeline (resample → segmenter → classifier →
events), which the Python API offers as ``EmotionModel.stream``."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from edge.audio import StreamResampler, to_mono
from edge.classifier import Classifier
from edge.events import EmotionEvent
from edge.segmenter import Segmenter, Utterance
from edge.settings import SegmenterSettings
from edge.voice_activity import Levels


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
        """What the voice-activity detector heard since the last call (see edge.voice_activity.Levels)."""
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
            emotion=prediction.emotion,
            confidence=prediction.confidence,
            scores=prediction.scores,
            start=start,
            end=end,
            duration=utterance.duration,
            part=utterance.part,
            model=bundle.manifest.name,
            model_sha256=bundle.model_sha256,
        )
