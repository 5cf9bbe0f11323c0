"""Audio input: any file libsndfile reads, as mono float64 at the frontend's sample rate.

Decoding is soundfile's (WAV in all its encodings, FLAC, OGG, MP3, ...), resampling soxr's;
nothing here parses a file format by hand.
"""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from edge.errors import AudioError

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64", ".rf64"})
"""File name suffixes (lower case) of the audio formats libsndfile reads: the files `ser classify`
takes from a folder and the corpus readers take from a corpus."""


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; a 1-D array is already mono."""
    return samples if samples.ndim == 1 else samples.mean(axis=1)


class InputName(Protocol):
    """What an open input is called in status events: a sound card's device, or standard input."""

    name: str
    index: int | None
    """The device's PortAudio index; None for standard input."""


class AudioInput(Protocol):
    """A live input of mono float64 blocks at ``target_rate``: the microphone (``edge.microphone``)
    or standard input (``edge.pipe``)."""

    target_rate: int
    rate: int
    """Its own sample rate, in Hz."""
    dropped_seconds: float
    """Audio dropped because processing fell behind."""

    @property
    def is_open(self) -> bool: ...

    def open(self) -> InputName: ...

    def read(self, timeout: float) -> np.ndarray:
        """The next block (possibly empty), within ``timeout`` seconds."""
        ...

    def close(self) -> None: ...


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
    """``resample`` for audio arriving in blocks: soxr's streaming resampler, same quality. With
    ``flush`` at the end, the output is bit for bit ``resample`` of the whole signal."""

    def __init__(self, from_rate: int, to_rate: int):
        self._stream = (
            None
            if from_rate == to_rate
            else soxr.ResampleStream(from_rate, to_rate, 1, dtype="float64", quality=RESAMPLING_QUALITY)
        )

    def push(self, mono: np.ndarray) -> np.ndarray:
        """Resampled output available so far for this block of mono samples."""
        return mono if self._stream is None else self._stream.resample_chunk(mono)

    def flush(self) -> np.ndarray:
        """The output still held back by the resampler's filter, at the end of the signal."""
        return np.empty(0) if self._stream is None else self._stream.resample_chunk(np.empty(0), last=True)


# Below 4 kHz a file cannot hold the formants speech is recognised by; above 768 kHz (the highest
# rate audio hardware records) a rate is a broken header, not audio.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 4000, 768000
BLOCK_SECONDS = 10.0  # decoded per step: memory stays flat whatever the file's length


def check_is_file(path: Path) -> None:
    """Refuse, before anything reads it, a path that is not a regular file (a missing file, a
    folder, a FIFO, a device, a link loop): one AudioError naming it and saying which."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise AudioError(f"{path}: no such file") from None
    except OSError as error:
        raise AudioError(f"{path}: cannot be read ({error.strerror})") from None
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        raise AudioError(f"{path}: a folder, not an audio file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "a socket"
        raise AudioError(f"{path}: {kind}, not a regular file (never read)")
    if info.st_size == 0:
        raise AudioError(f"{path}: empty file")


def read_blocks(path: str | Path, sample_rate: int, block_seconds: float = BLOCK_SECONDS) -> Iterator[np.ndarray]:
    """An audio file as mono float64 samples in [-1, 1] at ``sample_rate`` Hz, decoded and
    resampled ``block_seconds`` of the file at a time. Together the blocks are bit for bit the
    same whatever ``block_seconds`` is (soxr's stream equals its one-shot resampling).

    Raises AudioError, naming the file, for anything missing, not a regular file, empty, corrupt,
    not audio, at an unusable sample rate, or holding NaN or infinite samples.
    """
    import soundfile  # here, not at the top: the daemon reads no files and saves libsndfile's 3 MB

    path = Path(path)
    check_is_file(path)
    try:
        with soundfile.SoundFile(path) as source:
            if not MIN_SAMPLE_RATE <= source.samplerate <= MAX_SAMPLE_RATE:
                raise AudioError(
                    f"{path}: sample rate {source.samplerate} Hz is outside the {MIN_SAMPLE_RATE}-"
                    f"{MAX_SAMPLE_RATE} Hz that speech audio uses"
                )
            resampler = StreamResampler(source.samplerate, sample_rate)
            block_frames = max(1, round(block_seconds * source.samplerate))
            decoded = 0
            for block in source.blocks(block_frames, dtype="float64", always_2d=True):
                mono = to_mono(block)
                if not np.all(np.isfinite(mono)):
                    raise AudioError(f"{path}: audio contains NaN or infinite samples")
                decoded += len(mono)
                yield resampler.push(mono)
    except (soundfile.LibsndfileError, RuntimeError, TypeError) as error:
        reason = getattr(error, "error_string", str(error)).rstrip(".")
        raise AudioError(f"{path}: not a readable audio file ({reason})") from None
    if decoded == 0:
        raise AudioError(f"{path}: no audio samples")
    yield resampler.flush()


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """A whole audio file as mono float64 samples in [-1, 1] at ``sample_rate`` Hz (``read_blocks``
    joined). Raises AudioError, naming the file, for anything that cannot be used."""
    return np.concatenate(list(read_blocks(path, sample_rate)))
