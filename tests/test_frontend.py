"""The frontend: streaming equals offline bit-for-bit, it is deterministic, and it matches
python_speech_features where configured like it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from support.configs import CONFIGS
from support.helpers import read_speech

from edge.certified import GRID
from edge.config import MAX_PITCH_FRAME_LENGTH, FrontendConfig
from edge.fingerprint import reference_signal
from edge.frontend import (
    StreamingFrontend,
    autocorrelation,
    compute_features,
    decimate,
    frame_signal,
    half_overlap_autocorrelation,
    mel_filterbank,
    pcm16,
)
from edge.reproducible import fixed_order_sum


def generated_signals() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    t = np.arange(16000 * 2) / 16000
    return {
        "noise": 0.1 * rng.standard_normal(len(t)),
        "sweep": 0.5 * np.sin(2 * np.pi * (100 + 1900 * t) * t),
        "tone-in-silence": np.concatenate([np.zeros(5000), 0.3 * np.sin(2 * np.pi * 220 * t[:12000]), np.zeros(7000)]),
        "reference": reference_signal(16000),
        "clipped-square": np.sign(np.sin(2 * np.pi * 150 * t)) * 0.99,
    }


def stream(config: FrontendConfig, signal: np.ndarray, chunk_sizes, batch_frames: int = 1) -> np.ndarray:
    frontend = StreamingFrontend(config, batch_frames)
    parts, position = [], 0
    for size in chunk_sizes:
        if position >= len(signal):
            break
        parts.append(frontend.push(signal[position : position + size]))
        position += size
    parts.append(frontend.push(signal[position:]))
    parts.append(frontend.flush())
    return np.concatenate(parts)


def fixed_chunks(size: int):
    while True:
        yield size


def random_chunks(seed: int, largest: int):
    rng = np.random.default_rng(seed)
    while True:
        yield int(rng.integers(0, largest + 1))  # zero-length chunks included


@pytest.mark.parametrize("config_name", CONFIGS)
@pytest.mark.parametrize("chunk", [1, 160, 1000, 4096, "random-small", "random-large"])
def test_streaming_equals_offline_on_real_speech(config_name, chunk, speech_files):
    config = CONFIGS[config_name]
    signal = read_speech(speech_files[4])
    if chunk == 1:
        signal = signal[:20000]  # one push per sample is slow in Python; 1.25 s still spans ~100 frames
    offline = compute_features(signal, config)
    chunks = {"random-small": random_chunks(1, 300), "random-large": random_chunks(2, 9000)}.get(chunk) or fixed_chunks(chunk)
    streamed = stream(config, signal, chunks)
    assert streamed.shape == offline.shape and len(offline) > 50
    assert np.array_equal(streamed, offline)


@pytest.mark.parametrize("config_name", CONFIGS)
def test_streaming_equals_offline_over_many_lengths_and_chunkings(config_name):
    config = CONFIGS[config_name]
    signals = generated_signals()
    frame, step = config.frame_length, config.frame_step
    lengths = [0, 1, frame - 1, frame, frame + 1, frame + step - 1, frame + step, 3 * frame + 7, 8000, 16001, 32000]
    for index, (name, full) in enumerate(signals.items()):
        for length in lengths:
            signal = full[:length]
            offline = compute_features(signal, config)
            n = len(signal)
            assert offline.shape == (1 + (n - frame) // step if n >= frame else 0, config.n_features)
            for seed in range(4):
                batch = (1, 3, 16, 100)[seed]  # frames computed per step: the same bits whatever it is
                streamed = stream(config, signal, random_chunks(100 * index + seed, 2 * frame), batch)
                assert np.array_equal(streamed, offline), (name, length, seed, batch)


def test_streaming_frames_are_final_when_pushed():
    """Frames returned by push never change later: the daemon can act on them at once."""
    config = CONFIGS["hann-delta2-pitch"]
    signal = generated_signals()["sweep"]
    frontend = StreamingFrontend(config)
    early = np.concatenate([frontend.push(signal[i : i + 555]) for i in range(0, 16000, 555)])
    assert len(early) > 0
    assert np.array_equal(early, compute_features(signal, config)[: len(early)])


def test_flush_starts_a_new_signal():
    config = CONFIGS["shipped-like"]
    a, b = generated_signals()["noise"], generated_signals()["sweep"]
    frontend = StreamingFrontend(config)
    first = np.concatenate([frontend.push(a), frontend.flush()])
    second = np.concatenate([frontend.push(b), frontend.flush()])
    assert np.array_equal(first, compute_features(a, config))
    assert np.array_equal(second, compute_features(b, config))


@pytest.mark.parametrize("config_name", CONFIGS)
def test_repeated_calls_give_identical_bits(config_name, speech_files):
    config = CONFIGS[config_name]
    signal = read_speech(speech_files[0])
    first = compute_features(signal, config)
    for _ in range(3):
        assert np.array_equal(compute_features(signal.copy(), config), first)


def test_fixed_order_sum_of_a_row_does_not_depend_on_the_other_rows():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((257, 257)) * np.exp(rng.uniform(-20, 20, (257, 257)))
    together = fixed_order_sum(x)
    assert all(np.array_equal(fixed_order_sum(x[i : i + n]), together[i : i + n]) for i in range(0, 257, 13) for n in (1, 2, 5))
    assert np.allclose(together, x.sum(axis=1), rtol=1e-9, atol=1e-300)


def _psf_max_difference(signal: np.ndarray, window: str) -> float:
    """The largest |ours - python_speech_features'| over every cepstrum of ``signal``, less what
    rounding to the grid explains (half a step): what is left is arithmetic, relative to the
    largest cepstrum."""
    from python_speech_features import mfcc

    config = FrontendConfig(window=window)
    winfunc = {"rectangular": lambda n: np.ones((n,)), "hamming": np.hamming}[window]
    reference = mfcc(
        signal,
        16000,
        winlen=0.025,
        winstep=0.01,
        numcep=13,
        nfilt=26,
        nfft=512,
        preemph=0.97,
        ceplifter=22,
        appendEnergy=True,
        winfunc=winfunc,
    )
    ours = compute_features(signal, config)
    # python_speech_features zero-pads a last partial frame; ours emits complete frames only.
    assert len(reference) - len(ours) in (0, 1) and len(ours) > 0
    beyond_rounding = np.maximum(np.abs(ours - reference[: len(ours)]) - GRID / 2, 0.0)
    return float(np.max(beyond_rounding) / np.max(np.abs(reference)))


@pytest.mark.parametrize("window", ["rectangular", "hamming"])
def test_matches_python_speech_features_on_real_speech(window, speech_files):
    for path in speech_files:
        assert _psf_max_difference(read_speech(path), window) <= 1e-6, path


@pytest.mark.parametrize("window", ["rectangular", "hamming"])
@pytest.mark.parametrize("name", list(generated_signals()))
def test_matches_python_speech_features_on_generated_signals(window, name):
    assert _psf_max_difference(generated_signals()[name], window) <= 1e-6


def test_filterbank_matches_python_speech_features():
    from python_speech_features.base import get_filterbanks

    for nfilt, nfft in [(26, 512), (40, 512), (40, 1024), (64, 512)]:
        assert np.allclose(mel_filterbank(nfilt, nfft, 16000, 0.0, 8000.0), get_filterbanks(nfilt, nfft, 16000, 0, 8000))


def test_extras_measure_what_they_say():
    config = FrontendConfig(extras=("rms", "zcr", "pitch"), frame_length=512, frame_step=256)
    t = np.arange(16000) / 16000
    tone = 0.5 * np.sin(2 * np.pi * 200 * t)
    features = compute_features(tone, config)
    rms_column, zcr_column, pitch_column = features[:, 13], features[:, 14], features[:, 15]
    assert np.allclose(rms_column, 0.5 / np.sqrt(2), rtol=0.01)
    assert np.allclose(zcr_column, 400 / 16000 * 512 / 511, rtol=0, atol=1 / 511)  # 2 per period, ±1 per frame
    assert np.allclose(pitch_column, 200, rtol=0.02)
    silent = compute_features(np.zeros(8000), config)
    assert np.all(silent[:, 13:] == 0) and np.all(np.isfinite(silent))


def test_rms_is_the_same_bits_with_pitch_on_or_off(speech_files):
    # With pitch, the RMS comes from the autocorrelation's lag 0; without, from the sum of squares.
    with_pitch = FrontendConfig(extras=("rms", "pitch"), frame_length=512, frame_step=256)
    rms_only = FrontendConfig(extras=("rms",), frame_length=512, frame_step=256)
    for signal in (read_speech(speech_files[0]), np.zeros(4000), np.full(4000, -1.0)):
        expected = np.sqrt(np.sum(frame_signal(np.rint(signal * 32768).clip(-32768, 32767), 512, 256) ** 2, axis=1) / 512) / 32768
        for config in (with_pitch, rms_only):
            rms_column = compute_features(signal, config)[:, 13]
            assert rms_column.tobytes() == expected.tobytes()  # +0.0 for silence, never -0.0


def test_with_a_noise_floor_digital_silence_reads_as_a_microphone_hissing_at_that_level():
    floored = CONFIGS["shipped-like-floored"]  # -80 dBFS
    hiss = np.random.default_rng(2).normal(0.0, 10 ** (-80 / 20), 5 * 16000)
    silence, hissed = compute_features(np.zeros(16000), floored), compute_features(hiss, floored)
    # log energy and the first cepstra of zeros within a few tenths of the hiss's average
    np.testing.assert_allclose(silence[:, :3], np.broadcast_to(hissed[:, :3].mean(axis=0), silence[:, :3].shape), atol=0.6)
    # without the floor, zeros give the log of machine epsilon, far from any recording
    assert compute_features(np.zeros(16000), CONFIGS["shipped-like"])[0, 0] == pytest.approx(np.log(2.0**-52), abs=GRID / 2)
    speech_level = np.random.default_rng(3).normal(0.0, 0.05, 16000)  # -26 dBFS: far above the floor
    assert np.array_equal(compute_features(speech_level, floored), compute_features(speech_level, CONFIGS["shipped-like"]))


@pytest.mark.parametrize(
    "frame_length, longest",
    # FFTs of 1024, 800 (the shipped pitch: lags up to 16000 / 60 Hz), 8192 and 5120 points.
    [(512, 511), (512, 266), (MAX_PITCH_FRAME_LENGTH, MAX_PITCH_FRAME_LENGTH - 1), (MAX_PITCH_FRAME_LENGTH, 1000)],
)
def test_pitch_autocorrelation_is_exact_even_for_full_scale_frames(frame_length, longest):
    # Full-scale random signs give the largest sums the bound allows; a speech-like frame the usual.
    rng = np.random.default_rng(frame_length + longest)
    signs = np.where(rng.random((4, frame_length)) < 0.5, -1.0, 32767 / 32768)
    speech = rng.integers(-3000, 3000, (4, frame_length)) / 32768
    frames = np.concatenate([signs, speech])
    correlation = autocorrelation(pcm16(frames), longest)
    q = np.rint(frames * 32768).astype(np.int64)
    exact = np.array([[int(np.dot(row[: frame_length - lag], row[lag:])) for lag in range(longest + 1)] for row in q])
    assert np.array_equal(correlation, exact)


@pytest.mark.parametrize(
    "half, longest",
    # The shipped frames (256-sample halves, lags up to 266: 540-point FFTs), the longest frames
    # pitch allows, and lags shorter than a half (the FFT length is then set by the half).
    [(256, 266), (256, 100), (MAX_PITCH_FRAME_LENGTH // 2, MAX_PITCH_FRAME_LENGTH - 1), (MAX_PITCH_FRAME_LENGTH // 2, 700)],
)
def test_frames_overlapping_by_half_get_the_same_exact_autocorrelation_from_their_halves(half, longest):
    rng = np.random.default_rng(half + longest)
    full_scale = np.where(rng.random(6 * half) < 0.5, -32768.0, 32767.0)  # the largest sums the bound allows
    speech_like = rng.integers(-3000, 3000, 6 * half).astype(float)
    for signal in (full_scale, speech_like, np.concatenate([full_scale[: 3 * half], np.zeros(3 * half)])):
        frames = frame_signal(signal, 2 * half, half)
        q = frames.astype(np.int64)
        exact = np.array([[int(np.dot(row[: 2 * half - lag], row[lag:])) for lag in range(longest + 1)] for row in q])
        assert np.array_equal(half_overlap_autocorrelation(signal, half, longest), exact)
        assert np.array_equal(autocorrelation(frames, longest), exact)


def test_pitch_at_a_lower_rate_changes_only_the_pitch(speech_files):
    # The pitch searched in the signal at 8 kHz (pairs of samples summed): half the pitch's cost,
    # a pitch within a few percent of the 16 kHz one, and every other feature the same bits.
    full_rate = CONFIGS["shipped-like"]
    halved = CONFIGS["shipped-like-pitch-at-8khz"]
    t = np.arange(16000) / 16000
    tone = compute_features(0.5 * np.sin(2 * np.pi * 200 * t), halved)
    assert np.allclose(tone[:, 22], 200, rtol=0.03)  # lags of 1/8000 s: 40 at 200 Hz
    speech = read_speech(speech_files[0])
    before, after = compute_features(speech, full_rate), compute_features(speech, halved)
    pitch_and_its_delta = [22, 22 + full_rate.n_static]
    assert np.delete(after, pitch_and_its_delta, axis=1).tobytes() == np.delete(before, pitch_and_its_delta, axis=1).tobytes()
    voiced_before, voiced_after = before[:, 22] > 0, after[:, 22] > 0
    assert np.mean(voiced_before == voiced_after) > 0.9
    both = voiced_before & voiced_after
    assert np.median(np.abs(after[both, 22] / before[both, 22] - 1)) < 0.03


def test_decimated_samples_are_exact_sums():
    samples = np.array([-32768.0, -32768.0, 32767.0, 32767.0, 1.0, -2.0, 5.0])
    assert decimate(samples, 1) is samples
    assert decimate(samples, 2).tolist() == [-65536.0, 65534.0, -1.0]  # the odd sample left over is dropped
    assert decimate(samples, 3).tolist() == [-32769.0, 32766.0]


def test_pitch_needs_frames_its_exact_autocorrelation_can_handle():
    with pytest.raises(ValueError, match="frame_length"):
        FrontendConfig(extras=("pitch",), frame_length=MAX_PITCH_FRAME_LENGTH + 1, n_fft=8192)


def test_config_round_trips_through_json():
    """As a manifest carries it: its dict as JSON, read back."""
    for config in CONFIGS.values():
        text = json.dumps(config.to_dict())
        assert FrontendConfig.from_dict(json.loads(text)) == config
        assert json.loads(text)["extras"] == list(config.extras)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"n_fft": 256}, "frame_length <= n_fft"),
        ({"n_fft": 600}, "power of two"),
        ({"window": "kaiser"}, "window"),
        ({"high_freq": 9000.0}, "high_freq"),
        ({"extras": ["rms", "rms"]}, "extras"),
        ({"delta_order": 3}, "delta_order"),
        ({"n_cepstra": 30}, "n_cepstra"),
        ({"extras": ["pitch"], "pitch_min_hz": 0.0}, "pitch_min_hz"),  # named, not a division by zero
        ({"noise_floor_dbfs": 0.0}, "noise_floor_dbfs"),
        ({"pitch_decimation": 0}, "pitch_decimation"),
        ({"pitch_decimation": 3}, "pitch_decimation must be at least 1 and divide"),  # 400-sample frames, 160 steps
        ({"extras": ["pitch"], "frame_length": 4096, "n_fft": 4096, "pitch_decimation": 2}, "frame_length"),
    ],
)
def test_invalid_configs_are_rejected_with_the_reason(change, message):
    with pytest.raises(ValueError, match=message):
        FrontendConfig.from_dict({**FrontendConfig().to_dict(), **change})


def test_a_config_written_before_the_pitch_could_be_decimated_reads_as_the_full_rate_pitch():
    written_before = {
        key: value for key, value in FrontendConfig(extras=("pitch",)).to_dict().items() if key != "pitch_decimation"
    }
    assert FrontendConfig.from_dict(written_before).pitch_decimation == 1


def test_unknown_and_mistyped_fields_are_rejected():
    with pytest.raises(ValueError, match="unknown field"):
        FrontendConfig.from_dict({**FrontendConfig().to_dict(), "n_mels": 40})
    with pytest.raises(ValueError, match="n_filters"):
        FrontendConfig.from_dict({**FrontendConfig().to_dict(), "n_filters": "26"})


def test_every_broken_setting_of_a_config_is_named_at_once():
    with pytest.raises(ValueError) as error:
        FrontendConfig.from_dict({**FrontendConfig().to_dict(), "n_fft": 600, "window": "kaiser", "delta_order": 3})
    assert str(error.value).startswith("frontend config: ")
    assert all(
        key in str(error.value) for key in ("n_fft must be a power of two", "window must be one of", "delta_order must be")
    )
