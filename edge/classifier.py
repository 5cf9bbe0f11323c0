"""Audio → emotion: features, windows, int8 inference and pooling, as the bundle's manifest says.

Files are classified in memory that does not grow with their length: decoded, resampled and
featurised a block at a time; a file longer than a minute twice (once for the clip mean, once for
the windows). The bits are those the whole file in memory would give.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import BLOCK_SECONDS, read_blocks
from edge.bundle import ModelBundle
from edge.errors import AudioError, BundleError
from edge.frontend import StreamingFrontend, compute_features, frames_span
from edge.model_input import ClipStatistics, clip_shift_and_scale, normalise, prepare, trim_range, window_starts, windows
from edge.settings import SegmenterSettings
from edge.voice_activity import SpeechCheck


@dataclass(frozen=True)
class Prediction:
    """The emotion of one clip."""

    emotion: str
    """The most probable class (an ``EmotionEvent``'s ``emotion`` too)."""
    confidence: float
    """Its pooled probability (0..1)."""
    scores: dict[str, float]
    """Pooled probability of every class, in the model's label order."""
    windows: int
    """How many model windows were pooled."""
    duration: float
    """Seconds of audio classified."""


def pool(window_probabilities: np.ndarray) -> np.ndarray:
    """A clip's class probabilities from its windows': their mean (the windowing's "mean" pooling),
    renormalised against rounding."""
    pooled = window_probabilities.mean(axis=0)
    return pooled / pooled.sum() if pooled.sum() > 0 else np.full(len(pooled), 1 / len(pooled))


KEPT_FRAMES = 3750  # a minute of frames (1.4 MB) is kept after decoding; longer files are decoded again


class Classifier:
    """Runs a verified bundle on audio, features or files."""

    def __init__(self, bundle: ModelBundle, speech: SegmenterSettings = SegmenterSettings()):
        if bundle.manifest.is_speech_detector:
            raise BundleError(f"{bundle.path}: a speech detector, not an emotion model")
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.speech = speech.for_a_clip()
        """The voice-activity detector's settings for a file or an array (the daemon's, for a clip)."""

    def window_probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities of each model window over a clip's features: (windows, classes)."""
        return self.bundle.probabilities(prepare(features, self.manifest.normalisation, self.manifest.windowing))

    def _seconds(self, frames: int) -> float:
        """Seconds of audio that ``frames`` complete frames span."""
        frontend = self.manifest.frontend
        return frames_span(frames, frontend.frame_length, frontend.frame_step) / frontend.sample_rate

    def _check_length(self, frames: int, what: str) -> None:
        min_frames = self.manifest.windowing.min_frames
        if frames < min_frames:
            raise AudioError(f"{what}: too short to classify (needs at least {self._seconds(min_frames):.2f} s of audio)")

    def _prediction(self, probabilities: np.ndarray, frames: int) -> Prediction:
        pooled = pool(probabilities)
        best = int(np.argmax(pooled))
        return Prediction(
            emotion=self.manifest.labels[best],
            confidence=float(pooled[best]),
            scores={label: float(p) for label, p in zip(self.manifest.labels, pooled)},
            windows=len(probabilities),
            duration=self._seconds(frames),
        )

    def classify_features(self, features: np.ndarray, what: str = "audio") -> Prediction:
        """Classify a clip given its frontend features; ``what`` names it in errors."""
        self._check_length(len(features), what)
        return self._prediction(self.window_probabilities(features), len(features))

    def classify_samples(self, samples: np.ndarray, what: str = "audio") -> Prediction:
        """Classify mono float samples at the model's sample rate. Raises AudioError if they are
        too short or hold no speech (``check_speech``)."""
        config = self.manifest.frontend
        features = compute_features(samples, config)
        self._check_length(len(features), what)
        speech = self.speech_check()
        speech.push(samples)
        speech.add_frames(features)
        self.check_speech(speech, what)
        return self.classify_features(features, what)

    def speech_check(self) -> SpeechCheck:
        """Whether a clip holds speech, by the daemon's rules with the settings for a clip; give it
        the clip's samples and its features (``SpeechCheck.add_frames``)."""
        frontend = self.manifest.frontend
        return SpeechCheck(self.speech, frontend.frame_step, frontend.sample_rate, features=frontend)

    @staticmethod
    def check_speech(speech: SpeechCheck, what: str) -> None:
        """Raise AudioError unless ``speech`` found an utterance in the whole clip: a recording of
        dishes, a tap or a hum gets "no speech found", never an emotion."""
        if not speech.found():
            raise AudioError(f"{what}: no speech found")

    def _file_features(self, path: Path, block_seconds: float, on_samples=None) -> Iterator[np.ndarray]:
        """The file's features a block at a time (together ``compute_features(load_audio(path))``);
        each block of samples also goes to ``on_samples`` if given."""
        frontend = StreamingFrontend(self.manifest.frontend)
        for samples in read_blocks(path, self.manifest.frontend.sample_rate, block_seconds):
            if on_samples is not None:
                on_samples(samples)
            yield frontend.push(samples)
        yield frontend.flush()

    def classify_file(self, path: str | Path, block_seconds: float = BLOCK_SECONDS) -> Prediction:
        """Classify an audio file in constant memory; the result is bit for bit
        ``classify_samples(load_audio(path))``. Raises AudioError naming the file if it cannot be
        used, is too short, or holds no speech (``check_speech``).

        A file of up to a minute is decoded once (its features are kept); a longer one once for
        its features, length, speech and clip statistics, and again for its windows; and where
        the bundle trims silence, again in between for the statistics of what is left."""
        what = str(path)
        windowing, normalisation = self.manifest.windowing, self.manifest.normalisation
        speech = self.speech_check()

        # Pass 1: how many frames, whether there is speech, the energies if silence is trimmed, and
        # the clip statistics if it is not (all frames count). A file of up to a minute keeps its
        # features for the later passes instead of decoding again.
        trimmed, per_clip = windowing.trim_db > 0, normalisation.subtract_clip_mean
        statistics = ClipStatistics(normalisation.divide_clip_std) if per_clip and not trimmed else None
        frames, energies, kept = 0, [], []
        for features in self._file_features(path, block_seconds, speech.push):
            speech.add_frames(features)
            frames += len(features)
            if trimmed:
                energies.append(features[:, 0])
            if statistics is not None:
                statistics.add(features)
            if kept is not None:
                kept = kept + [features] if frames <= KEPT_FRAMES else None
        self._check_length(frames, what)
        self.check_speech(speech, what)

        def again() -> Iterator[np.ndarray]:
            return iter(kept) if kept is not None else self._file_features(path, block_seconds)

        first, last = trim_range(np.concatenate(energies), windowing.trim_db) if trimmed else (0, frames)
        shift, scale = 0.0, 1.0
        if per_clip:
            if statistics is None:  # of the frames the trim keeps, known only now
                statistics = self._kept_statistics(again(), first, last, normalisation.divide_clip_std)
            shift, scale = clip_shift_and_scale(statistics, normalisation.subtract_clip_mean, normalisation.divide_clip_std)
        probabilities = self._streamed_window_probabilities(again(), first, last, shift, scale)
        return self._prediction(probabilities, frames)

    def _streamed_window_probabilities(self, chunks: Iterator[np.ndarray], first: int, last: int, shift, scale) -> np.ndarray:
        """``window_probabilities`` of frames ``first:last`` of a file's feature chunks, less their
        ``shift`` and divided by their ``scale``: each window runs as soon as its frames are in,
        only frames still needed are kept."""
        windowing, normalisation = self.manifest.windowing, self.manifest.normalisation
        length = windowing.window_frames
        starts = window_starts(last - first, windowing) if last - first >= length else []
        buffer, buffer_start, position, probabilities = np.empty((0, self.manifest.frontend.n_features)), 0, 0, []
        for features in chunks:
            chunk = features[max(first - position, 0) : max(last - position, 0)]
            position += len(features)
            buffer = np.concatenate([buffer, normalise((chunk - shift) / scale, normalisation)])
            ready = 0
            while ready < len(starts) and starts[ready] + length <= buffer_start + len(buffer):
                ready += 1
            if ready:
                ready_windows = np.stack([buffer[s - buffer_start : s - buffer_start + length] for s in starts[:ready]])
                probabilities.append(self.bundle.probabilities(ready_windows))
                starts = starts[ready:]
                drop = min((starts[0] if starts else buffer_start + len(buffer)) - buffer_start, len(buffer))
                buffer, buffer_start = buffer[drop:], buffer_start + drop
        if last - first < length:  # shorter than one window: padded, cut once all frames are in
            probabilities.append(self.bundle.probabilities(windows(buffer, windowing)))
        return np.concatenate(probabilities)

    @staticmethod
    def _kept_statistics(chunks: Iterator[np.ndarray], first: int, last: int, spread: bool) -> ClipStatistics:
        """``ClipStatistics`` of frames ``first:last`` of a file's feature chunks, summed as they stream past."""
        statistics, position = ClipStatistics(spread), 0
        for features in chunks:
            statistics.add(features[max(first - position, 0) : max(last - position, 0)])
            position += len(features)
        return statistics
