"""From features to the model's input: normalise, cut into fixed-length windows, quantize.

Shared by the trainer (float windows for Keras, calibration data for the converter) and the
device (int8 windows for the TFLite model); ``edge.fingerprint`` hashes what it makes of a
reference signal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge import reproducible
from edge.config import Normalisation, WindowingConfig
from edge.reproducible import DB_PER_NEPER


@dataclass(frozen=True)
class Quantization:
    """Affine int8 quantization real = scale * (q - zero_point), as TFLite defines it."""

    scale: float
    """Real value of one quantization step."""
    zero_point: int
    """The int8 value that stands for real 0.0."""

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Round real values to the nearest step (ties to even) and clip to int8."""
        return np.clip(np.round(x / self.scale) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """The real values int8 ``q`` stand for."""
        return self.scale * (q.astype(np.float64) - self.zero_point)


class ClipStatistics:
    """Mean and standard deviation of each feature over a clip's frames, summed in a fixed order
    (same bits everywhere, and the same for a long file's frames summed while they stream past)."""

    def __init__(self, spread: bool = True):
        self._sum = reproducible.PairwiseSum()
        self._squares = reproducible.PairwiseSum() if spread else None
        """Squares summed only where the std is wanted (not for a bundle that only removes the mean)."""

    def add(self, frames: np.ndarray) -> None:
        """Add the next (frames, features) rows of the clip."""
        self._sum.add(frames)
        if self._squares is not None:
            self._squares.add(frames * frames)

    def mean(self) -> np.ndarray:
        """Mean of each feature over the frames added (at least one)."""
        return self._sum.total() / self._sum.count

    def std(self) -> np.ndarray:
        """Standard deviation of each feature, floored at ``CLIP_STD_FLOOR`` so that a feature
        constant over the clip (unvoiced: pitch 0) stays 0 instead of dividing by zero."""
        mean = self.mean()
        variance = np.maximum(self._squares.total() / self._squares.count - mean * mean, 0.0)
        return np.maximum(np.sqrt(variance), CLIP_STD_FLOOR)


CLIP_STD_FLOOR = 1e-6  # far below any feature's spread over real speech


def clip_statistics(features: np.ndarray, spread: bool = True) -> ClipStatistics:
    """The ``ClipStatistics`` of a clip's frames (with their std if ``spread``)."""
    statistics = ClipStatistics(spread)
    statistics.add(features)
    return statistics


def clip_shift_and_scale(statistics: ClipStatistics, subtract_mean: bool, divide_std: bool) -> tuple:
    """What a clip's frames have taken away and are divided by before they are standardised: the
    clip's own mean if ``subtract_mean`` (else 0), its own std if ``divide_std`` (else 1)."""
    return statistics.mean() if subtract_mean else 0.0, statistics.std() if divide_std else 1.0


def normalise(features: np.ndarray, normalisation: Normalisation) -> np.ndarray:
    """Standardise each feature column with the training speakers' mean and std."""
    return (features - np.asarray(normalisation.mean)) / np.asarray(normalisation.std)


def window_starts(n_frames: int, windowing: WindowingConfig) -> list[int]:
    """First frame of each window: every ``hop_frames``, plus one ending at the clip's end."""
    last = max(n_frames - windowing.window_frames, 0)
    starts = list(range(0, last + 1, windowing.hop_frames))
    if starts[-1] != last:
        starts.append(last)
    return starts


def windows(normalised: np.ndarray, windowing: WindowingConfig) -> np.ndarray:
    """(windows, window_frames, features) cut from normalised frames; a clip shorter than one
    window is padded at the end with zeros (the training mean)."""
    frames = windowing.window_frames
    if len(normalised) < frames:
        normalised = np.concatenate([normalised, np.zeros((frames - len(normalised), normalised.shape[1]))])
    return np.stack([normalised[start : start + frames] for start in window_starts(len(normalised), windowing)])


TRIM_MARGIN_FRAMES = 3  # kept on each side of the loud part, so onsets and decays survive


def trim_range(energy: np.ndarray, trim_db: float) -> tuple[int, int]:
    """First and after-last frame kept of a clip whose frames have log ``energy``: from the first
    to the last frame within ``trim_db`` dB of the loudest, plus a margin; all of it if 0."""
    if trim_db <= 0 or len(energy) == 0:
        return 0, len(energy)
    loud = np.flatnonzero(energy >= energy.max() - trim_db / DB_PER_NEPER)
    return max(loud[0] - TRIM_MARGIN_FRAMES, 0), min(loud[-1] + TRIM_MARGIN_FRAMES + 1, len(energy))


def trim_silence(features: np.ndarray, trim_db: float) -> np.ndarray:
    """Drop leading and trailing frames more than ``trim_db`` dB below the loudest frame, by the
    log energy in feature 0; ``trim_db`` 0 returns the features unchanged."""
    first, last = trim_range(features[:, 0] if len(features) else np.empty(0), trim_db)
    return features[first:last]


def clip_frames(features: np.ndarray, trim_db: float, subtract_mean: bool, divide_std: bool) -> np.ndarray:
    """A clip's frames as the normalisation statistics see them, in training and on the device:
    silence trimmed, then the clip's own mean removed and its own std divided out if asked."""
    features = trim_silence(features, trim_db)
    if not len(features):
        return features
    shift, scale = clip_shift_and_scale(clip_statistics(features, divide_std), subtract_mean, divide_std)
    return (features - shift) / scale


def prepare(features: np.ndarray, normalisation: Normalisation, windowing: WindowingConfig) -> np.ndarray:
    """A clip's float model inputs: trim silence, the clip's own mean and std out (as the
    normalisation asks), standardise, cut windows.
    (windows, frames, features)."""
    frames = clip_frames(features, windowing.trim_db, normalisation.subtract_clip_mean, normalisation.divide_clip_std)
    return windows(normalise(frames, normalisation), windowing)
