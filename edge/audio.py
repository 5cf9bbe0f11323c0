"""Audio input: any file libsndfile reads, as mono float64 at the frontend's sample rate.

Decoding is soundfile's (WAV in all its encodings, FLAC, OGG, MP3, ...), resampling soxr's;
nothing here parses a file format by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile
import soxr

from edge.errors import AudioError


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; a 1-D array is already mono."""
    return samples if samples.ndim == 1 else samples.mean(axis=1)


RESAMPLING_QUALITY = "HQ"  # soxr's high quality: files and the microphone are resampled alike


def pcm16_to_float(data: bytes, channels: int) -> np.ndarray:
    """Interleaved 16-bit PCM as float64 in [-1, 1) (scaled as soundfile scales it), (frames, channels)."""
    return (np.frombuffer(data, dtype="<i2").astype(np.float64) / 32768.0).reshape(-1, channels)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float samples from ``from_rate`` to ``to_rate`` Hz (soxr, high quality)."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality=RESAMPLING_QUALITY)


class StreamResampler:
    """``resample`` for audio arriving in blocks: soxr's streaming resampler, same quality."""

    def __init__(self, from_rate: int, to_rate: int):
        self._stream = None if from_rate == to_rate else soxr.ResampleStream(
            from_rate, to_rate, 1, dtype="float64", quality=RESAMPLING_QUALITY)  # fmt: skip

    def push(self, mono: np.ndarray) -> np.ndarray:
        """Resampled output available so far for this block of mono samples."""
        return mono if self._stream is None else self._stream.resample_chunk(mono)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Read an audio file as mono float64 samples in [-1, 1] at ``sample_rate`` Hz.

    Raises AudioError, naming the file, for anything missing, empty, corrupt or not audio.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file")
    try:
        samples, rate = soundfile.read(path, dtype="float64", always_2d=False)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        reason = getattr(error, "error_string", str(error)).rstrip(".")
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None
    if samples.size == 0:
        raise AudioError(f"{path}: no audio samples")
    mono = to_mono(samples)
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{path}: audio contains NaN or infinite samples")
    return resample(mono, rate, sample_rate)
