"""Speaker splits, features through the edge frontend, normalisation and model windows."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.audio import load_audio
from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.frontend import compute_features
from edge.model_input import clip_frames, prepare
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

    def of(self, utterances, part: str) -> list[Utterance]:
        """The utterances of one part: train, validation or test."""
        speakers = set(getattr(self, part))
        return [u for u in utterances if u.speaker in speakers]


def _distribution(utterances, key) -> dict:
    values = [key(u) for u in utterances]
    return {value: values.count(value) / len(values) for value in set(values)}


def _imbalance(parts: list[list[Utterance]], everything: list[Utterance]) -> float:
    """How far the parts' emotion and gender mixes are from the whole corpus's (sum of L1 distances)."""
    total = 0.0
    for key in (lambda u: u.label, lambda u: u.gender):
        overall = _distribution(everything, key)
        for part in parts:
            mix = _distribution(part, key)
            total += sum(abs(mix.get(value, 0.0) - share) for value, share in overall.items())
    return total


def balanced_split(utterances, validation_share: float = 0.2, test_share: float = 0.2, seed: int = 0,
                   tries: int = 2000) -> SpeakerSplit:  # fmt: skip
    """Split speakers into train/validation/test so that emotions and genders are mixed as in the
    whole corpus, as far as whole speakers allow: the best of ``tries`` seeded random assignments."""
    utterances = list(utterances)
    speakers = sorted({u.speaker for u in utterances})
    n_test = max(1, round(test_share * len(speakers)))
    n_validation = max(1, round(validation_share * len(speakers)))
    if len(speakers) < n_test + n_validation + 1:
        raise ValueError(f"{len(speakers)} speakers are too few for train, validation and test splits")
    by_speaker = {s: [u for u in utterances if u.speaker == s] for s in speakers}
    rng = np.random.default_rng(seed)
    best, best_score = None, float("inf")
    for _ in range(tries):
        order = [speakers[i] for i in rng.permutation(len(speakers))]
        groups = (order[n_test + n_validation :], order[n_test : n_test + n_validation], order[:n_test])
        score = _imbalance([[u for s in g for u in by_speaker[s]] for g in groups], utterances)
        if score < best_score:
            best, best_score = groups, score
    return SpeakerSplit(*(tuple(sorted(g)) for g in best))


def speaker_folds(utterances, k: int, seed: int = 0) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Speaker-grouped k-fold for tuning: (training speakers, held-out speakers) per fold, no
    speaker on both sides, folds stratified by emotion and gender (scikit-learn)."""
    from sklearn.model_selection import StratifiedGroupKFold

    utterances = list(utterances)
    strata = [f"{u.label}/{u.gender}" for u in utterances]
    groups = [u.speaker for u in utterances]
    folds = []
    for train_index, held_index in StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(strata, strata, groups):
        folds.append((tuple(sorted({groups[i] for i in train_index})), tuple(sorted({groups[i] for i in held_index}))))
    return folds


@dataclass
class ClipSet:
    """Utterances with their features (and, for training speakers, augmented copies' features)."""

    utterances: list[Utterance]
    features: list[np.ndarray]
    augmented: list[list[np.ndarray]]

    def subset(self, keep) -> "ClipSet":
        """The clips whose utterance satisfies ``keep``."""
        index = [i for i, u in enumerate(self.utterances) if keep(u)]
        return ClipSet([self.utterances[i] for i in index], [self.features[i] for i in index], [self.augmented[i] for i in index])

    def join(self, other: "ClipSet") -> "ClipSet":
        """These clips followed by ``other``'s."""
        return ClipSet(self.utterances + other.utterances, self.features + other.features, self.augmented + other.augmented)

    def targets(self, labels: tuple[str, ...]) -> list[int]:
        return [labels.index(u.label) for u in self.utterances]


def load_clips(utterances, config: FrontendConfig, augment_config=None, seed: int = 0, progress=None) -> ClipSet:
    """Features of every utterance and, if ``augment_config`` asks for copies, of its altered copies."""
    from trainer.augment import augment

    rng = np.random.default_rng(seed)
    copies = augment_config.copies if augment_config else 0
    features, augmented = [], []
    for index, utterance in enumerate(utterances):
        samples = load_audio(utterance.path, config.sample_rate)
        features.append(compute_features(samples, config))
        augmented.append([compute_features(augment(samples, config.sample_rate, augment_config, rng), config) for _ in range(copies)])
        if progress:
            progress(index + 1, len(utterances))
    return ClipSet(list(utterances), features, augmented)


def fit_normalisation(features: list[np.ndarray], subtract_clip_mean: bool, trim_db: float) -> Normalisation:
    """Per-feature mean and std over every frame of the (training) clips, each first trimmed and
    made mean-free by the device's own ``edge.model_input.clip_frames``."""
    frames = np.concatenate([clip_frames(f, trim_db, subtract_clip_mean) for f in features])
    std = frames.std(axis=0)
    return Normalisation(tuple(frames.mean(axis=0).tolist()), tuple(np.where(std > 0, std, 1.0).tolist()), subtract_clip_mean)


def clip_windows(features: np.ndarray, normalisation: Normalisation, windowing: WindowingConfig) -> np.ndarray:
    """The float model inputs of one clip, as the device cuts them: (windows, frames, features)."""
    return prepare(features, normalisation, windowing).astype(np.float32)


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
