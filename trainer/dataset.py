"""Speaker splits, features through the edge frontend, normalisation and model windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.audio import load_audio
from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.frontend import compute_features
from edge.model_input import clip_mean, normalise, windows
from trainer.corpus import Utterance


@dataclass(frozen=True)
class SpeakerSplit:
    """Which speakers train, validate (early stopping, LR schedule) and test; disjoint."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        groups = [set(self.train), set(self.validation), set(self.test)]
        if not all(groups):
            raise ValueError("every split needs at least one speaker")
        if len(groups[0] | groups[1] | groups[2]) != sum(map(len, groups)):
            raise ValueError("a speaker is in more than one split")

    def of(self, utterances: list[Utterance], part: str) -> list[Utterance]:
        """The utterances of one part: train, validation or test."""
        speakers = set(getattr(self, part))
        return [u for u in utterances if u.speaker in speakers]


def extract_features(utterances: list[Utterance], config: FrontendConfig, progress=None) -> list[np.ndarray]:
    """Frontend features of each utterance, computed exactly as the device computes them."""
    result = []
    for index, utterance in enumerate(utterances):
        result.append(compute_features(load_audio(utterance.path, config.sample_rate), config))
        if progress:
            progress(index + 1, len(utterances))
    return result


def fit_normalisation(features: list[np.ndarray], subtract_clip_mean: bool) -> Normalisation:
    """Per-feature mean and std over every frame of the (training) clips, each clip made
    mean-free first if ``subtract_clip_mean``, exactly as ``edge.model_input.normalise`` will."""
    frames = np.concatenate([f - clip_mean(f) if subtract_clip_mean else f for f in features])
    std = frames.std(axis=0)
    return Normalisation(tuple(frames.mean(axis=0).tolist()), tuple(np.where(std > 0, std, 1.0).tolist()), subtract_clip_mean)


def clip_windows(features: np.ndarray, normalisation: Normalisation, windowing: WindowingConfig) -> np.ndarray:
    """The float model inputs of one clip, as the device cuts them: (windows, frames, features)."""
    return windows(normalise(features, normalisation), windowing).astype(np.float32)


def window_dataset(
    features: list[np.ndarray], labels: list[int], normalisation: Normalisation, windowing: WindowingConfig
) -> tuple[np.ndarray, np.ndarray]:
    """All windows of all clips with their clips' labels, for training."""
    xs, ys = [], []
    for clip, label in zip(features, labels):
        clip_inputs = clip_windows(clip, normalisation, windowing)
        xs.append(clip_inputs)
        ys.extend([label] * len(clip_inputs))
    return np.concatenate(xs), np.asarray(ys)
