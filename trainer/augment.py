"""Training-data augmentation, applied to training speakers only, after the split.

Pitch shift and time stretch come from python-stretch (Signalsmith Stretch); noise and shift are
plain numpy. The device never augments, so none of this is in ``edge``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import python_stretch


@dataclass(frozen=True)
class AugmentConfig:
    """How many altered copies of each training clip to add, and how each is altered."""

    copies: int = 2
    """Augmented copies per training clip; the original is always kept. 0 disables augmentation."""
    noise_snr_db: tuple[float, float] = (15.0, 35.0)
    """White noise is added at a signal-to-noise ratio drawn from this range, in dB."""
    pitch_semitones: float = 2.0
    """Pitch is shifted by a uniform draw from ±this many semitones (duration unchanged)."""
    time_stretch: float = 0.1
    """Tempo is scaled by a uniform draw from 1 ± this (pitch unchanged)."""
    time_shift_seconds: float = 0.25
    """Up to this many seconds are cut from, or silence added to, the start."""

    def to_dict(self) -> dict:
        return {**asdict(self), "noise_snr_db": list(self.noise_snr_db)}


def stretch_and_shift_pitch(samples: np.ndarray, sample_rate: int, semitones: float, tempo: float) -> np.ndarray:
    """Change pitch by ``semitones`` and speed by ``tempo`` (1.1 = 10 % faster) independently."""
    stretcher = python_stretch.Signalsmith.Stretch()
    stretcher.preset(1, sample_rate)
    stretcher.setTransposeSemitones(float(semitones))
    stretcher.setTimeFactor(float(tempo))
    return stretcher.process(samples.astype(np.float32)[None])[0].astype(np.float64)


def shift_start(samples: np.ndarray, shift: int) -> np.ndarray:
    """Delay the signal by ``shift`` samples of silence (positive) or cut ``-shift`` from its start."""
    return np.concatenate([np.zeros(shift), samples]) if shift >= 0 else samples[-shift:]


def add_noise(samples: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """Add white Gaussian noise ``snr_db`` dB below the signal's mean power."""
    power = np.mean(samples**2)
    return samples + rng.standard_normal(len(samples)) * np.sqrt(power / 10 ** (snr_db / 10))


def augment(samples: np.ndarray, sample_rate: int, config: AugmentConfig, rng: np.random.Generator) -> np.ndarray:
    """One randomly altered copy of a clip: pitch and tempo, start shift, then noise."""
    altered = stretch_and_shift_pitch(
        samples,
        sample_rate,
        rng.uniform(-config.pitch_semitones, config.pitch_semitones),
        rng.uniform(1 - config.time_stretch, 1 + config.time_stretch),
    )
    shift_limit = int(config.time_shift_seconds * sample_rate)
    altered = shift_start(altered, int(rng.integers(-shift_limit, shift_limit + 1)))
    return np.clip(add_noise(altered, rng.uniform(*config.noise_snr_db), rng), -1.0, 1.0)
