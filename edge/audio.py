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


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample mono float samples from ``from_rate`` to ``to_rate`` Hz (soxr, high quality)."""
    if from_rate == to_rate:
        return samples
    return soxr.resample(samples, from_rate, to_rate, quality="HQ")


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
