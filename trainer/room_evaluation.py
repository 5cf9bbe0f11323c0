"""A bundle scored "in a room": its held-out speakers' clips delivered as a room would deliver them,
built like the training copies (``trainer.rooms``) but from material training never used: rooms
of another simulated bank, the evaluation segments of the noise recordings, and other held-out
speakers as the babble. Both model files run through the device's classifier.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import load_audio
from edge.bundle import ModelBundle
from edge.frontend import compute_features
from trainer.corpus import Utterance
from trainer.dataset import clip_id
from trainer.evaluate import accuracy, uar
from trainer.rooms import RoomCondition, RoomSimulation, RoomSources, noise_root, noise_segments, render

# Rooms no training copy was made in: another seed, and a bank of its own size.
EVALUATION_ROOMS = RoomSimulation(rooms=60, seed=1001)
# The household noises the evaluation reports one by one (the miaowing trains but is not a room's noise).
EVALUATED_NOISES = ("doing_the_dishes.flac", "exercise_bike.flac", "running_tap.flac")
ROOM_LEVEL_DBFS = (-38.0, -24.0)
"""Speech as a microphone a few metres away hears it: the level range of every condition but studio."""
PADDING_SECONDS = 0.5
"""Silence before and after each clip in a room: the device hears the utterance start and end."""
MICROPHONE_FLOOR_DBFS = -70.0
"""The microphone's own hiss in every condition but studio (a Pi's USB microphone: about -70 dBFS)."""
BABBLE_TALKERS = 4


@dataclass(frozen=True)
class Condition:
    """One row of the "in a room" table."""

    name: str
    room: bool = False
    """In a room of the evaluation bank (drawn per clip), else dry."""
    noise: str | None = None
    """A noise file, 'babble', 'household' (one of EVALUATED_NOISES per clip), or None."""
    snr_db: float = 0.0
    room_level: bool = True
    """At a room's level with padding; False only for the studio clips as recorded."""
    hiss: bool = True
    """The microphone's hiss under the clip and in its padding; False: the padding is digital
    silence, as a program that pads or a muted input gives it."""


def cross_validation_conditions() -> tuple[Condition, ...]:
    """The rooms a cross-validation fold's held-out speakers are also scored in, to choose the
    training mix: a room's level, echo, household noise and babble at 10 dB, and echo with noise."""
    wanted = (
        "room level",
        "room level, digital silence",
        "reverberant",
        "doing_the_dishes 10 dB",
        "babble 10 dB",
        "reverberant + household 10 dB",
    )
    return tuple(c for c in conditions() if c.name in wanted)


def conditions() -> tuple[Condition, ...]:
    """Studio, room level (with a hiss, or padded with digital silence), reverberant, each household
    noise at 20, 10 and 5 dB, babble at 10 and 5 dB, and reverberation with household noise (10 dB)
    or babble (5 dB)."""
    noisy = [
        Condition(f"{Path(noise).stem} {snr:g} dB", noise=noise, snr_db=snr) for noise in EVALUATED_NOISES for snr in (20, 10, 5)
    ]
    return (
        Condition("studio", room_level=False),
        Condition("room level"),
        Condition("room level, digital silence", hiss=False),
        Condition("reverberant", room=True),
        *noisy,
        Condition("babble 10 dB", noise="babble", snr_db=10),
        Condition("babble 5 dB", noise="babble", snr_db=5),
        Condition("reverberant + household 10 dB", room=True, noise="household", snr_db=10),
        Condition("reverberant + babble 5 dB", room=True, noise="babble", snr_db=5),
    )


def evaluation_sources(talkers: tuple[Path, ...]) -> RoomSources:
    """The evaluation's rooms and noise segments, with ``talkers`` for babble."""
    return RoomSources(EVALUATION_ROOMS, noise_segments("evaluation"), noise_root(), tuple(talkers))


def delivered(utterance: Utterance, others: tuple[Path, ...], condition: Condition, sample_rate: int) -> np.ndarray:
    """The clip of ``utterance`` as the microphone delivers it under ``condition``, seeded by the clip
    and the condition so that every run and every model hears the same audio."""
    samples = load_audio(utterance.path, sample_rate)
    if not condition.room_level:
        return samples
    rng = np.random.default_rng([zlib.crc32(f"{clip_id(utterance.path)}|{condition.name}".encode())])
    noise = condition.noise
    if noise == "household":
        noise = EVALUATED_NOISES[int(rng.integers(len(EVALUATED_NOISES)))]
    room_condition = RoomCondition(
        room=int(rng.integers(EVALUATION_ROOMS.rooms)) if condition.room else None,
        noise=noise,
        snr_db=condition.snr_db,
        talkers=BABBLE_TALKERS,
        level_dbfs=float(rng.uniform(*ROOM_LEVEL_DBFS)),
        floor_dbfs=MICROPHONE_FLOOR_DBFS if condition.hiss else None,
    )
    pad = np.zeros(int(PADDING_SECONDS * sample_rate))
    padded = np.concatenate([pad, samples, pad])
    return render(padded, sample_rate, room_condition, evaluation_sources(others), rng)


def condition_features(condition: Condition, utterances: list[Utterance], frontend) -> list[np.ndarray]:
    """The features of every clip of ``utterances`` under ``condition``; babble from the others."""
    talkers = other_talkers(utterances)
    return [compute_features(delivered(u, talkers[u.speaker], condition, frontend.sample_rate), frontend) for u in utterances]


def _condition_features(job) -> list[np.ndarray]:
    return condition_features(*job)


def other_talkers(utterances: list[Utterance], per_speaker: int = 24) -> dict[str, tuple[Path, ...]]:
    """For each evaluated speaker, clips of the other evaluated speakers (preferring another corpus,
    so the babble is in another language where there is one) for babble."""
    by_speaker: dict[str, list[Utterance]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(u)
    rng = np.random.default_rng(0)
    talkers = {}
    for speaker, own in by_speaker.items():
        others = [u.path for u in utterances if u.speaker != speaker and u.corpus != own[0].corpus]
        others = others or [u.path for u in utterances if u.speaker != speaker]
        chosen = sorted(rng.permutation(len(others))[:per_speaker])
        talkers[speaker] = tuple(others[i] for i in chosen)
    return talkers


def _scores(truth: np.ndarray, predicted: np.ndarray, utterances: list[Utterance], n: int) -> dict:
    corpora = sorted({u.corpus for u in utterances})
    per_corpus = {}
    for corpus in corpora:
        keep = np.array([u.corpus == corpus for u in utterances])
        per_corpus[corpus] = round(uar(truth[keep], predicted[keep], n), 4)
    return {
        "uar": round(uar(truth, predicted, n), 4),
        "accuracy": round(accuracy(truth, predicted, n), 4),
        "per_corpus": per_corpus,
    }


def evaluate_in_rooms(bundle: ModelBundle, utterances: list[Utterance], jobs: int = 1, progress=None) -> dict:
    """UAR and accuracy of the bundle's int8 and float32 models on ``utterances`` under every
    condition, overall and per corpus, through the device's classifier."""
    from trainer.gate import device_probabilities, float32_twin

    labels = bundle.manifest.labels
    utterances = [u for u in utterances if u.label in labels]
    if len({u.speaker for u in utterances}) < 2:
        raise ValueError("scoring in rooms needs at least two speakers: the others talk in the babble")
    truth = np.array([labels.index(u.label) for u in utterances])
    frontend = bundle.manifest.frontend
    models = {"int8": bundle, "float32": float32_twin(bundle)}
    table = {}
    all_jobs = [(condition, utterances, frontend) for condition in conditions()]
    if jobs > 1:
        pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
        features_of = pool.map(_condition_features, all_jobs)
    else:
        pool, features_of = None, map(_condition_features, all_jobs)
    try:
        for (condition, *_), features in zip(all_jobs, features_of):
            row = {"condition": dataclasses.asdict(condition)}
            for variant, model in models.items():
                predicted = device_probabilities(model, features).argmax(axis=1)
                row[variant] = _scores(truth, predicted, utterances, len(labels))
            table[condition.name] = row
            if progress:
                progress(condition.name, row)
    finally:
        if pool:
            pool.shutdown()
    return {
        "clips": len(utterances),
        "speakers": sorted({u.speaker for u in utterances}),
        "rooms": EVALUATION_ROOMS.to_dict(),
        "noise_segments": [dataclasses.asdict(s) for s in noise_segments("evaluation")],
        "room_level_dbfs": list(ROOM_LEVEL_DBFS),
        "padding_seconds": PADDING_SECONDS,
        "microphone_floor_dbfs": MICROPHONE_FLOOR_DBFS,
        "babble": f"{BABBLE_TALKERS} other evaluated speakers at once, another corpus where there is one",
        "conditions": table,
    }
