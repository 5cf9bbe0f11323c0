"""Frontend speed: ours (offline and streaming) against python_speech_features and librosa."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from benchmarks.timing import interleaved_medians
from edge.config import FrontendConfig
from edge.frontend import StreamingFrontend, compute_features
from edge.reproducible import real_fft
from edge.segmenter import FEATURE_BATCH_FRAMES

CHUNK = 160  # samples per push in the streaming measurement (10 ms at 16 kHz)


def comparable_config(shipped: FrontendConfig) -> FrontendConfig:
    """The shipped MFCC without what the other libraries do not compute (extras, deltas)."""
    return dataclasses.replace(shipped, extras=(), delta_order=0)


def streaming(signal: np.ndarray, config: FrontendConfig, batch_frames: int = 1) -> np.ndarray:
    stream = StreamingFrontend(config, batch_frames)
    frames = [stream.push(signal[i : i + CHUNK]) for i in range(0, len(signal), CHUNK)]
    return np.concatenate([*frames, stream.flush()])


def frames_of(signal: np.ndarray, config: FrontendConfig) -> np.ndarray:
    return np.lib.stride_tricks.sliding_window_view(signal, config.frame_length)[:: config.frame_step]


def numpy_fft_only(signal: np.ndarray, config: FrontendConfig):
    """Just the FFT python_speech_features and librosa do (numpy's, per-CPU kernels)."""
    return np.fft.rfft(frames_of(signal, config), config.n_fft)


def reproducible_fft_only(signal: np.ndarray, config: FrontendConfig):
    """Just the FFT our frontend does (edge.reproducible: the same bits on every CPU)."""
    return real_fft(frames_of(signal, config).T, config.n_fft)


def psf_mfcc(signal: np.ndarray, config: FrontendConfig):
    """python_speech_features.mfcc with the same frames, filters, cepstra, lifter and energy."""
    from python_speech_features import mfcc

    rate = config.sample_rate
    return mfcc(
        signal,
        rate,
        winlen=config.frame_length / rate,
        winstep=config.frame_step / rate,
        numcep=config.n_cepstra,
        nfilt=config.n_filters,
        nfft=config.n_fft,
        lowfreq=config.low_freq,
        highfreq=config.high_freq or None,
        preemph=config.preemphasis,
        ceplifter=config.lifter,
        appendEnergy=config.append_energy,
        winfunc=np.hamming,
    )


def librosa_mfcc(signal: np.ndarray, config: FrontendConfig):
    """librosa.feature.mfcc as close as it goes: same frames, window, mel filters, cepstra, lifter
    (no pre-emphasis, dB log, no energy coefficient)."""
    import librosa

    return librosa.feature.mfcc(
        y=signal,
        sr=config.sample_rate,
        n_mfcc=config.n_cepstra,
        n_fft=config.n_fft,
        hop_length=config.frame_step,
        win_length=config.frame_length,
        window="hamming",
        center=False,
        n_mels=config.n_filters,
        htk=True,
        fmin=config.low_freq,
        lifter=config.lifter,
    )


def run(speech, shipped: FrontendConfig, durations=(1, 10, 60), repeats: int = 7) -> list[dict]:
    """Milliseconds per second of audio for each implementation and duration, and the ratio of
    each to ours (offline, comparable config); librosa is timed after a warm-up call."""
    comparable = comparable_config(shipped)
    pitch_at_half_rate = dataclasses.replace(shipped, pitch_decimation=2 * shipped.pitch_decimation)
    rows = []
    for seconds in durations:
        signal = speech(seconds)
        candidates = {
            "ours offline (comparable MFCC)": lambda: compute_features(signal, comparable),
            "ours streaming, 160-sample chunks (comparable MFCC)": lambda: streaming(signal, comparable),
            f"ours streaming, 160-sample chunks, {FEATURE_BATCH_FRAMES}-frame steps (comparable MFCC)": lambda: streaming(
                signal, comparable, FEATURE_BATCH_FRAMES
            ),
            "python_speech_features.mfcc": lambda: psf_mfcc(signal, comparable),
            "numpy rfft of the frames alone (theirs)": lambda: numpy_fft_only(signal, comparable),
            "edge.reproducible rfft of the frames alone (ours)": lambda: reproducible_fft_only(signal, comparable),
            "librosa.feature.mfcc": lambda: librosa_mfcc(signal.astype(np.float32), comparable),
            "ours offline (shipped: + rms, zcr, pitch, deltas)": lambda: compute_features(signal, shipped),
            "ours offline (shipped, the pitch searched at half its sample rate)": lambda: compute_features(
                signal, pitch_at_half_rate
            ),
            "ours streaming (shipped)": lambda: streaming(signal, shipped),
            f"ours streaming, {FEATURE_BATCH_FRAMES}-frame steps as in the daemon (shipped)": lambda: streaming(
                signal, shipped, FEATURE_BATCH_FRAMES
            ),
        }
        timed = interleaved_medians(candidates, repeats, warmup=2)  # librosa's first call compiles
        reference = timed["ours offline (comparable MFCC)"]
        for name, elapsed in timed.items():
            rows.append(
                {
                    "audio_seconds": seconds,
                    "implementation": name,
                    "ms_per_audio_second": 1000 * elapsed / seconds,
                    "times_ours": elapsed / reference,
                }
            )
    return rows


def fallback_rate(corpus: Path, count: int) -> list[dict]:
    """How often certified rounding falls back (``edge.certified``): the frames of ``count`` clips
    spread over every corpus's sorted files, under each shipped bundle's frontend."""
    from edge import frontend
    from edge.audio import load_audio
    from edge.bundle import MODELS_DIR, read_manifest

    files = sorted(corpus.rglob("*.flac"))
    chosen = [files[i * len(files) // count] for i in range(count)]
    configs = {}
    for manifest_path in sorted(MODELS_DIR.glob("*/manifest.json")):
        configs.setdefault(read_manifest(manifest_path.parent).frontend, []).append(manifest_path.parent.name)
    rows = []
    for config, names in configs.items():
        before = (frontend.ROUNDING.frames, frontend.ROUNDING.fallbacks)
        seconds = 0.0
        for path in chosen:
            samples = load_audio(path, config.sample_rate)
            seconds += len(samples) / config.sample_rate
            compute_features(samples, config)
        frames, fallbacks = frontend.ROUNDING.frames - before[0], frontend.ROUNDING.fallbacks - before[1]
        rows.append(
            {
                "frontend of": ", ".join(names),
                "clips": len(chosen),
                "audio_seconds": round(seconds),
                "frames": frames,
                "fallback_frames": fallbacks,
                "fallback_percent": 100 * fallbacks / frames,
            }
        )
    return rows
