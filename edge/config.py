"""Typed configuration: every setting the frontend and the model windowing take, in one place.

Each is a frozen dataclass that round-trips through JSON, because the manifest of a model bundle
carries it and the device rebuilds exactly what the trainer used.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass

EXTRA_FEATURES = ("rms", "zcr", "pitch")
MAX_PITCH_FRAME_LENGTH = 4096  # samples: edge.frontend.autocorrelation stays exact up to here
WINDOW_FUNCTIONS = ("rectangular", "hamming", "hann")
POOLING_METHODS = ("mean",)
DEFAULT_MODEL = "lstm-multilingual"
"""The shipped bundle that runs when none is named (``ser``, the daemon, the Python API)."""
VARIANTS = ("int8", "float32")
"""A bundle's model files: the int8 model every bundle has, and a float32 one it may have."""


def check(what: str, rules) -> None:
    """The one way configuration and settings are validated: ``rules`` are (broken, key, reason)
    triples; if any is broken, one ValueError names ``what`` (a section, or a file and a section)
    and every broken key with its reason: "frontend config: n_fft must be a power of two"."""
    broken = [f"{key} {reason}" for failed, key, reason in rules if failed]
    if broken:
        raise ValueError(f"{what}: " + "; ".join(broken))


def checked_fields(cls, data: dict, what: str, noun: str = "field") -> dict:
    """The values of ``data`` for dataclass ``cls``, from JSON or TOML: unknown keys and values of
    the wrong type are refused with a ValueError naming ``what`` and the key. Integers are taken
    for floats, lists for tuples; a bool is never an int; ``X | None`` takes an X."""
    if not isinstance(data, dict):
        raise ValueError(f"{what}: expected a table of settings, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise ValueError(f"{what}: unknown {noun}(s) {', '.join(unknown)}")
    values = {}
    for name, value in data.items():
        hint = hints[name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        allowed = tuple(typing.get_origin(option) or option for option in options)
        if float in allowed and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif tuple in allowed and isinstance(value, list):
            value = tuple(value)
        if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
            names = " or ".join(t.__name__ for t in allowed if t is not type(None))
            raise ValueError(f"{what}: {name} must be {names}, got {value!r}")
        values[name] = value
    return values


@dataclass(frozen=True)
class FrontendConfig:
    """How audio becomes per-frame features (MFCC plus optional extras and deltas)."""

    sample_rate: int = 16000
    """Sample rate in Hz that audio is resampled to before anything else."""
    frame_length: int = 400
    """Samples per analysis frame (400 = 25 ms at 16 kHz)."""
    frame_step: int = 160
    """Samples between the starts of consecutive frames (160 = 10 ms at 16 kHz)."""
    n_fft: int = 512
    """FFT size in samples, a power of two; frames are zero-padded to it. Must be >= frame_length."""
    preemphasis: float = 0.97
    """Pre-emphasis coefficient a in y[n] = x[n] - a*x[n-1]; 0 disables it."""
    window: str = "hamming"
    """Window applied to each frame: rectangular, hamming or hann (symmetric)."""
    n_filters: int = 26
    """Number of triangular mel filters."""
    low_freq: float = 0.0
    """Lowest filterbank edge in Hz."""
    high_freq: float = 8000.0
    """Highest filterbank edge in Hz; at most sample_rate / 2."""
    n_cepstra: int = 13
    """Number of cepstral coefficients kept after the DCT."""
    lifter: int = 22
    """Cepstral liftering coefficient L; 0 disables liftering."""
    append_energy: bool = True
    """Replace the zeroth cepstral coefficient with the log of the frame's total power."""
    extras: tuple[str, ...] = ()
    """Per-frame extras appended after the cepstra, in this order: any of rms, zcr, pitch."""
    pitch_min_hz: float = 60.0
    """Lowest pitch in Hz the 'pitch' extra searches for."""
    pitch_max_hz: float = 400.0
    """Highest pitch in Hz the 'pitch' extra searches for."""
    pitch_voicing: float = 0.3
    """Normalised autocorrelation below which a frame counts as unvoiced (pitch 0)."""
    pitch_decimation: int = 1
    """The pitch is searched in the signal at sample_rate / this: each run of this many 16-bit
    samples summed (exact integers). 2 halves the pitch's cost (lags of 1/8000 s at 16 kHz)."""
    delta_order: int = 0
    """0: static features only; 1: append deltas; 2: append deltas and delta-deltas."""
    delta_width: int = 2
    """Frames on each side used by the delta regression."""
    noise_floor_dbfs: float | None = None
    """Every power-spectrum bin is raised to at least what white noise at this RMS level (dB
    relative to a full-scale RMS of 1.0) gives it, as if every microphone hissed at least this
    much: digital silence (zeros a program padded) then looks like a quiet room instead of
    giving energies no recording has. None: only exact zeros are raised, to machine epsilon
    (the bundles before it)."""

    def __post_init__(self) -> None:
        pitch = "pitch" in self.extras
        check(
            "frontend config",
            [
                (self.sample_rate <= 0, "sample_rate", "must be positive"),
                (
                    not 0 < self.frame_step <= self.frame_length <= self.n_fft,
                    "frame_step",
                    "needs 0 < frame_step <= frame_length <= n_fft",
                ),
                (self.n_fft < 2 or self.n_fft & (self.n_fft - 1), "n_fft", "must be a power of two"),
                (self.window not in WINDOW_FUNCTIONS, "window", f"must be one of {WINDOW_FUNCTIONS}"),
                (
                    not 0 <= self.low_freq < self.high_freq <= self.sample_rate / 2,
                    "low_freq",
                    "needs 0 <= low_freq < high_freq <= sample_rate / 2",
                ),
                (
                    self.n_filters < 1 or not 1 <= self.n_cepstra <= self.n_filters,
                    "n_cepstra",
                    "needs 1 <= n_cepstra <= n_filters",
                ),
                (self.lifter < 0, "lifter", "must be >= 0"),
                (not 0 <= self.preemphasis < 1, "preemphasis", "needs 0 <= preemphasis < 1"),
                (
                    any(e not in EXTRA_FEATURES for e in self.extras) or len(set(self.extras)) != len(self.extras),
                    "extras",
                    f"must be distinct names from {EXTRA_FEATURES}",
                ),
                (not 0 < self.pitch_min_hz < self.pitch_max_hz, "pitch_min_hz", "needs 0 < pitch_min_hz < pitch_max_hz"),
                (
                    pitch and self.pitch_min_hz > 0 and self.sample_rate / self.pitch_min_hz >= self.frame_length,
                    "pitch_min_hz",
                    "is too low for one period to fit in a frame",
                ),
                (
                    pitch and self.frame_length * self.pitch_decimation > MAX_PITCH_FRAME_LENGTH,
                    "frame_length",
                    f"times pitch_decimation must be <= {MAX_PITCH_FRAME_LENGTH} for pitch (its exact autocorrelation's bound)",
                ),
                (
                    self.pitch_decimation < 1
                    or any(n % self.pitch_decimation for n in (self.sample_rate, self.frame_length, self.frame_step)),
                    "pitch_decimation",
                    "must be at least 1 and divide sample_rate, frame_length and frame_step",
                ),
                (self.delta_order not in (0, 1, 2), "delta_order", "must be 0, 1 or 2"),
                (self.delta_width < 1, "delta_width", "must be at least 1"),
                (
                    self.noise_floor_dbfs is not None and not -150.0 <= self.noise_floor_dbfs <= -20.0,
                    "noise_floor_dbfs",
                    "must be between -150 and -20 dB, or null",
                ),
            ],
        )

    @property
    def n_static(self) -> int:
        """Features per frame before deltas."""
        return self.n_cepstra + len(self.extras)

    @property
    def n_features(self) -> int:
        """Features per frame, deltas included."""
        return self.n_static * (1 + self.delta_order)

    def to_dict(self) -> dict:
        return {**dataclasses.asdict(self), "extras": list(self.extras)}

    @classmethod
    def from_dict(cls, data: dict) -> FrontendConfig:
        return cls(**checked_fields(cls, data, "frontend config"))


@dataclass(frozen=True)
class WindowingConfig:
    """How a clip's feature frames become fixed-length model inputs, and how results are pooled."""

    window_frames: int = 300
    """Frames per model input (the model's fixed sequence length)."""
    hop_frames: int = 150
    """Frames between consecutive windows over a longer clip; the last window ends at the clip's end."""
    min_frames: int = 50
    """Clips with fewer frames than this are rejected as too short; shorter than a window is padded."""
    pooling: str = "mean"
    """How per-window class probabilities become the clip's: mean."""
    trim_db: float = 0.0
    """Drop leading and trailing frames whose log energy (feature 0, so append_energy must be on)
    is more than this many dB below the clip's loudest frame; 0 keeps every frame."""

    def __post_init__(self) -> None:
        check(
            "windowing config",
            [
                (self.trim_db < 0, "trim_db", "must be >= 0"),
                (not 0 < self.hop_frames <= self.window_frames, "hop_frames", "needs 0 < hop_frames <= window_frames"),
                (not 0 < self.min_frames <= self.window_frames, "min_frames", "needs 0 < min_frames <= window_frames"),
                (self.pooling not in POOLING_METHODS, "pooling", f"must be one of {POOLING_METHODS}"),
            ],
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WindowingConfig:
        return cls(**checked_fields(cls, data, "windowing config"))


@dataclass(frozen=True)
class Normalisation:
    """Per-feature mean and standard deviation, from the training speakers only."""

    mean: tuple[float, ...]
    """Mean of each feature over all training frames."""
    std: tuple[float, ...]
    """Standard deviation of each feature over all training frames (strictly positive)."""
    subtract_clip_mean: bool = False
    """First subtract each clip's own mean of every feature (removes speaker and channel offsets);
    mean and std above are then statistics of such mean-free frames."""
    divide_clip_std: bool = False
    """Then also divide each feature by its own std over the clip (needs subtract_clip_mean): the
    clip's level, channel and range of pitch and loudness taken out; bundles before it lack the key."""

    def __post_init__(self) -> None:
        numbers = all(isinstance(v, float) for v in (*self.mean, *self.std))
        check(
            "normalisation",
            [
                (not numbers, "mean", "and std must be lists of numbers"),
                (len(self.mean) != len(self.std) or not self.mean, "std", "needs as many values as mean, at least one"),
                (numbers and not all(s > 0 for s in self.std), "std", "must be positive everywhere"),
                (self.divide_clip_std and not self.subtract_clip_mean, "divide_clip_std", "needs subtract_clip_mean"),
            ],
        )

    def to_dict(self) -> dict:
        return {
            "mean": list(self.mean),
            "std": list(self.std),
            "subtract_clip_mean": self.subtract_clip_mean,
            "divide_clip_std": self.divide_clip_std,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Normalisation:
        values = checked_fields(cls, data, "normalisation")
        check("normalisation", [(key not in values, key, "is missing") for key in ("mean", "std", "subtract_clip_mean")])
        # JSON writes 1.0 as 1: whole numbers are taken as floats, anything else is left for the checks.
        as_floats = {key: tuple(float(v) if type(v) is int else v for v in values[key]) for key in ("mean", "std")}
        return cls(**{**values, **as_floats})
