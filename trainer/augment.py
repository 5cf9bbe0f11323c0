"""Training-data augmentation, applied to training speakers only, after the split: another voice
(pitch shift and time stretch from python-stretch, Signalsmith Stretch; a shifted start), then a
room (``trainer.rooms``: echo, background noise or babble, level, colouring, clipping). The device
never augments, so none of this is in ``edge``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import python_stretch

from trainer.rooms import RoomConfig, RoomSources, room_copy


@dataclass(frozen=True)
class AugmentConfig:
    """How many altered copies of each training clip to add, and how each is altered."""

    copies: int = 2
    """Augmented copies per training clip; the original is always kept. 0 disables augmentation."""
    pitch_semitones: float = 2.0
    """Pitch is shifted by a uniform draw from ±this many semitones (duration unchanged)."""
    time_stretch: float = 0.1
    """Tempo is scaled by a uniform draw from 1 ± this (pitch unchanged)."""
    time_shift_seconds: float = 0.25
    """Up to this many seconds are cut from, or silence added to, the start."""
    room: RoomConfig = field(default_factory=RoomConfig)
    """The room each copy is then delivered from (white noise is one of its backgrounds)."""
    babble_folds: int = 4
    """Babble for a clip is made from the other speakers of its own fold of this many
    speaker-grouped folds (the cross-validation's), so that no fold trains on the voice of a speaker
    it holds out."""

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


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


def augment(
    samples: np.ndarray, sample_rate: int, config: AugmentConfig, sources: RoomSources, rng: np.random.Generator
) -> np.ndarray:
    """One randomly altered copy of a clip: pitch and tempo, start shift, then a room."""
    altered = stretch_and_shift_pitch(
        samples,
        sample_rate,
        rng.uniform(-config.pitch_semitones, config.pitch_semitones),
        rng.uniform(1 - config.time_stretch, 1 + config.time_stretch),
    )
    shift_limit = int(config.time_shift_seconds * sample_rate)
    altered = shift_start(altered, int(rng.integers(-shift_limit, shift_limit + 1)))
    return room_copy(altered, sample_rate, config.room, sources, rng)
