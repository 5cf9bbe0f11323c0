"""Streams of speech in a room with the true extent of every utterance, replayed to the daemon's
segmenter and scored: how many utterances gave exactly one event, how many were missed or split,
how many events fell on no utterance, how far the boundaries were off, and how long after the end
of speech the event came.

A stream is a row of clips of speakers the speech detector never trained on, each at a room's
level, 2 s apart, over a background (household noise, echo, other people talking) built like the
"in a room" evaluation (``trainer.room_evaluation``) from material training never used; or a
background alone. An utterance's true extent is where its clean clip is loud: from its first to
its last block within ``SPEECH_RANGE_DB`` of its loudest.
"""

from __future__ import annotations

import collections
import dataclasses
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.audio import load_audio
from edge.segmenter import Segmenter
from edge.settings import SegmenterSettings
from edge.voice_activity import block_levels
from trainer.corpus import Corpus, default_test_speakers
from trainer.room_evaluation import BABBLE_TALKERS, EVALUATED_NOISES, EVALUATION_ROOMS, MICROPHONE_FLOOR_DBFS, ROOM_LEVEL_DBFS
from trainer.rooms import babble, impulse_responses, noise_root, noise_samples, noise_segments, power, reverberate, stretch_of

VALIDATION_SPEAKERS = (
    "ravdess/13",
    "ravdess/14",
    "ravdess/15",
    "ravdess/16",
    "emodb/03",
    "emodb/08",
    "savee/KL",
    "casia/liuchanhg",
    "emotiontts/nea",
    "emotiontts/nek",
    "ased/05",
    "ased/10",
)
"""The streams' speakers, six women and six men in five languages, whose clips never train the
speech detector (``trainer.speech_detector``)."""
CLIPS_PER_SPEAKER = 20
"""240 utterances a stream, as the issue's held-out streams."""
SPEECH_RANGE_DB = 30.0
"""A clean clip's speech spans its blocks within this many dB of its loudest block."""
GAP_SECONDS = 2.0
"""Silence (the room's background) between consecutive clips, as the issue's held-out streams."""
READ_SECONDS = 0.1
"""The microphone's read size (the daemon's capture block): the segmenter gets the stream in these."""
NOISE_ALONE_DBFS = -40.0
"""RMS level of a background played with nobody speaking."""
HOUSEHOLD_CHANGE_SECONDS = 20.0
"""A household background changes noise (dishes, bike, tap, in turn) this often."""


@dataclass(frozen=True)
class StreamCondition:
    """One kind of stream: its background, and whether anyone speaks."""

    name: str
    noise: str | None = None
    """A noise file name, 'household' (the evaluated noises in turn), 'babble' or None (a quiet room)."""
    snr_db: float = 0.0
    """Speech (over the utterances' extents) to background power ratio, in dB."""
    room: bool = False
    """Each clip reverberated by a room of the evaluation bank."""
    speech: bool = True
    """False: the background alone, at ``NOISE_ALONE_DBFS``, for ``noise_seconds``."""


def conditions() -> tuple[StreamCondition, ...]:
    """Quiet room; household noise at 20, 10 and 5 dB; echo with household noise at 15 dB; babble at
    10 dB; and each household noise and the miaowing man alone."""
    alone = (*EVALUATED_NOISES, "dude_miaowing.flac")
    return (
        StreamCondition("quiet room"),
        *(StreamCondition(f"household {snr} dB", "household", snr) for snr in (20, 10, 5)),
        StreamCondition("echo + household 15 dB", "household", 15, room=True),
        StreamCondition("babble 10 dB", "babble", 10),
        *(StreamCondition(f"{Path(noise).stem} alone", noise, speech=False) for noise in alone),
    )


@dataclass(frozen=True)
class Stream:
    """Mono samples and the true extents of their utterances."""

    name: str
    samples: np.ndarray
    """At ``rate``, in [-1, 1]."""
    rate: int
    truth: tuple[tuple[float, float], ...]
    """(start, end) of each utterance's speech, seconds from the stream's start."""


def speech_extent(samples: np.ndarray, block: int = 256) -> tuple[int, int]:
    """First and one-past-last sample of a clean clip's speech: its blocks within
    ``SPEECH_RANGE_DB`` of the loudest."""
    n_blocks = len(samples) // block
    levels = block_levels(samples[: n_blocks * block].reshape(n_blocks, block))
    loud = np.flatnonzero(levels >= levels.max() - SPEECH_RANGE_DB)
    return int(loud[0]) * block, (int(loud[-1]) + 1) * block


def household(length: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """The evaluated household noises in turn, ``HOUSEHOLD_CHANGE_SECONDS`` each, each stretch at
    the same power."""
    segments = {s.file: s for s in noise_segments("evaluation")}
    recordings = [noise_samples(noise_root(), segments[name], rate) for name in EVALUATED_NOISES]
    change = int(HOUSEHOLD_CHANGE_SECONDS * rate)
    parts = []
    for index, start in enumerate(range(0, length, change)):
        part = stretch_of(recordings[index % len(recordings)], min(change, length - start), rng)
        parts.append(part / np.sqrt(max(power(part), 1e-20)))
    return np.concatenate(parts)


def background(condition: StreamCondition, length: int, rate: int, talkers: tuple[Path, ...], rng) -> np.ndarray:
    """``length`` samples of the condition's background at an arbitrary level."""
    if condition.noise == "household":
        return household(length, rate, rng)
    if condition.noise == "babble":
        return babble(talkers, BABBLE_TALKERS, length, rate, rng)
    segment = next(s for s in noise_segments("evaluation") if s.file == condition.noise)
    return stretch_of(noise_samples(noise_root(), segment, rate), length, rng)


def build_stream(
    condition: StreamCondition,
    clips: list[Path],
    talkers: tuple[Path, ...] = (),
    rate: int = 16000,
    noise_seconds: float = 120.0,
    noise_dbfs: float = NOISE_ALONE_DBFS,
    seed: int = 0,
) -> Stream:
    """The stream of ``condition``: ``clips`` in order, each at a room's level (drawn per clip),
    ``GAP_SECONDS`` apart, over its background, with the microphone's hiss everywhere; or
    ``noise_seconds`` of the background alone at ``noise_dbfs``. ``talkers``: clips of other speakers, for babble.
    The same arguments give the same samples."""
    rng = np.random.default_rng([seed, zlib.crc32(condition.name.encode())])
    gap = np.zeros(int(GAP_SECONDS * rate))
    pieces, truth, position, speech_power = [gap], [], len(gap), []
    responses = impulse_responses(EVALUATION_ROOMS, rate) if condition.room else ()
    for clip in clips if condition.speech else ():
        samples = load_audio(clip, rate)
        samples = samples - samples.mean()
        start, end = speech_extent(samples)
        level_dbfs = rng.uniform(*ROOM_LEVEL_DBFS)
        samples = samples * 10 ** (level_dbfs / 20) / np.sqrt(max(power(samples[start:end]), 1e-20))
        if condition.room:
            samples = reverberate(np.concatenate([samples, np.zeros(rate // 2)]), responses[int(rng.integers(len(responses)))])
        speech_power.append(power(samples[start:end]))
        truth.append(((position + start) / rate, (position + end) / rate))
        pieces += [samples, gap]
        position += len(samples) + len(gap)
    stream = np.concatenate(pieces) if condition.speech else np.zeros(int(noise_seconds * rate))
    if condition.noise is not None:
        noise = background(condition, len(stream), rate, talkers, rng)
        noise /= np.sqrt(max(power(noise), 1e-20))
        if condition.speech:
            stream += noise * np.sqrt(np.mean(speech_power) / 10 ** (condition.snr_db / 10))
        else:
            stream += noise * 10 ** (noise_dbfs / 20)
    stream += rng.standard_normal(len(stream)) * 10 ** (MICROPHONE_FLOOR_DBFS / 20)
    return Stream(condition.name, np.clip(stream, -1.0, 1.0), rate, tuple(truth))


@dataclass(frozen=True)
class Event:
    """An utterance the segmenter emitted, in seconds from the stream's start."""

    speech_start: float
    speech_end: float
    emitted: float
    """Where in the stream the segmenter had read to when it gave the utterance."""


def replay(stream: Stream, segmenter: Segmenter) -> list[Event]:
    """Feed the stream to ``segmenter`` in the microphone's reads; the events, in order."""
    read = int(READ_SECONDS * stream.rate)
    events = []
    for at in range(0, len(stream.samples), read):
        chunk = stream.samples[at : at + read]
        for utterance in segmenter.push(chunk):
            events.append(Event(utterance.speech_start, utterance.speech_end, (at + len(chunk)) / stream.rate))
    end = len(stream.samples) / stream.rate
    return events + [Event(u.speech_start, u.speech_end, end) for u in segmenter.flush()]


def _percentiles(values: list[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    return float(np.median(values)), float(np.percentile(values, 95))


def score(truth: tuple[tuple[float, float], ...], events: list[Event]) -> dict:
    """The events against the true utterances. An event belongs to every utterance its speech
    overlaps. Utterances: with exactly one event of their own, missed (none), split (two or more),
    merged (one event shared with another utterance). Events over no utterance. For utterances with
    one event: the boundary errors (detected minus true start and end, absolute: median and 95th
    percentile) and the delay from the end of speech to the event."""
    overlapping = [[e for e in events if e.speech_start < end and e.speech_end > start] for start, end in truth]
    owners = collections.Counter(id(e) for group in overlapping for e in group)  # utterances per event
    one = [(t, group[0]) for t, group in zip(truth, overlapping) if len(group) == 1 and owners[id(group[0])] == 1]
    start_error = _percentiles([abs(e.speech_start - t[0]) for t, e in one])
    end_error = _percentiles([abs(e.speech_end - t[1]) for t, e in one])
    delay = _percentiles([e.emitted - t[1] for t, e in one])
    return {
        "utterances": len(truth),
        "one_event": len(one),
        "missed": sum(len(group) == 0 for group in overlapping),
        "split": sum(len(group) >= 2 for group in overlapping),
        "merged": sum(len(group) == 1 and owners[id(group[0])] > 1 for group in overlapping),
        "events_over_no_utterance": sum(owners[id(e)] == 0 for e in events),
        "start_error_median_s": start_error[0],
        "start_error_p95_s": start_error[1],
        "end_error_median_s": end_error[0],
        "end_error_p95_s": end_error[1],
        "delay_median_s": delay[0],
        "delay_p95_s": delay[1],
    }


def validation_speakers(corpus: Corpus) -> tuple[str, ...]:
    """The ``VALIDATION_SPEAKERS`` found in ``corpus``, as its speaker ids ('13' in RAVDESS read alone)."""
    present = {u.speaker for u in corpus.utterances}
    named = [
        name if corpus.name == kind else f"{kind}/{name}" for kind, _, name in (s.partition("/") for s in VALIDATION_SPEAKERS)
    ]
    return tuple(s for s in named if s in present)


def stream_material(corpus: Corpus, seed: int = 0) -> tuple[list[Path], tuple[Path, ...]]:
    """The streams' clips: ``CLIPS_PER_SPEAKER`` of each validation speaker, drawn at random, the
    speakers taking turns; and clips of the training speakers for the babble."""
    rng = np.random.default_rng(seed)
    speakers = validation_speakers(corpus)
    if not speakers:
        raise ValueError(f"none of the validation speakers ({', '.join(VALIDATION_SPEAKERS)}) is in {corpus.name}")
    by_speaker = {s: [u.path for u in corpus.utterances if u.speaker == s] for s in speakers}
    drawn = {s: [clips[i] for i in rng.permutation(len(clips))[:CLIPS_PER_SPEAKER]] for s, clips in by_speaker.items()}
    clips = [drawn[s][k] for k in range(CLIPS_PER_SPEAKER) for s in speakers if k < len(drawn[s])]
    held_out = set(speakers) | set(default_test_speakers(corpus))
    others = [u.path for u in corpus.utterances if u.speaker not in held_out]
    talkers = tuple(others[i] for i in sorted(rng.permutation(len(others))[:48]))
    return clips, talkers


def evaluate_streams(corpus: Corpus, settings: SegmenterSettings, progress=None) -> dict:
    """Every condition's stream replayed to a segmenter with ``settings`` (the shipped emotion
    model's frontend and minimum length), scored."""
    from edge.bundle import load_bundle

    manifest = load_bundle().manifest
    clips, talkers = stream_material(corpus)
    results = {}
    for condition in conditions():
        stream = build_stream(condition, clips, talkers, manifest.frontend.sample_rate)
        segmenter = Segmenter(settings, manifest.frontend, manifest.windowing.min_frames)
        results[condition.name] = score(stream.truth, replay(stream, segmenter))
        if progress:
            progress(condition.name, results[condition.name])
    return {
        "settings": dataclasses.asdict(settings),
        "speakers": list(validation_speakers(corpus)),
        "utterances_per_stream": len(clips),
        "conditions": results,
    }
