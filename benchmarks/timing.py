"""Median wall time of repeated calls, and the speech the benchmarks run on."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def median_seconds(function, repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``function()`` over ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def interleaved_medians(functions: dict, repeats: int, warmup: int = 1) -> dict:
    """Median wall seconds of each function, timed in turns (one call of each per round), so a
    noisy neighbour slows them all alike and their ratios hold."""
    for function in functions.values():
        for _ in range(warmup):
            function()
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def speech_clips(corpus_dir: Path | None, count: int) -> list[Path]:
    """Real speech: RAVDESS clips of validation actors 13-16 if the corpus is there, else examples/."""
    if corpus_dir and (corpus_dir / "ravdess").is_dir():
        clips = sorted((corpus_dir / "ravdess").glob("Actor_1[3-6]/*.flac"))
        if clips:
            return clips[:: max(1, len(clips) // count)][:count]
    return sorted((REPO / "examples").glob("*.flac"))


def speech(seconds: float, clips: list[Path], sample_rate: int = 16000) -> np.ndarray:
    """``seconds`` of real speech at ``sample_rate``: the clips one after another, repeated as needed."""
    from edge.audio import load_audio

    pieces, total = [], 0
    while total < seconds * sample_rate:
        for clip in clips:
            pieces.append(load_audio(clip, sample_rate))
            total += len(pieces[-1])
    return np.concatenate(pieces)[: round(seconds * sample_rate)]
