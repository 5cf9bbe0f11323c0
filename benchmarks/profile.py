"""Where the frontend's time goes: each DSP step of ``edge.frontend.static_features`` timed alone,
on the frame batches the offline path computes (``MOST_FRAMES``), against the whole
``compute_features`` and the whole frontend streamed as in the daemon; what the steps do not
account for is Python overhead (framing the stream, concatenation, delta buffering). The
reproducible path, which a frame takes only when its rounding is undecided, is timed apart."""

from __future__ import annotations

import numpy as np

from benchmarks.timing import median_seconds
from edge import certified, frontend
from edge.config import FrontendConfig
from edge.frontend import (
    MOST_FRAMES,
    StreamingFrontend,
    cepstra_error,
    compute_features,
    constants_for,
    deltas,
    frame_autocorrelations,
    frame_signal,
    frames_span,
    longest_pitch_lag,
    pcm16,
    pitch,
    preemphasis,
    reproducible_cepstra,
    rms,
    squared_magnitude,
    sum_of_squares,
    weakest_filter_error,
    zero_crossing_rate,
)
from edge.segmenter import FEATURE_BATCH_FRAMES


def step_functions(batch: np.ndarray, config: FrontendConfig) -> dict:
    """One function per step of static_features (and the deltas), on ``batch``: the samples of a
    batch of frames, led by the sample before them (as static_features takes them)."""
    constants = constants_for(config)
    emphasised = frame_signal(preemphasis(batch, config.preemphasis), config.frame_length, config.frame_step)
    windowed = emphasised * constants.window
    power = np.maximum(squared_magnitude(np.fft.rfft(windowed, config.n_fft)), constants.floor_row)
    energies = power @ constants.mel_and_total
    log_energies = np.log(energies)
    cepstra = (log_energies[:, :-1] @ constants.dct_columns) * constants.lifter
    bound = weakest_filter_error(energies, log_energies, cepstra, config, constants)
    signal16 = pcm16(batch[1:])
    samples16 = frame_signal(signal16, config.frame_length, config.frame_step)
    longest = longest_pitch_lag(config.sample_rate, config.pitch_min_hz)
    correlation = frame_autocorrelations(signal16, config.frame_length, config.frame_step, longest)
    static = frontend.static_features(batch, config, constants)
    padded = np.concatenate(
        [np.repeat(static[:1], config.delta_width, axis=0), static, np.repeat(static[-1:], config.delta_width, axis=0)]
    )
    return {
        "framing and pre-emphasis": lambda: frame_signal(
            preemphasis(batch, config.preemphasis), config.frame_length, config.frame_step
        ),
        "window": lambda: emphasised * constants.window,
        "FFT and power (numpy)": lambda: np.maximum(squared_magnitude(np.fft.rfft(windowed, config.n_fft)), constants.floor_row),
        "mel filterbank and total power (one BLAS product)": lambda: power @ constants.mel_and_total,
        "log (numpy)": lambda: np.log(energies),
        "DCT and lifter (BLAS)": lambda: (log_energies[:, :-1] @ constants.dct_columns) * constants.lifter,
        "error bound (the weakest filter's, every frame)": lambda: weakest_filter_error(
            energies, log_energies, cepstra, config, constants
        ),
        "(the exact error bound, all frames: taken only where the first leaves a frame undecided)": lambda: cepstra_error(
            energies, log_energies, cepstra, config, constants
        ),
        "rounding to the grid, fallback check": lambda: (certified.undecided(cepstra, bound), certified.round_to_grid(cepstra)),
        "16-bit samples (for rms and pitch)": lambda: pcm16(batch[1:]),
        "zero-crossing rate": lambda: zero_crossing_rate(batch[1:], config.frame_length, config.frame_step),
        "exact autocorrelation (for pitch, its lag 0 for rms)": lambda: frame_autocorrelations(
            signal16, config.frame_length, config.frame_step, longest
        ),
        "pitch from the autocorrelation": lambda: pitch(
            correlation, config.sample_rate, config.pitch_min_hz, config.pitch_max_hz, config.pitch_voicing
        ),
        "rms from the sums of squares": lambda: rms(correlation[:, 0] + 0.0, config.frame_length),
        "(rms without pitch: the sums of squares)": lambda: sum_of_squares(samples16),
        "deltas": lambda: deltas(padded, config.delta_width),
        "(fallback: the reproducible path, all frames)": lambda: reproducible_cepstra(windowed, config, constants),
    }


def streamed(signal: np.ndarray, config: FrontendConfig, batch_frames: int, chunk: int) -> np.ndarray:
    stream = StreamingFrontend(config, batch_frames)
    return np.concatenate([*(stream.push(signal[i : i + chunk]) for i in range(0, len(signal), chunk)), stream.flush()])


def run(signal: np.ndarray, config: FrontendConfig, repeats: int = 7) -> list[dict]:
    """Milliseconds per second of audio of each step on MOST_FRAMES-frame batches (offline; the
    daemon computes FEATURE_BATCH_FRAMES frames per step), of the whole offline frontend, and of
    the whole frontend fed as the daemon's segmenter feeds it (frame_step-sample blocks)."""
    seconds = len(signal) / config.sample_rate
    batch = signal[: frames_span(MOST_FRAMES, config.frame_length, config.frame_step) + 1]
    per_second = config.sample_rate / config.frame_step / MOST_FRAMES  # batches per second of audio
    rows, total = [], 0.0
    for name, function in step_functions(batch, config).items():
        elapsed = median_seconds(function, repeats * 5) * per_second * 1000
        total += elapsed if not name.startswith("(") else 0.0  # steps in brackets: not on the shipped path
        rows.append({"where": "offline", "step": name, "ms_per_audio_second": elapsed})
    rows.append({"where": "offline", "step": "sum of the steps", "ms_per_audio_second": total})
    wholes = {
        ("offline", "whole frontend (overhead = whole - sum)"): lambda: compute_features(signal, config),
        ("daemon", f"whole frontend, {config.frame_step}-sample blocks, {FEATURE_BATCH_FRAMES}-frame steps"): lambda: streamed(
            signal, config, FEATURE_BATCH_FRAMES, config.frame_step
        ),
    }
    for (where, step), function in wholes.items():
        rows.append({"where": where, "step": step, "ms_per_audio_second": median_seconds(function, repeats) / seconds * 1000})
    return rows
