"""Audio input: every format libsndfile reads becomes mono 16 kHz; bad input gets one clear error."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
import soxr
from conftest import read_speech

from edge.audio import load_audio
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


def test_missing_file_and_folder_are_reported(tmp_path):
    for path in (tmp_path / "missing.wav", tmp_path):
        with pytest.raises(AudioError, match="no such file"):
            load_audio(path, 16000)


def test_non_finite_samples_are_rejected(tmp_path):
    path = tmp_path / "nan.wav"
    soundfile.write(path, np.array([0.0, np.nan, 0.1] * 1000), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="NaN"):
        load_audio(path, 16000)
