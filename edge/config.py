"""Typed configuration: every setting the frontend and the model windowing take, in one place.

Each is a frozen dataclass that round-trips through JSON, because the manifest of a model bundle
carries it and the device rebuilds exactly what the trainer used.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass

EXTRA_FEATURES = ("rms", "zcr", "pitch")
MAX_PITCH_FRAME_LENGTH = 4096  # samples: edge.frontend.autocorrelation stays exact up to here
WINDOW_FUNCTIONS = ("rectangular", "hamming", "hann")
POOLING_METHODS = ("mean",)


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
    delta_order: int = 0
    """0: static features only; 1: append deltas; 2: append deltas and delta-deltas."""
    delta_width: int = 2
    """Frames on each side used by the delta regression."""

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0:
            problems.append("sample_rate must be positive")
        if not 0 < self.frame_step <= self.frame_length <= self.n_fft:
            problems.append("need 0 < frame_step <= frame_length <= n_fft")
        if self.n_fft < 2 or self.n_fft & (self.n_fft - 1):
            problems.append("n_fft must be a power of two")
        if self.window not in WINDOW_FUNCTIONS:
            problems.append(f"window must be one of {WINDOW_FUNCTIONS}")
        if not 0 <= self.low_freq < self.high_freq <= self.sample_rate / 2:
            problems.append("need 0 <= low_freq < high_freq <= sample_rate / 2")
        if self.n_filters < 1 or not 1 <= self.n_cepstra <= self.n_filters:
            problems.append("need 1 <= n_cepstra <= n_filters")
        if self.lifter < 0 or not 0 <= self.preemphasis < 1:
            problems.append("need lifter >= 0 and 0 <= preemphasis < 1")
        unknown = [e for e in self.extras if e not in EXTRA_FEATURES]
        if unknown or len(set(self.extras)) != len(self.extras):
            problems.append(f"extras must be distinct names from {EXTRA_FEATURES}")
        if not 0 < self.pitch_min_hz < self.pitch_max_hz:
            problems.append("need 0 < pitch_min_hz < pitch_max_hz")
        if "pitch" in self.extras and self.sample_rate / self.pitch_min_hz >= self.frame_length:
            problems.append("pitch_min_hz is too low for one period to fit in a frame")
        if "pitch" in self.extras and self.frame_length > MAX_PITCH_FRAME_LENGTH:
            problems.append(f"pitch needs frame_length <= {MAX_PITCH_FRAME_LENGTH} (its exact autocorrelation's bound)")
        if self.delta_order not in (0, 1, 2) or self.delta_width < 1:
            problems.append("need delta_order in 0..2 and delta_width >= 1")
        if problems:
            raise ValueError("invalid frontend config: " + "; ".join(problems))

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

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> FrontendConfig:
        return cls.from_dict(json.loads(text))


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
        if self.trim_db < 0:
            raise ValueError("invalid windowing: trim_db must be >= 0")
        if not 0 < self.hop_frames <= self.window_frames:
            raise ValueError("invalid windowing: need 0 < hop_frames <= window_frames")
        if not 0 < self.min_frames <= self.window_frames:
            raise ValueError("invalid windowing: need 0 < min_frames <= window_frames")
        if self.pooling not in POOLING_METHODS:
            raise ValueError(f"invalid windowing: pooling must be one of {POOLING_METHODS}")

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

    def __post_init__(self) -> None:
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError("invalid normalisation: mean and std need the same, non-zero length")
        if not all(s > 0 for s in self.std):
            raise ValueError("invalid normalisation: every std must be positive")

    def to_dict(self) -> dict:
        return {"mean": list(self.mean), "std": list(self.std), "subtract_clip_mean": self.subtract_clip_mean}

    @classmethod
    def from_dict(cls, data: dict) -> Normalisation:
        if not isinstance(data, dict) or set(data) != {"mean", "std", "subtract_clip_mean"}:
            raise ValueError("invalid normalisation: expected an object with mean, std and subtract_clip_mean")
        if not isinstance(data["subtract_clip_mean"], bool):
            raise ValueError("invalid normalisation: subtract_clip_mean must be true or false")
        try:
            mean, std = tuple(float(v) for v in data["mean"]), tuple(float(v) for v in data["std"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"invalid normalisation: {error}") from None
        return cls(mean, std, data["subtract_clip_mean"])
