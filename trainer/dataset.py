"""Speaker splits, features through the edge frontend, normalisation and model windows."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import load_audio
from edge.config import FrontendConfig, Normalisation, WindowingConfig
from edge.frontend import FRONTEND_VERSION, compute_features
from edge.model_input import clip_frames, prepare
from trainer.corpus import Corpus, Utterance, default_test_speakers


@dataclass(frozen=True)
class SpeakerSplit:
    """Which speakers train, validate (optional: their UAR is recorded after every epoch) and test;
    disjoint."""

    train: tuple[str, ...]
    validation: tuple[str, ...]
    test: tuple[str, ...]

    def __post_init__(self) -> None:
        groups = [set(self.train), set(self.validation), set(self.test)]
        if not groups[0] or not groups[2]:
            raise ValueError("the train and test splits need at least one speaker each")
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


def balanced_split(
    utterances, validation_share: float = 0.2, test_share: float = 0.2, seed: int = 0, tries: int = 2000
) -> SpeakerSplit:
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


def choose_split(
    corpus: Corpus,
    train: tuple[str, ...] | None = None,
    validation: tuple[str, ...] | None = None,
    test: tuple[str, ...] | None = None,
    seed: int = 0,
) -> SpeakerSplit:
    """The speakers given; or the corpus's default test speakers (RAVDESS actors 17-20) with every
    other speaker training; or, where the corpus has no defaults, a split balanced for emotion and
    gender. Raises ValueError for a split that cannot be."""
    test = test or default_test_speakers(corpus)
    validation = validation or ()
    if not test:
        return balanced_split(corpus.utterances, seed=seed)
    held_out = set(validation) | set(test)
    train = train or tuple(sorted({u.speaker for u in corpus.utterances} - held_out))
    return SpeakerSplit(train, validation, test)


def speaker_folds(utterances, k: int, seed: int = 0) -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """Speaker-grouped k-fold for cross-validation: (training speakers, held-out speakers) per fold,
    no speaker on both sides, folds stratified by corpus, emotion and gender (scikit-learn)."""
    from sklearn.model_selection import StratifiedGroupKFold

    utterances = list(utterances)
    strata = [f"{u.corpus}/{u.label}/{u.gender}" for u in utterances]
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

    def subset(self, keep) -> ClipSet:
        """The clips whose utterance satisfies ``keep``."""
        index = [i for i, u in enumerate(self.utterances) if keep(u)]
        return ClipSet([self.utterances[i] for i in index], [self.features[i] for i in index], [self.augmented[i] for i in index])

    def join(self, other: ClipSet) -> ClipSet:
        """These clips followed by ``other``'s."""
        return ClipSet(self.utterances + other.utterances, self.features + other.features, self.augmented + other.augmented)

    def targets(self, labels: tuple[str, ...]) -> list[int]:
        return [labels.index(u.label) for u in self.utterances]


def feature_cache_dir() -> Path:
    """Where computed features are kept between runs: ``SER_FEATURE_CACHE``, else ``.cache/features``
    in the repository (ignored by git)."""
    configured = os.environ.get("SER_FEATURE_CACHE")
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / ".cache" / "features"


def clip_id(path: Path) -> str:
    """A clip's identity that does not depend on where the corpus folder lives: its last three path
    parts (CASIA's 201.flac exists once per speaker and emotion)."""
    return "/".join(Path(path).parts[-3:])


def babble_pool(utterances, augment_config, seed: int = 0) -> dict[str, tuple[Path, ...]]:
    """Other talkers for the babble of each speaker's copies: the other speakers of the speaker's own
    fold of ``speaker_folds`` (``augment_config.babble_folds`` folds with ``seed``, the folds
    cross-validation uses), or every other speaker where there are too few speakers for folds."""
    from trainer.rooms import babble_talkers

    if not augment_config or not augment_config.copies or "babble" not in augment_config.room.noise_kinds:
        return {}
    utterances = list(utterances)
    speakers = sorted({u.speaker for u in utterances})
    if len(speakers) >= 2 * augment_config.babble_folds:
        groups = [held for _, held in speaker_folds(utterances, augment_config.babble_folds, seed)]
    else:
        groups = [tuple(speakers)]
    return babble_talkers(utterances, groups, seed=seed)


def clip_features(
    path: Path, config: FrontendConfig, augment_config=None, seed: int = 0, talkers=()
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Features of one clip and of its augmented copies (babble from ``talkers``' clips). The
    copies' random draws depend only on the seed and the clip, so a clip gets the same copies in
    every run and every subset."""
    from trainer.augment import augment
    from trainer.rooms import training_sources

    samples = load_audio(path, config.sample_rate)
    rng = np.random.default_rng([seed, zlib.crc32(clip_id(path).encode())])
    copies = augment_config.copies if augment_config else 0
    sources = training_sources(augment_config.room, talkers) if copies else None
    altered = [
        compute_features(augment(samples, config.sample_rate, augment_config, sources, rng), config) for _ in range(copies)
    ]
    return compute_features(samples, config), altered


def _cached_clip_features(job) -> tuple[np.ndarray, list[np.ndarray]]:
    """``clip_features`` through the on-disk cache, keyed by everything the result depends on."""
    path, config, augment_config, seed, cache, talkers = job
    if cache is None:
        return clip_features(path, config, augment_config, seed, talkers)
    stat = Path(path).stat()
    copies = augment_config.copies if augment_config else 0
    key = json.dumps(
        [
            config.to_dict(),
            augment_config.to_dict() if copies else None,
            training_sources_key(augment_config, talkers) if copies else None,
            seed,
            clip_id(path),
            stat.st_size,
            stat.st_mtime_ns,
            FRONTEND_VERSION,  # the frontend's output changes with it, its config does not
        ]
    )
    file = cache / f"{hashlib.sha256(key.encode()).hexdigest()}.npz"
    if file.is_file():
        with np.load(file) as stored:
            return stored["features"], [stored[f"copy_{i}"] for i in range(len(stored.files) - 1)]
    features, copies = clip_features(path, config, augment_config, seed, talkers)
    partial = file.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, features=features, **{f"copy_{i}": c for i, c in enumerate(copies)})
    partial.replace(file)  # atomic: a concurrent or interrupted run never reads half a file
    return features, copies


def training_sources_key(augment_config, talkers) -> str:
    """What the rooms, noises and babble talkers of a clip's copies are, for the cache key."""
    from trainer.rooms import training_sources

    return training_sources(augment_config.room, talkers).key()


def load_clips(
    utterances,
    config: FrontendConfig,
    augment_config=None,
    seed: int = 0,
    progress=None,
    workers: int | None = None,
    cache: bool = True,
    talkers: dict | None = None,
) -> ClipSet:
    """Features of every utterance and, if ``augment_config`` asks for copies, of its altered
    copies (babble from ``talkers[speaker]``, see ``babble_pool``); computed in ``workers``
    processes (default: one per core) and kept in the feature cache, so a second run with the same
    frontend, augmentation and talkers reads them back."""
    utterances = list(utterances)
    cache_dir = feature_cache_dir() if cache else None
    if cache_dir:
        cache_dir.mkdir(parents=True, exist_ok=True)
    talkers = talkers or {}
    jobs = [(u.path, config, augment_config, seed, cache_dir, talkers.get(u.speaker, ())) for u in utterances]
    workers = workers or os.cpu_count() or 1
    results = []
    if workers == 1 or len(jobs) < 32:
        for job in jobs:
            results.append(_cached_clip_features(job))
            if progress:
                progress(len(results), len(jobs))
    else:
        # spawn, not fork: the trainer has TensorFlow's threads running, which fork would copy mid-flight
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            for result in pool.map(_cached_clip_features, jobs, chunksize=8):
                results.append(result)
                if progress:
                    progress(len(results), len(jobs))
    return ClipSet(utterances, [f for f, _ in results], [c for _, c in results])


def fit_normalisation(
    features: list[np.ndarray], subtract_clip_mean: bool, divide_clip_std: bool, trim_db: float
) -> Normalisation:
    """Per-feature mean and std over every frame of the (training) clips, each first trimmed and
    made mean-free (and of unit spread, if asked) by the device's own ``edge.model_input.clip_frames``."""
    frames = np.concatenate([clip_frames(f, trim_db, subtract_clip_mean, divide_clip_std) for f in features])
    std = frames.std(axis=0)
    return Normalisation(
        tuple(frames.mean(axis=0).tolist()),
        tuple(np.where(std > 0, std, 1.0).tolist()),
        subtract_clip_mean,
        divide_clip_std,
    )


def clip_windows(features: np.ndarray, normalisation: Normalisation, windowing: WindowingConfig) -> np.ndarray:
    """The float model inputs of one clip, as the device cuts them: (windows, frames, features)."""
    return prepare(features, normalisation, windowing).astype(np.float32)
