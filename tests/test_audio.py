"""Audio input: every format libsndfile reads becomes mono 16 kHz; bad input gets one clear error."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile
import soxr
from support.helpers import read_speech

from edge.audio import load_audio, read_blocks, resample
from edge.errors import AudioError

FORMATS = [
    ("wav", "WAV", "PCM_U8"),
    ("wav", "WAV", "PCM_16"),
    ("wav", "WAV", "PCM_24"),
    ("wav", "WAV", "PCM_32"),
    ("wav", "WAV", "FLOAT"),
    ("wav", "WAV", "ULAW"),
    ("flac", "FLAC", "PCM_16"),
    ("ogg", "OGG", "VORBIS"),
    ("mp3", "MP3", "MPEG_LAYER_III"),
]


@pytest.fixture(scope="module")
def speech_48k_stereo(speech_files) -> np.ndarray:
    """Real speech at 48 kHz in two channels (right a little quieter), as a phone or DAW writes it."""
    mono = soxr.resample(read_speech(speech_files[3]), 16000, 48000)
    return np.stack([mono, 0.8 * mono], axis=1) * 0.9


@pytest.mark.parametrize("suffix, container, subtype", FORMATS)
def test_every_format_becomes_mono_16k_speech(tmp_path, speech_48k_stereo, suffix, container, subtype):
    path = tmp_path / f"clip.{suffix}"
    soundfile.write(path, speech_48k_stereo, 48000, format=container, subtype=subtype)
    samples = load_audio(path, 16000)
    expected = soxr.resample(speech_48k_stereo.mean(axis=1), 48000, 16000)
    assert samples.ndim == 1 and samples.dtype == np.float64
    # Lossy codecs add delay and padding; the length stays within a tenth of a second.
    assert abs(len(samples) - len(expected)) < 1600
    # 16 bits and more are near-lossless; 8-bit PCM of quiet speech and lossy codecs are not.
    floor = {"PCM_U8": 0.7, "ULAW": 0.9, "VORBIS": 0.9, "MPEG_LAYER_III": 0.9}.get(subtype, 0.999)
    assert aligned_correlation(samples, expected) > floor


def aligned_correlation(a: np.ndarray, b: np.ndarray, max_lag: int = 2000) -> float:
    """Pearson correlation of a and b after shifting a by the lag (up to max_lag) that fits best."""
    size = len(a) + len(b)
    cross = np.fft.irfft(np.fft.rfft(a, size) * np.conj(np.fft.rfft(b, size)), size)
    lag = int(np.argmax(cross[:max_lag]))
    n = min(len(a) - lag, len(b))
    return float(np.corrcoef(a[lag : lag + n], b[:n])[0, 1])


def test_mono_16k_input_is_returned_unchanged(tmp_path, speech_files):
    original = read_speech(speech_files[0])
    assert np.array_equal(load_audio(speech_files[0], 16000), original)


def test_channels_are_averaged(tmp_path):
    left, right = np.full(16000, 0.5), np.full(16000, -0.25)
    path = tmp_path / "stereo.wav"
    soundfile.write(path, np.stack([left, right], axis=1), 16000, subtype="FLOAT")
    assert np.allclose(load_audio(path, 16000), 0.125)


def _bad_inputs(tmp_path, speech_files) -> dict[str, tuple]:
    flac = speech_files[0].read_bytes()
    files = {
        "empty.wav": (b"", "empty file"),
        "notes.txt": (b"this is not audio\n" * 20, "not a readable audio file"),
        "truncated.flac": (flac[: len(flac) // 20], "not a readable audio file"),
        "bad-magic.wav": (b"RIFX" + b"\0" * 400, "not a readable audio file"),
        "header-only.wav": (None, "no audio samples"),
    }
    for name, (content, _) in files.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
    soundfile.write(tmp_path / "header-only.wav", np.zeros((0, 1)), 16000)
    return files


def test_bad_inputs_raise_one_typed_error_naming_the_file(tmp_path, speech_files):
    for name, (_, reason) in _bad_inputs(tmp_path, speech_files).items():
        with pytest.raises(AudioError) as error:
            load_audio(tmp_path / name, 16000)
        message = str(error.value)
        assert message.startswith(str(tmp_path / name)) and reason in message and "\n" not in message


def fifo(path):
    os.mkfifo(path)
    return path


def link(path, target):
    path.symlink_to(target)
    return path


NOT_FILES = {
    "missing": (lambda d: d / "missing.wav", "no such file"),
    "folder": (lambda d: d, "a folder, not an audio file"),
    "FIFO": (lambda d: fifo(d / "pipe.wav"), "a FIFO, not a regular file (never read)"),
    "link to a device": (lambda d: link(d / "zero.wav", "/dev/zero"), "a device, not a regular file (never read)"),
    "link loop": (lambda d: link(d / "loop.wav", d / "loop.wav"), "cannot be read (Too many levels of symbolic links)"),
}


@pytest.mark.parametrize("case", NOT_FILES)
def test_paths_that_are_not_regular_files_are_refused_without_being_read(tmp_path, case):
    make, reason = NOT_FILES[case]
    path = make(tmp_path)
    with pytest.raises(AudioError) as error:  # a FIFO would block here if it were opened
        load_audio(path, 16000)
    assert str(error.value) == f"{path}: {reason}"


@pytest.mark.parametrize("rate", [1, 3999, 1_000_000])
def test_sample_rates_speech_cannot_have_are_refused(tmp_path, rate):
    path = tmp_path / "odd-rate.wav"
    soundfile.write(path, np.sin(np.arange(4000) * 0.1) * 0.5, rate)
    with pytest.raises(AudioError, match=f"sample rate {rate} Hz is outside the 4000-768000 Hz that speech audio uses"):
        load_audio(path, 16000)


@pytest.mark.parametrize("rate", [8000, 22050, 44100])
def test_blocks_of_any_size_join_to_the_same_samples(rate):
    rng = np.random.default_rng(rate)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "noise.flac"
        soundfile.write(path, rng.uniform(-0.5, 0.5, 3 * rate + 17), rate, subtype="PCM_16")
        whole = np.concatenate(list(read_blocks(path, 16000, block_seconds=1000)))
        for block_seconds in (0.01, 0.5, 1.3):
            assert np.array_equal(np.concatenate(list(read_blocks(path, 16000, block_seconds))), whole)
        assert np.array_equal(whole, resample(soundfile.read(path)[0], rate, 16000))


def test_non_finite_samples_are_rejected(tmp_path):
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.0, np.nan, 0.1] * 1000), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path, 16000)
