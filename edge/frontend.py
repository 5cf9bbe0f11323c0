"""The MFCC frontend, shared bit-for-bit by the trainer and the device.

One short function per DSP step, vectorised over frames. The same features come out however the
signal is cut into chunks and on every CPU, although the cepstra are computed with numpy's fast
kernels (FFT, BLAS matrix products, logarithm), whose last bits depend on the CPU and on how many
frames are computed at once: each cepstrum is rounded to a fixed grid, and a frame whose rounding
the kernels' stated error bound leaves undecided is computed again with ``edge.reproducible``
(IEEE basic operations in a fixed order, exact decimal constants) and rounded that way
(``edge.certified`` says why every CPU then agrees). The other features are exact or elementwise:
the pitch from an exact integer autocorrelation, the RMS from its lag 0 (or from the exact
integer sums of squares), the zero-crossing rate by counting, the deltas by elementwise
arithmetic on the rounded values.

``compute_features`` (a whole signal) and ``StreamingFrontend`` (chunk by chunk) are one code
path, so the device sees exactly the features the model was trained on.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

from edge import certified, reproducible
from edge.config import FrontendConfig

FRONTEND_VERSION = 2
"""What the frontend computes, in every fingerprint: 2 rounds the cepstra to ``certified.GRID``
(issue 25); 1 (no number in the hash) computed them with ``edge.reproducible`` alone."""
MOST_FRAMES = 256  # frames computed per step of a long signal (4 s): a clip is one step, so numpy's
# per-call cost is paid once, and the step's arrays (about 1 MB each) stay in the CPU cache
_EPS = np.finfo(np.float64).eps  # floor for zero energies before the log, as python_speech_features
ROUNDING = certified.Tally()
"""Frames this process computed, and how many of them the reproducible way (``certified_cepstra``)."""


def hz_to_mel(hz):
    """Convert frequency in Hz to mels (HTK formula 2595 * log10(1 + hz / 700))."""
    return 2595.0 * reproducible.log10(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_to_hz(mel):
    """Convert mels back to frequency in Hz; the inverse of ``hz_to_mel``."""
    return 700.0 * (reproducible.exp10(np.asarray(mel, dtype=np.float64) / 2595.0) - 1.0)


def window_function(name: str, length: int) -> np.ndarray:
    """Symmetric analysis window of ``length`` samples: rectangular, hamming or hann."""
    if name == "rectangular" or length == 1:
        return np.ones(length)
    cos = reproducible.cos_turns(np.arange(length), length - 1)  # cos(2 pi n / (length - 1))
    return {"hamming": 0.54 - 0.46 * cos, "hann": 0.5 - 0.5 * cos}[name]


def mel_filterbank(n_filters: int, n_fft: int, sample_rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    """Triangular mel filters as a (n_filters, n_fft // 2 + 1) matrix of weights per FFT bin.

    Filter edges are equally spaced in mels between ``low_hz`` and ``high_hz`` and snapped down to
    FFT bins, the same construction as python_speech_features.
    """
    mel_points = np.linspace(hz_to_mel(low_hz), hz_to_mel(high_hz), n_filters + 2)
    edges = np.floor((n_fft + 1) * mel_to_hz(mel_points) / sample_rate)
    left, centre, right = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    k = np.arange(n_fft // 2 + 1, dtype=np.float64)[None, :]
    with np.errstate(divide="ignore", invalid="ignore"):
        rising = (k - left) / (centre - left)
        falling = (right - k) / (right - centre)
    return np.where((k >= left) & (k < centre), rising, np.where((k >= centre) & (k < right), falling, 0.0))


def dct_matrix(n_inputs: int, n_outputs: int) -> np.ndarray:
    """Orthonormal DCT-II as a (n_outputs, n_inputs) matrix: the first n_outputs coefficients."""
    n = np.arange(n_inputs)
    k = np.arange(n_outputs)[:, None]
    matrix = reproducible.cos_turns(k * (2 * n + 1), 4 * n_inputs) * np.sqrt(2.0 / n_inputs)  # cos(pi k (2n+1) / 2N)
    matrix[0] /= np.sqrt(2.0)
    return matrix


def lifter_weights(n_cepstra: int, lifter: int) -> np.ndarray:
    """Sinusoidal liftering weights 1 + (L / 2) sin(pi n / L) for n < n_cepstra; ones if L is 0."""
    if lifter == 0:
        return np.ones(n_cepstra)
    return 1.0 + (lifter / 2.0) * reproducible.sin_turns(np.arange(n_cepstra), 2 * lifter)  # sin(pi n / L)


def preemphasis(previous_and_signal: np.ndarray, coefficient: float) -> np.ndarray:
    """y[n] = x[n] - a * x[n - 1]; the input's first element is the sample before the signal
    (0.0 at the start of a stream), so the output is one sample shorter than the input."""
    return previous_and_signal[1:] - coefficient * previous_and_signal[:-1]


def frame_count(n_samples: int, frame_length: int, frame_step: int) -> int:
    """Number of complete frames in ``n_samples`` samples; partial frames are never emitted."""
    return 0 if n_samples < frame_length else 1 + (n_samples - frame_length) // frame_step


def frames_span(n_frames: int, frame_length: int, frame_step: int) -> int:
    """Samples that ``n_frames`` (at least 1) consecutive frames cover: ``frame_count``'s inverse."""
    return (n_frames - 1) * frame_step + frame_length


def frame_signal(signal: np.ndarray, frame_length: int, frame_step: int) -> np.ndarray:
    """The complete frames of ``signal`` as a (frames, frame_length) read-only view."""
    stride = signal.strides[0]
    shape = (frame_count(len(signal), frame_length, frame_step), frame_length)
    return np.lib.stride_tricks.as_strided(signal, shape, (frame_step * stride, stride), writeable=False)


def power_spectrum(frames: np.ndarray, n_fft: int) -> np.ndarray:
    """|FFT|^2 / n_fft of each frame (a row), zero-padded to ``n_fft`` samples (a power of two).
    Bins along axis 0, frames along axis 1: (n_fft // 2 + 1, frames)."""
    real, imag = reproducible.real_fft(frames.T, n_fft)
    return (real * real + imag * imag) / n_fft


def squared_magnitude(spectrum: np.ndarray) -> np.ndarray:
    """re^2 + im^2 of each complex value (a fresh array of ``spectrum``'s shape), computed in place
    in ``spectrum``'s memory, which it overwrites: the same operations as ``power_spectrum``'s."""
    parts = spectrum.view(np.float64)  # re, im, re, im, ... along the last axis
    np.square(parts, out=parts)
    return parts[..., 0::2] + parts[..., 1::2]


def noise_floor_power(level_dbfs: float, window: np.ndarray, preemphasis: float, n_fft: int) -> np.ndarray:
    """Expected ``power_spectrum`` of white noise at RMS ``level_dbfs`` (dB re 1.0), one value per
    bin (a column): pre-emphasis y[n] = x[n] - a x[n-1] shapes it by 1 + a^2 - 2a cos(w), the
    analysis ``window`` scales it by the sum of its squares."""
    variance = float(reproducible.exp10(level_dbfs / 10.0))
    tilt = 1.0 + preemphasis * preemphasis - 2.0 * preemphasis * reproducible.cos_turns(np.arange(n_fft // 2 + 1), n_fft)
    return (variance * math.fsum(window * window) / n_fft * tilt)[:, None]


def safe_log(x: np.ndarray) -> np.ndarray:
    """Natural log with zeros floored to machine epsilon (so silence gives a finite value)."""
    return reproducible.log(np.where(x == 0.0, _EPS, x))


def sum_of_squares(samples16: np.ndarray) -> np.ndarray:
    """sum q^2 of each frame of 16-bit integer samples q (``pcm16``): an integer below 2^53, exact
    in any order, so numpy's fast dot product gives the same bits on every CPU."""
    return np.einsum("ij,ij->i", samples16, samples16)


def frame_sums_of_squares(signal16: np.ndarray, frame_length: int, frame_step: int) -> np.ndarray:
    """``sum_of_squares`` of every complete frame of ``signal16``: where frames overlap by half (the
    shipped frames), each half's sum once and a frame's the sum of its two (exact integers all)."""
    if frame_length != 2 * frame_step:
        return sum_of_squares(frame_signal(signal16, frame_length, frame_step))
    frames = frame_count(len(signal16), frame_length, frame_step)
    halves = sum_of_squares(signal16[: (frames + 1) * frame_step].reshape(frames + 1, frame_step))
    return halves[:-1] + halves[1:]


def rms(sums_of_squares: np.ndarray, frame_length: int) -> np.ndarray:
    """Root-mean-square amplitude (full scale = 1.0) of frames of ``frame_length`` 16-bit samples
    from their exact sums of squares (``sum_of_squares``, or the autocorrelation's lag 0). For audio
    that was 16-bit PCM, as files and the microphone are, the float samples' RMS."""
    return np.sqrt(sums_of_squares / frame_length) / 32768.0


def zero_crossing_rate(signal: np.ndarray, frame_length: int, frame_step: int) -> np.ndarray:
    """Fraction of adjacent sample pairs in each complete frame of ``signal`` whose signs differ
    (0..1). Counted once along the signal, not once per frame (frames overlap): exact integers."""
    negative = np.signbit(signal)
    changes = np.zeros(len(signal), dtype=np.int64)  # changes[n]: sign changes before sample n
    np.cumsum(negative[1:] != negative[:-1], out=changes[1:])
    span = frame_count(len(signal), frame_length, frame_step) * frame_step
    return (changes[frame_length - 1 :][:span:frame_step] - changes[:span:frame_step]) / (frame_length - 1)


def pcm16(samples: np.ndarray) -> np.ndarray:
    """Samples in [-1, 1] as the integers of 16-bit PCM (-32768..32767), as float64: exact for
    audio that was 16-bit PCM (files, the microphone), a 16-bit quantisation for anything else."""
    return np.clip(np.rint(samples * 32768.0), -32768.0, 32767.0)


def smooth_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c that is at least ``n``: an FFT length pocketfft handles fast."""
    best = 1 << max(n - 1, 0).bit_length()
    power_of_five = 1
    while power_of_five < best:
        power_of_three = power_of_five
        while power_of_three < best:
            length = power_of_three << max(0, (n - 1) // power_of_three).bit_length()  # times the least 2^a reaching n
            best = min(best, length)
            power_of_three *= 3
        power_of_five *= 5
    return best


def autocorrelation(samples16: np.ndarray, longest_lag: int) -> np.ndarray:
    """sum_n q[n] q[n + lag] of each frame of 16-bit integer samples q (``pcm16``), lags 0..longest_lag:
    exact integers, so the same on every CPU whatever library computes them. (frames, lags + 1).

    Computed as the inverse FFT of the power spectrum (numpy's own FFT, zero-padded so that the
    correlation is not circular, to a length of small prime factors, which it transforms fastest:
    800 points for 512-sample frames and lags up to 266, rather than 1024) and rounded to
    the nearest integer. That rounding restores the exact value because the FFT's error is far
    below 1/2: it is at most about sum(q^2) * 2^-53 * 3 log2(n_fft) (Percival's bound for FFT
    convolution), under 0.01 for frames of up to 4,096 full-scale samples, whose sums reach 2^42.
    """
    n_fft = smooth_length(samples16.shape[-1] + longest_lag)
    q = np.zeros((len(samples16), n_fft))  # zero-padded here: numpy's own padding costs a third of the FFT
    q[:, : samples16.shape[-1]] = samples16
    power = squared_magnitude(np.fft.rfft(q))
    return np.rint(np.fft.irfft(power, n_fft)[:, : longest_lag + 1])


def half_overlap_autocorrelation(signal16: np.ndarray, half: int, longest_lag: int) -> np.ndarray:
    """``autocorrelation`` of every complete frame of ``2 * half`` samples every ``half`` samples of
    ``signal16`` (16-bit integer samples), lags 0..longest_lag (below 2 * half): the same exact
    integers, from shorter FFTs, each half transformed once for the two frames it belongs to.

    Frame i is halves b_i, b_i+1, and its autocorrelation is theirs plus their cross-correlation
    c(d) = sum_n b_i[n] b_i+1[n + d] shifted by ``half``: with the halves' spectra B_i (zero-padded to
    n_fft), the inverse FFT of |B_i|^2 + |B_i+1|^2 + conj(B_i) B_i+1 e^(-2 pi i k half / n_fft). None
    of the three wraps around onto lags 0..longest_lag when n_fft >= half + max(longest_lag, half):
    540 points for the shipped 256-sample halves and lags up to 266, instead of 800 for each frame.
    Rounding restores the exact integers: the error is of the same size as ``autocorrelation``'s."""
    frames = frame_count(len(signal16), 2 * half, half)
    n_fft = smooth_length(half + max(longest_lag, half))
    halves = np.zeros((frames + 1, n_fft))
    halves[:, :half] = signal16[: (frames + 1) * half].reshape(frames + 1, half)
    spectra = np.fft.rfft(halves)
    combined = spectra[1:] * _delay(half, n_fft)
    combined *= spectra[:-1].conj()
    power = squared_magnitude(spectra)  # spectra's memory: no longer needed
    combined.real += power[:-1]
    combined.real += power[1:]
    return np.rint(np.fft.irfft(combined, n_fft)[:, : longest_lag + 1])


@functools.lru_cache(maxsize=8)
def _delay(samples: int, n_fft: int) -> np.ndarray:
    """exp(-2 pi i k samples / n_fft) for bins k = 0..n_fft / 2: a delay of ``samples`` (read-only)."""
    k = np.arange(n_fft // 2 + 1) * samples
    delay = reproducible.cos_turns(k, n_fft) - 1j * reproducible.sin_turns(k, n_fft)
    delay.flags.writeable = False
    return delay


def decimate(samples16: np.ndarray, factor: int) -> np.ndarray:
    """Each run of ``factor`` consecutive samples summed (a trailing partial run dropped): exact
    integers, a low-pass (a boxcar) and a sample rate ``factor`` times lower; the samples if 1."""
    if factor == 1:
        return samples16
    usable = len(samples16) - len(samples16) % factor
    return sum(samples16[first:usable:factor] for first in range(factor))


def frame_autocorrelations(signal16: np.ndarray, frame_length: int, frame_step: int, longest_lag: int) -> np.ndarray:
    """``autocorrelation`` of every complete frame of ``signal16``: from the halves where frames
    overlap by half (the shipped frames), else frame by frame. (frames, longest_lag + 1)."""
    if frame_length == 2 * frame_step and longest_lag < frame_length:
        return half_overlap_autocorrelation(signal16, frame_step, longest_lag)
    return autocorrelation(frame_signal(signal16, frame_length, frame_step), longest_lag)


def pitch(correlation: np.ndarray, sample_rate: int, min_hz: float, max_hz: float, voicing: float) -> np.ndarray:
    """Fundamental frequency in Hz of each frame from its exact autocorrelation ``correlation``
    (``frame_autocorrelations``, lags 0..sample_rate / min_hz); 0 where unvoiced.

    The best lag between sample_rate / max_hz and sample_rate / min_hz (the shortest on a tie)
    wins if its autocorrelation reaches ``voicing`` times the frame's energy (lag 0).
    """
    shortest = int(np.ceil(sample_rate / max_hz))
    best = shortest + np.argmax(correlation[:, shortest:], axis=1)
    voiced = correlation[np.arange(len(correlation)), best] > voicing * correlation[:, 0]
    return np.where(voiced, sample_rate / best, 0.0)


def longest_pitch_lag(sample_rate: int, min_hz: float) -> int:
    """The longest lag, in samples, that ``pitch`` looks at: one period of ``min_hz``."""
    return int(sample_rate / min_hz)


def deltas(padded: np.ndarray, width: int) -> np.ndarray:
    """Regression deltas sum_k k (c[t+k] - c[t-k]) / (2 sum_k k^2), k = 1..width, for every frame
    of ``padded`` that has ``width`` frames of context on each side."""
    count = len(padded) - 2 * width
    total = np.zeros((count, padded.shape[1]))  # 0 + the first term: a -0.0 difference sums to +0.0
    for k in range(1, width + 1):
        term = np.subtract(padded[width + k : width + k + count], padded[width - k : width - k + count])
        if k > 1:
            term *= k
        total += term
    total /= 2 * sum(k * k for k in range(1, width + 1))
    return total


def shared_columns(part: FrontendConfig, whole: FrontendConfig) -> list[int] | None:
    """The columns of ``whole``'s features that are ``part``'s features bit for bit, in ``part``'s
    order; None unless ``part`` computes a subset of ``whole``'s static features (fewer cepstra of
    the same filters, some of its extras, no deltas). The speech detector's features are the
    emotion models' first 13 cepstra, zero-crossing rate and pitch: a clip computes them once.

    The same bits, not only the same values: a cepstrum's DCT row and lifter weight do not depend
    on how many are kept, rounding to the grid is certain whichever path computed a frame
    (``edge.certified``), and the extras are exact."""
    same_frames = dataclasses.replace(whole, n_cepstra=part.n_cepstra, extras=part.extras, delta_order=0) == part
    if not same_frames or part.n_cepstra > whole.n_cepstra or not set(part.extras) <= set(whole.extras):
        return None
    return [*range(part.n_cepstra), *(whole.n_cepstra + whole.extras.index(extra) for extra in part.extras)]


@functools.lru_cache(maxsize=8)
def constants_for(config: FrontendConfig) -> _Constants:
    """The constants of a config, built once per process (a file each call would rebuild them)."""
    return _Constants(config)


class _Constants:
    """Everything a config implies that does not depend on the signal, computed once."""

    def __init__(self, config: FrontendConfig):
        self.window = window_function(config.window, config.frame_length)
        filterbank = mel_filterbank(config.n_filters, config.n_fft, config.sample_rate, config.low_freq, config.high_freq)
        self.lifter = lifter_weights(config.n_cepstra, config.lifter)
        floor_dbfs = config.noise_floor_dbfs
        self.power_floor = (
            np.zeros((config.n_fft // 2 + 1, 1))
            if floor_dbfs is None
            else noise_floor_power(floor_dbfs, self.window, config.preemphasis, config.n_fft)
        )
        # The fast path's matrices (frames along rows), which take |FFT|^2 before its division by
        # n_fft and carry that division themselves (a power of two, so the same bits with one pass
        # fewer): the floor, the filters (triangles: weights 0..1 before the division, as the
        # error bounds assume) and a column of ones for the frame's total power, the filters that
        # have weights, the DCT, and its magnitudes (for the error bounds).
        self.floor_row = (self.power_floor * config.n_fft).T.copy()
        self.mel_and_total = np.hstack([filterbank.T, np.ones((filterbank.shape[1], 1))]) / config.n_fft
        self.empty_filters = np.append(~filterbank.any(axis=1), False)
        # A positive floor under every bin and weights in every filter: no energy can be 0, so the
        # logarithm needs no guard (one pass fewer).
        self.energies_positive = bool(np.all(self.floor_row > 0.0) and not self.empty_filters.any())
        dct = dct_matrix(config.n_filters, config.n_cepstra)
        self.dct_columns, self.dct_magnitude = dct.T.copy(), np.abs(dct.T)
        self.dct_magnitude_sums = self.dct_magnitude.sum(axis=0) * np.abs(self.lifter)
        # The reproducible path's (frames along columns): each filter's support, and the DCT as a
        # dense "sparse" matrix: every cepstrum sums every log-mel energy, in order.
        self.mel_index, self.mel_weight = reproducible.sparse_rows(filterbank)
        self.dct_weight = dct
        self.dct_index = np.broadcast_to(np.arange(config.n_filters), self.dct_weight.shape)
        for value in vars(self).values():  # shared by every stream of this config: never written
            if isinstance(value, np.ndarray):  # (not the energies_positive flag)
                value.flags.writeable = False


def fast_cepstra(windowed: np.ndarray, config: FrontendConfig, constants: _Constants) -> tuple[np.ndarray, ...]:
    """Cepstra of each windowed frame (a row) from numpy's FFT, BLAS products and logarithm, whose
    last bits depend on the CPU, with the energies and their logarithms that the error bounds
    (``cepstra_error``) start from: (frames, n_cepstra), then twice (frames, n_filters + 1), the
    frame's total power last."""
    power = np.maximum(squared_magnitude(np.fft.rfft(windowed, config.n_fft)), constants.floor_row)
    energies = power @ constants.mel_and_total  # each filter's energy, then the frame's
    log_energies = np.log(energies if constants.energies_positive else np.where(energies == 0.0, _EPS, energies))
    cepstra = (log_energies[:, :-1] @ constants.dct_columns) * constants.lifter
    if config.append_energy:
        cepstra[:, 0] = log_energies[:, -1]
    return cepstra, energies, log_energies


def energy_error(ratio: np.ndarray, n_fft: int) -> np.ndarray:
    """The relative error of a filter's energy E whose frame's total power is ``ratio`` times E
    (``cepstra_error`` says why): 2 eps sqrt(2 ratio) + 2 eps^2 ratio, plus the power's three
    roundings and the filter's sum. Overwrites ``ratio``."""
    eps = certified.fft_error(n_fft)
    relative = np.sqrt(ratio)
    relative *= 2.0 * math.sqrt(2.0) * eps
    ratio *= 2.0 * eps * eps
    relative += ratio
    relative += certified.gamma(3) + certified.gamma(n_fft // 2 + 1)
    return relative


def cepstra_error(
    energies: np.ndarray, log_energies: np.ndarray, cepstra: np.ndarray, config: FrontendConfig, constants: _Constants
) -> np.ndarray:
    """A bound on |computed - exact| for each of ``fast_cepstra``'s values (``edge.certified``), from
    its own energies and their logarithms.

    A filter's energy E (weights of at most 1) moves by at most 2 sqrt(E n) ||dX|| / n +
    ||dX||^2 / n when the spectrum X moves by dX (Cauchy-Schwarz), and ||dX|| <= eps ||X||_2 with
    ||X||_2^2 = n ||x||^2 <= 2 n T, T the frame's total power over the n / 2 + 1 bins: relatively
    2 eps sqrt(2 T / E) + 2 eps^2 T / E, plus the power's three roundings and the filter's sum. The
    logarithm adds its ulps, the DCT its sum of |weight| times each log's error and its own
    rounding, the lifter one rounding. Times ``certified.SAFETY``.
    """
    # The frame's total power over each energy (>= 1); infinite for an energy of 0 (no noise
    # floor): an infinite or NaN bound, so that frame is undecided.
    ratio = np.divide(energies[:, -1:], energies, out=np.full(energies.shape, np.inf), where=energies > 0.0)
    relative = energy_error(ratio, config.n_fft)
    relative[:, constants.empty_filters] = 0.0  # no weight: exactly 0 in every implementation
    magnitude = np.abs(log_energies)
    log_error = certified.log_error(relative, magnitude)
    log_error[:, :-1] += certified.gamma(config.n_filters) * magnitude[:, :-1]  # the DCT's own sum
    with np.errstate(invalid="ignore"):  # an infinite error times a DCT weight of 0: NaN, undecided
        dct_error = (log_error[:, :-1] @ constants.dct_magnitude) * np.abs(constants.lifter)
    dct_error += certified.UNIT_ROUNDOFF * np.abs(cepstra)
    if config.append_energy:
        dct_error[:, 0] = log_error[:, -1]
    dct_error *= certified.SAFETY
    return dct_error


def reproducible_cepstra(windowed: np.ndarray, config: FrontendConfig, constants: _Constants) -> np.ndarray:
    """``fast_cepstra``'s values from ``edge.reproducible``'s FFT, fixed-order sums and logarithm:
    the same bits on every CPU, for the frames whose rounding the fast values leave undecided."""
    power = np.maximum(power_spectrum(windowed, config.n_fft), constants.power_floor)
    log_mel = safe_log(reproducible.weighted_sum(power, constants.mel_index, constants.mel_weight))
    cepstra = reproducible.weighted_sum(log_mel, constants.dct_index, constants.dct_weight).T * constants.lifter
    if config.append_energy:
        cepstra[:, 0] = safe_log(reproducible.fixed_order_sum(power.T))
    return cepstra


def weakest_filter_error(
    energies: np.ndarray, log_energies: np.ndarray, cepstra: np.ndarray, config: FrontendConfig, constants: _Constants
) -> np.ndarray:
    """``cepstra_error``'s bound with every filter of a frame taken as bad as its worst: the relative
    error of its weakest filter (the largest ratio of total power to energy) and the largest
    logarithm, summed with the DCT's weights. It is never below ``cepstra_error`` (each term is
    increasing in both), a few times above it, and a quarter of its cost: it decides nearly every
    frame, and ``certified_cepstra`` takes the exact bound for the rest."""
    # The smallest energy of a filter with weights (the total power, last, is never the smaller)
    weakest = np.min(energies, axis=1, where=~constants.empty_filters, initial=np.inf)
    ratio = np.divide(energies[:, -1], weakest, out=np.full(len(energies), np.inf), where=weakest > 0.0)
    relative = energy_error(ratio, config.n_fft)
    largest_log = np.abs(log_energies).max(axis=1)
    error = certified.log_error(relative, largest_log) + certified.gamma(config.n_filters) * largest_log
    with np.errstate(invalid="ignore"):  # an infinite error times a weight of 0: NaN, undecided
        bound = np.multiply.outer(error, constants.dct_magnitude_sums)
    bound += certified.UNIT_ROUNDOFF * np.abs(cepstra)
    if config.append_energy:
        bound[:, 0] = error
    bound *= certified.SAFETY
    return bound


def certified_cepstra(windowed: np.ndarray, config: FrontendConfig, constants: _Constants) -> tuple[np.ndarray, int]:
    """The cepstra of each windowed frame rounded to ``certified.GRID``, the same bits on every CPU
    (``edge.certified``), and how many frames were computed the reproducible way.

    The cheap bound (``weakest_filter_error``) decides most frames; the exact one
    (``cepstra_error``) is computed for the others, and decides most of them."""
    cepstra, energies, log_energies = fast_cepstra(windowed, config, constants)
    rows = np.flatnonzero(certified.undecided(cepstra, weakest_filter_error(energies, log_energies, cepstra, config, constants)))
    if len(rows):
        bound = cepstra_error(energies[rows], log_energies[rows], cepstra[rows], config, constants)
        rows = rows[certified.undecided(cepstra[rows], bound)]
    if len(rows):
        cepstra[rows] = reproducible_cepstra(windowed[rows], config, constants)
    return certified.round_to_grid(cepstra), len(rows)


def static_features(previous_and_signal: np.ndarray, config: FrontendConfig, constants: _Constants) -> np.ndarray:
    """Cepstra and extras of every complete frame: (frames, config.n_static).

    ``previous_and_signal`` starts with the sample that precedes the signal (for pre-emphasis).
    """
    signal, length, step = previous_and_signal[1:], config.frame_length, config.frame_step
    emphasised = frame_signal(preemphasis(previous_and_signal, config.preemphasis), length, step)
    cepstra, fallbacks = certified_cepstra(emphasised * constants.window, config, constants)
    ROUNDING.count(len(cepstra), fallbacks)
    if not config.extras:
        return cepstra
    features = np.empty((len(cepstra), config.n_static))
    features[:, : config.n_cepstra] = cepstra
    signal16 = pcm16(signal) if "pitch" in config.extras or "rms" in config.extras else None
    if "pitch" in config.extras:
        factor = config.pitch_decimation
        pitch_rate = config.sample_rate // factor
        longest = longest_pitch_lag(pitch_rate, config.pitch_min_hz)
        correlation = frame_autocorrelations(decimate(signal16, factor), length // factor, step // factor, longest)
    if "rms" in config.extras:
        if "pitch" in config.extras and config.pitch_decimation == 1:
            sums_of_squares = correlation[:, 0] + 0.0  # lag 0, the same integer (+ 0.0: a -0.0 the rounding gave is 0)
        else:
            sums_of_squares = frame_sums_of_squares(signal16, length, step)
    for column, extra in enumerate(config.extras, start=config.n_cepstra):
        if extra == "rms":
            features[:, column] = rms(sums_of_squares, length)
        elif extra == "zcr":
            features[:, column] = zero_crossing_rate(signal, length, step)
        else:
            features[:, column] = pitch(correlation, pitch_rate, config.pitch_min_hz, config.pitch_max_hz, config.pitch_voicing)
    return features


class _DeltaStream:
    """Appends deltas of the last ``n_columns`` columns, holding frames back until their right
    context has arrived; the clip's first and last frames are repeated as edge context."""

    def __init__(self, n_columns: int, width: int):
        self._n_columns = n_columns
        self._width = width
        self._buffer: np.ndarray | None = None  # left context, then frames not yet emitted

    def push(self, frames: np.ndarray, last: bool = False) -> np.ndarray:
        """The frames, with deltas, whose right context has arrived; all of them if ``last`` (the
        end of the signal), after which the stream starts afresh."""
        if self._buffer is None:
            if len(frames) == 0:
                return np.empty((0, frames.shape[1] + self._n_columns))
            self._buffer = np.repeat(frames[:1], self._width, axis=0)
        parts = [self._buffer, frames]
        if last:
            parts.append(np.repeat((frames if len(frames) else self._buffer)[-1:], self._width, axis=0))
        buffer = np.concatenate(parts)
        count = len(buffer) - 2 * self._width
        emitted = np.empty((max(count, 0), buffer.shape[1] + self._n_columns))
        if count > 0:
            emitted[:, : buffer.shape[1]] = buffer[self._width : self._width + count]
            emitted[:, buffer.shape[1] :] = deltas(buffer[:, -self._n_columns :], self._width)
        self._buffer = None if last else buffer[max(count, 0) :]
        return emitted


class StreamingFrontend:
    """Features of a signal fed in chunks of any size, identical to ``compute_features``.

    ``push`` returns the frames completed by a chunk (held back by ``delta_order * delta_width``
    frames when deltas are on); ``flush`` returns the held-back frames at the end of the signal.
    With ``batch_frames`` > 1, frames are computed only once that many are complete (fewer numpy
    calls per second of audio, later output); the features are the same bits either way.
    """

    def __init__(self, config: FrontendConfig, batch_frames: int = 1):
        self.config = config
        self.batch_frames = batch_frames
        self._constants = constants_for(config)
        self.reset()

    def push(self, samples: np.ndarray) -> np.ndarray:
        """Feed mono float samples at ``config.sample_rate``; returns (new frames, n_features)."""
        self._pending.append(np.asarray(samples, dtype=np.float64))
        self._pending_samples += len(self._pending[-1])
        return self._compute(self.batch_frames)

    def flush(self, samples: np.ndarray | None = None) -> np.ndarray:
        """End of signal, after the last ``samples`` if given (a whole signal in one call, as
        ``compute_features`` does): the frames still pending or held back for delta context, then
        start afresh."""
        if samples is not None:
            self._pending.append(np.asarray(samples, dtype=np.float64))
            self._pending_samples += len(self._pending[-1])
        frames = self._compute(1, last=True)
        self.reset()
        return frames

    def reset(self) -> None:
        """Forget all state, as if newly created (the next sample starts a new signal)."""
        self._pending = [np.zeros(1)]  # the sample before the first unframed one, then those samples,
        self._pending_samples = 1  # in chunks joined only when a batch of frames is complete
        self._deltas = [_DeltaStream(self.config.n_static, self.config.delta_width) for _ in range(self.config.delta_order)]

    def _compute(self, at_least: int, last: bool = False) -> np.ndarray:
        """Static features of the complete pending frames (if at least ``at_least``), through the
        deltas (to the end of the signal if ``last``)."""
        config = self.config
        count = frame_count(self._pending_samples - 1, config.frame_length, config.frame_step)
        if count < at_least and not last:
            return np.empty((0, config.n_features))  # what the deltas give for no frames
        pending = np.concatenate(self._pending)
        steps = [np.empty((0, config.n_static))]
        for first in range(0, count, MOST_FRAMES):
            n = min(MOST_FRAMES, count - first)
            start = first * config.frame_step
            steps.append(
                static_features(
                    pending[start : start + frames_span(n, config.frame_length, config.frame_step) + 1], config, self._constants
                )
            )
        frames = np.concatenate(steps)
        self._pending = [pending[count * config.frame_step :]]
        self._pending_samples = len(self._pending[0])
        for stage in self._deltas:
            frames = stage.push(frames, last)
        return frames


def compute_features(signal: np.ndarray, config: FrontendConfig) -> np.ndarray:
    """Features of a whole mono signal at ``config.sample_rate``: (frames, config.n_features).

    One frame per complete ``frame_length`` window every ``frame_step`` samples.
    """
    return StreamingFrontend(config).flush(signal)
