"""From features to the model's input: normalise, cut into fixed-length windows, quantize.

Shared by the trainer (float windows for Keras, calibration data for the converter) and the
device (int8 windows for the TFLite model), and the basis of a bundle's fingerprint.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from edge import reproducible
from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.frontend import compute_features
from edge.reproducible import DB_PER_NEPER

REFERENCE_SIGNAL_NAME = "ser-reference-v1"


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


def clip_mean(features: np.ndarray) -> np.ndarray:
    """Mean of each feature over a clip's frames, summed in a fixed order (same bits everywhere,
    and the same as a long file's frames summed while they stream past)."""
    total = reproducible.PairwiseSum()
    total.add(features)
    return total.total() / len(features)


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


def clip_frames(features: np.ndarray, trim_db: float, subtract_clip_mean: bool) -> np.ndarray:
    """A clip's frames as the normalisation statistics see them, in training and on the device:
    silence trimmed, then the clip's own mean removed if asked."""
    features = trim_silence(features, trim_db)
    return features - clip_mean(features) if subtract_clip_mean and len(features) else features


def prepare(features: np.ndarray, normalisation: Normalisation, windowing: WindowingConfig) -> np.ndarray:
    """A clip's float model inputs: trim silence, remove the clip mean, standardise, cut windows.
    (windows, frames, features)."""
    frames = clip_frames(features, windowing.trim_db, normalisation.subtract_clip_mean)
    return windows(normalise(frames, normalisation), windowing)


def reference_signal(sample_rate: int, seconds: float = 5.0, seed: int = 20261121) -> np.ndarray:
    """A speech-like test signal, long enough for several model windows, made from integer
    arithmetic only so that it is the same on every machine: a sawtooth whose pitch glides
    110..290 Hz, a syllable-rate envelope, and hashed noise.
    """
    n = np.arange(int(seconds * sample_rate), dtype=np.int64)
    increment = (2**32 * (110 + (n * 180) // len(n))) // sample_rate  # phase step of the glide
    phase = np.cumsum(increment) % 2**32
    sawtooth = (phase >> 16) - 2**15  # -32768..32767
    syllable = n % (sample_rate // 4)
    envelope = np.minimum(syllable, sample_rate // 4 - syllable) * 4096 // (sample_rate // 8)
    state = (n.astype(np.uint64) + np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
    state ^= state >> np.uint64(31)
    noise = (state >> np.uint64(52)).astype(np.int64) - 2048  # -2048..2047
    samples = sawtooth * envelope // 4096 // 2 + noise
    return samples.astype(np.float64) / 2**15


def fingerprint(
    frontend: FrontendConfig, normalisation: Normalisation, windowing: WindowingConfig, quantization: Quantization
) -> str:
    """sha256 of the int8 model input that the reference signal becomes, with its shape.

    The trainer stores it in the bundle; the device recomputes it to prove that its frontend and
    input pipeline produce exactly what the model was trained and calibrated on.
    """
    features = compute_features(reference_signal(frontend.sample_rate), frontend)
    tensor = quantization.quantize(prepare(features, normalisation, windowing))
    digest = hashlib.sha256(f"{REFERENCE_SIGNAL_NAME}:{tensor.dtype}:{tensor.shape}:".encode())
    digest.update(np.ascontiguousarray(tensor).tobytes())
    return digest.hexdigest()
