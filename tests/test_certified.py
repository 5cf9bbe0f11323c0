"""Certified rounding: every fast step stays within its stated error bound, with margin, on the
inputs that stress it, and the rounded features do not depend on which path computed a frame.

The exact values are computed in extended precision (numpy's longdouble: 64-bit mantissas on
x86-64, 2^11 times finer than float64), from the same float64 inputs and constants.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.configs import CONFIGS
from support.helpers import read_speech

from edge import certified, reproducible
from edge.frontend import (
    ROUNDING,
    cepstra_error,
    compute_features,
    constants_for,
    fast_cepstra,
    preemphasis,
    reproducible_cepstra,
    weakest_filter_error,
)

EXTENDED = np.longdouble
CONFIG = CONFIGS["shipped-like-floored"]  # the shipped bundles' frontend: 512-sample frames, 40 filters, 20 cepstra
N_FFT = CONFIG.n_fft

pytestmark = pytest.mark.skipif(
    np.finfo(EXTENDED).eps > 2.0**-60, reason="needs a longdouble wider than float64 (x86-64's or aarch64's)"
)


def adversarial_frames(length: int = CONFIG.frame_length) -> dict[str, np.ndarray]:
    """One frame of each kind of input that stresses an FFT or a logarithm, in [-1, 1]."""
    rng = np.random.default_rng(25)
    n = np.arange(length)
    sine = np.sin(2 * np.pi * 1000 * n / 16000)
    return {
        "full-scale noise": rng.choice([-1.0, 1.0], length) * rng.uniform(0.99, 1.0, length),
        "tiny": rng.standard_normal(length) * 2.0**-40,
        "dc": np.ones(length),
        "alternating": (-1.0) ** n,
        "clipped": np.clip(10 * sine, -1.0, 1.0),
        "one pure tone": 0.5 * sine,
        "impulse": (n == length // 2).astype(float),
        "silence": np.zeros(length),
    }


def windowed(frames: np.ndarray) -> np.ndarray:
    """What the frontend transforms: pre-emphasised (the first sample's predecessor 0) and windowed."""
    constants = constants_for(CONFIG)
    emphasised = [preemphasis(np.concatenate([[0.0], frame]), CONFIG.preemphasis) for frame in frames]
    return np.array(emphasised) * constants.window


def exact_spectrum(frames: np.ndarray) -> np.ndarray:
    """DFT bins 0..n/2 of each row, zero-padded to N_FFT, in extended precision."""
    n = np.arange(N_FFT)
    turns = (np.arange(N_FFT // 2 + 1)[:, None] * n[None, :]) % N_FFT  # k n mod N: exact angles
    angle = turns.astype(EXTENDED) * (2 * EXTENDED(np.pi) / N_FFT)
    padded = np.zeros((len(frames), N_FFT), dtype=EXTENDED)
    padded[:, : frames.shape[1]] = frames
    return padded @ np.cos(angle).T - 1j * (padded @ np.sin(angle).T)


def exact_cepstra(frames: np.ndarray) -> np.ndarray:
    """What ``fast_cepstra`` approximates, in extended precision from the same float64 constants."""
    constants = constants_for(CONFIG)
    spectrum = exact_spectrum(frames)
    power = spectrum.real**2 + spectrum.imag**2  # the fast path's filters carry the division by N_FFT
    power = np.maximum(power, constants.floor_row.astype(EXTENDED))
    energies = power @ constants.mel_and_total.astype(EXTENDED)
    logs = np.log(np.where(energies == 0, EXTENDED(np.finfo(np.float64).eps), energies))
    cepstra = (logs[:, :-1] @ constants.dct_columns.astype(EXTENDED)) * constants.lifter.astype(EXTENDED)
    cepstra[:, 0] = logs[:, -1]
    return cepstra


def test_numpy_and_our_fft_stay_within_the_fft_bound_with_margin():
    frames = windowed(np.array(list(adversarial_frames().values())))
    exact = exact_spectrum(frames)
    real, imag = reproducible.real_fft(frames.T, N_FFT)
    for computed in (np.fft.rfft(frames, N_FFT), (real + 1j * imag).T):
        error = np.linalg.norm((computed - exact).astype(complex), axis=1)
        allowed = certified.fft_error(N_FFT) * np.linalg.norm(exact.astype(complex), axis=1)
        assert np.all(error <= allowed / 4)  # Higham's bound, before SAFETY, is at least 4 times the error


def test_logarithms_stay_within_their_ulps():
    x = np.concatenate([np.geomspace(2.0**-1022, 2.0**1023, 20001), 1 + np.linspace(-1e-3, 1e-3, 2001)])
    exact = np.log(x.astype(EXTENDED))
    ulp = np.spacing(np.abs(exact.astype(np.float64)))
    for computed in (np.log(x), reproducible.log(x)):
        assert np.max(np.abs((computed - exact) / ulp)) <= certified.LOG_ULPS  # measured: 2.5 at most (ours near 1)


def test_a_sum_of_non_negative_terms_stays_within_gamma_in_any_order():
    rng = np.random.default_rng(1)
    terms = rng.uniform(0, 1, (200, 257)) ** 8  # many orders of magnitude
    exact = terms.astype(EXTENDED).sum(axis=1)
    for computed in (
        terms.sum(axis=1),
        terms @ np.ones(257),
        reproducible.fixed_order_sum(terms),
        terms[:, ::-1].cumsum(axis=1)[:, -1],
    ):
        assert np.all(np.abs(computed - exact) <= certified.gamma(257) * exact / 4)


def test_cepstra_of_every_kind_of_frame_stay_within_their_bound_on_both_paths():
    frames = adversarial_frames()
    inputs = windowed(np.array(list(frames.values())))
    constants = constants_for(CONFIG)
    exact = exact_cepstra(inputs)
    fast, energies, logs = fast_cepstra(inputs, CONFIG, constants)
    bound = cepstra_error(energies, logs, fast, CONFIG, constants)
    slow = reproducible_cepstra(inputs, CONFIG, constants)
    for name, computed in (("numpy", fast), ("edge.reproducible", slow)):
        error = np.abs(computed - exact).astype(np.float64)
        assert np.all(error <= bound / certified.SAFETY), (name, list(frames)[int(np.argmax((error / bound).max(1)))])
    assert np.all(np.isfinite(bound)) and np.max(bound) < certified.GRID / 100  # fallback stays rare


def test_the_cheap_bound_of_a_frames_weakest_filter_is_never_below_the_exact_bound():
    frames = adversarial_frames()
    inputs = windowed(np.array(list(frames.values())))
    constants = constants_for(CONFIG)
    fast, energies, logs = fast_cepstra(inputs, CONFIG, constants)
    exact_bound = cepstra_error(energies, logs, fast, CONFIG, constants)
    cheap_bound = weakest_filter_error(energies, logs, fast, CONFIG, constants)
    assert np.all(cheap_bound >= exact_bound)
    assert np.all(np.isfinite(cheap_bound)) and np.max(cheap_bound) < certified.GRID / 10  # decides most frames


def test_rounding_is_the_same_whichever_path_computes_a_frame(monkeypatch, speech_files):
    signal = read_speech(speech_files[0])
    fast = compute_features(signal, CONFIG)
    before = (ROUNDING.frames, ROUNDING.fallbacks)
    monkeypatch.setattr(certified, "undecided", lambda values, bound: np.ones(len(values), dtype=bool))
    slow = compute_features(signal, CONFIG)
    assert ROUNDING.fallbacks - before[1] == ROUNDING.frames - before[0] > 0
    assert np.array_equal(fast, slow)


def test_a_value_near_a_midpoint_falls_back_and_a_value_clear_of_it_does_not():
    grid = certified.GRID
    values = np.array([[3 * grid], [3.5 * grid + 1e-9], [3.5 * grid + 1e-6], [np.nan]])
    bound = np.array([[1e-9], [1e-9], [1e-9], [np.inf]])
    assert certified.undecided(values, bound).tolist() == [False, True, False, True]
    assert certified.round_to_grid(np.array([3.49 * grid, 3.51 * grid, -0.5 * grid])).tolist() == [3 * grid, 4 * grid, -0.0]


def test_features_are_on_the_grid_and_fallback_is_rare_on_speech(speech_files):
    before = (ROUNDING.frames, ROUNDING.fallbacks)
    features = np.concatenate([compute_features(read_speech(path), CONFIG) for path in speech_files])
    cepstra = features[:, : CONFIG.n_cepstra]
    assert np.array_equal(certified.round_to_grid(cepstra), cepstra)
    frames, fallbacks = ROUNDING.frames - before[0], ROUNDING.fallbacks - before[1]
    assert frames == len(features) and fallbacks <= frames / 100
