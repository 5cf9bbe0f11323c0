"""The frontend's arithmetic is the same bits on every CPU: its FFT, logarithm and constants
(edge.reproducible) are as accurate as numpy's per-CPU kernels, and the features they make are
pinned here bit for bit (firmware_scripts/arm64-parity.sh shows the same bits on arm64)."""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
from support.configs import CONFIGS

from edge import reproducible
from edge.fingerprint import reference_signal
from edge.frontend import compute_features
from edge.model_input import CLIP_STD_FLOOR, ClipStatistics, clip_statistics

# sha256 of compute_features(reference_signal(16000), config).tobytes(), computed once on x86-64.
# They change only if the frontend's arithmetic changes, which also changes what shipped models see.
PINNED_FEATURES = {
    "psf-like": "9a5e5d0a6b8aa7ce89feeedee96bea6f4ed0c90329fb1ece50fc5de2a3ec771e",
    "shipped-like": "4930aa6fbf09d3fefe158b5e4b8b7db1b6461664b2e5c57f2fa7b4bb3cad8f9a",
    # the reference signal never falls to the floor: the floor only moved last bits, now rounded away
    "shipped-like-floored": "4930aa6fbf09d3fefe158b5e4b8b7db1b6461664b2e5c57f2fa7b4bb3cad8f9a",
    # the same but the pitch (the pitch searched at 8 kHz), in the last static column and its delta
    "shipped-like-pitch-at-8khz": "1ed6563b875964152f6a131bec74fc281744294f9ae4be22dc0d5562b7f4b795",
    "hann-delta2-pitch": "86d7cc2dc4170a88193a748ae0b96dccaebecfa904d7e5ea45dd614d265eff09",
}


def ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance in units in the last place between same-signed float64 values."""
    return np.abs(a.view(np.int64) - b.view(np.int64))


@pytest.mark.parametrize("config_name", sorted(PINNED_FEATURES))
def test_features_of_the_reference_signal_have_pinned_bits(config_name):
    features = compute_features(reference_signal(16000), CONFIGS[config_name])
    assert hashlib.sha256(features.tobytes()).hexdigest() == PINNED_FEATURES[config_name]


# The same features in numbers a person can read (micro_speech style): where the pinned bits move,
# these show which feature moved and by how much. The shipped-like configuration on the reference
# signal, whose pitch glides 110..290 Hz over 5 s (frame 40 is at 0.64 s, frame 200 at 3.2 s). The
# cepstra are whole multiples of the grid, 1/4096; the deltas are their regression, a tenth of such
# differences.
READABLE_FEATURES = {  # frame: log energy, c1, c2, rms, zcr, pitch in Hz, delta of the log energy
    40: (-481 / 4096, -87485 / 4096, -33333 / 4096, 0.216842429, 0.0919765166, 133.333333, -7317 / 40960),
    200: (-3511 / 4096, -157164 / 4096, -99459 / 4096, 0.0908467011, 0.238747554, 225.352113, -7019 / 40960),
}


def test_features_of_the_reference_signal_read_as_expected():
    features = compute_features(reference_signal(16000), CONFIGS["shipped-like"])
    for frame, expected in READABLE_FEATURES.items():
        np.testing.assert_allclose(features[frame, [0, 1, 2, 20, 21, 22, 23]], expected, rtol=1e-8, err_msg=f"frame {frame}")
        assert np.array_equal(features[frame, :3], expected[:3])  # exactly on the grid
    assert features[40, 22] == 16000 / 120  # a pitch is a whole lag: 120 samples


@pytest.mark.parametrize(("length", "n_fft"), [(4, 4), (400, 512), (512, 512), (512, 1024), (1100, 1024)])
def test_real_fft_computes_what_numpy_rfft_computes(length, n_fft):
    frames = np.random.default_rng(length).standard_normal((37, length))
    real, imag = reproducible.real_fft(frames.T, n_fft)
    expected = np.fft.rfft(frames, n_fft).T
    scale = np.abs(expected).max()
    assert real.shape == imag.shape == expected.shape
    assert np.abs(real - expected.real).max() < 1e-14 * scale * np.log2(n_fft)
    assert np.abs(imag - expected.imag).max() < 1e-14 * scale * np.log2(n_fft)


def test_real_fft_of_one_frame_equals_that_frame_among_many():
    frames = np.random.default_rng(3).standard_normal((50, 512))
    together = reproducible.real_fft(frames.T, 512)[0]
    alone = reproducible.real_fft(frames[7:8].T, 512)[0]
    assert np.array_equal(together[:, 7:8], alone)


def test_log_is_within_three_ulps_of_numpy_from_subnormals_to_the_largest_float():
    rng = np.random.default_rng(9)
    x = np.concatenate(
        [
            np.exp(rng.uniform(-744, 709, 200_000)),
            rng.uniform(0.5, 2.0, 200_000),
            [5e-324, 2.2250738585072014e-308, 0.5, 0.7071067811865476, 1.0, 2.0, 1.7976931348623157e308],
        ]
    )
    assert ulps(reproducible.log(x), np.log(x)).max() <= 3
    assert reproducible.log(np.array([1.0]))[0] == 0.0


def test_trigonometric_constants_are_correctly_rounded():
    n = np.arange(0, 1024)
    cos = reproducible.cos_turns(n, 1024)
    # numpy's own argument 2 pi n / N is rounded first, so numpy is off by up to ~6e-16 here.
    assert np.abs(cos - np.cos(2 * np.pi * n / 1024)).max() < 1e-15
    assert np.array_equal(cos[1:], cos[:0:-1])  # cos(2 pi n / N) = cos(2 pi (N - n) / N), exactly
    assert list(reproducible.cos_turns(np.arange(5), 4)) == [1.0, 0.0, -1.0, 0.0, 1.0]
    assert list(reproducible.sin_turns(np.arange(5), 4)) == [0.0, 1.0, 0.0, -1.0, 0.0]
    assert reproducible.sin_turns(1, 12) == 0.5  # sin(pi / 6), exactly representable
    assert reproducible.cos_turns(1, 8) == math.sqrt(0.5)  # both correctly rounded


def decimal_cos(numerator: int, denominator: int) -> float:
    """cos(2 pi numerator / denominator) correctly rounded, the slow and obvious way: Python's
    decimal module to 60 digits, pi by Machin's formula, one Taylor series straight from the angle."""
    from decimal import Decimal, localcontext

    with localcontext(prec=70):

        def atan_inverse(n: int) -> Decimal:
            total, power, k = Decimal(0), Decimal(1) / n, 0
            while power > Decimal(10) ** -75:
                total += (-1) ** k * power / (2 * k + 1)
                power /= n * n
                k += 1
            return total

        x = 2 * (16 * atan_inverse(5) - 4 * atan_inverse(239)) * numerator / denominator
        term = total = Decimal(1)
        n = 0
        while abs(term) > Decimal(10) ** -72:
            term *= -x * x / ((n + 1) * (n + 2))
            total += term
            n += 2
        return 0.0 if abs(total) < Decimal(10) ** -60 else float(total)  # a quarter turn: exactly 0


@pytest.mark.parametrize("denominator", [44, 160, 511, 512, 4096, 4 * 4096])
def test_trigonometric_tables_match_a_series_for_every_angle_of_a_turn(denominator):
    """The tables are built by angle addition over the first eighth of a turn and folded; every
    value still equals the correctly rounded cosine (a sample of angles all around the circle)."""
    n = np.unique(np.linspace(0, denominator - 1, 97).astype(np.int64))
    expected_cos = [decimal_cos(int(k), denominator) for k in n]
    expected_sin = [decimal_cos(denominator - 4 * int(k), 4 * denominator) for k in n]  # sin x = cos(pi/2 - x)
    assert list(reproducible.cos_turns(n, denominator)) == expected_cos
    assert list(reproducible.sin_turns(n, denominator)) == expected_sin


def test_decimal_log10_and_exp10_are_correctly_rounded():
    assert list(reproducible.log10([1.0, 10.0, 1e-3])) == [0.0, 1.0, -3.0]
    assert list(reproducible.exp10([0.0, 2.0, -1.0])) == [1.0, 100.0, 0.1]
    assert reproducible.exp10(0.5) == math.sqrt(10.0)


def test_exp_is_within_two_ulps_of_numpy_and_softmax_rows_sum_to_one():
    x = np.random.default_rng(4).uniform(-700, 700, 200_000)
    assert ulps(reproducible.exp(x), np.exp(x)).max() <= 2
    assert reproducible.exp(np.array([0.0, -800.0]))[0] == 1.0 and reproducible.exp(np.array([-800.0]))[0] == 0.0
    logits = np.random.default_rng(5).normal(0, 4, (50, 7))
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(reproducible.softmax(logits), expected, rtol=1e-14)


def test_a_clips_mean_and_std_read_as_expected_and_have_the_same_bits_however_the_frames_arrive():
    frames = np.array([[1.0, 10.0], [3.0, 10.0], [5.0, 10.0], [7.0, 10.0]])
    statistics = clip_statistics(frames)
    assert statistics.mean().tolist() == [4.0, 10.0]
    assert statistics.std().tolist() == [np.sqrt(5.0), CLIP_STD_FLOOR]  # a constant feature: the floor, not 0
    long = np.random.default_rng(3).normal(-20.0, 7.0, size=(1001, 46))
    whole, chunked = clip_statistics(long), ClipStatistics()
    for chunk in np.array_split(long, [1, 64, 65, 500, 999]):
        chunked.add(chunk)
    assert chunked.mean().tobytes() == whole.mean().tobytes()
    assert chunked.std().tobytes() == whole.std().tobytes()
    assert np.allclose(whole.std(), long.std(axis=0), rtol=1e-12)
