"""Copies of clips as a room delivers them to a microphone one to four metres away: echo, background
noise or other people talking, the level of a quiet room, a cheap microphone's colouring and now and
then clipping. The training copies and the "in a room" evaluation are built by the same code from
disjoint material: other simulated rooms, other segments of the noise recordings, other talkers.

The rooms' impulse responses are simulated once with pyroomacoustics (shoebox rooms, image source
method) and cached; the filters and clipping are audiomentations'. The device never does any of
this: it hears the room itself.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

NOISE_KINDS = ("household", "babble", "white", "pink")
# The real recordings of ../shared/noise and the synthetic ones, by file stem.
HOUSEHOLD_NOISES = ("doing_the_dishes", "exercise_bike", "running_tap", "dude_miaowing")
SYNTHETIC_NOISES = ("white_noise", "pink_noise")


def noise_root() -> Path:
    """``SER_NOISE_DIR``, else ``../shared/noise`` beside the repository."""
    configured = os.environ.get("SER_NOISE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "noise"


def room_cache_dir() -> Path:
    """Where simulated impulse responses are kept: ``SER_ROOM_CACHE``, else ``.cache/rooms``."""
    configured = os.environ.get("SER_ROOM_CACHE")
    return Path(configured) if configured else Path(__file__).resolve().parents[1] / ".cache" / "rooms"


@dataclass(frozen=True)
class RoomSimulation:
    """A bank of simulated shoebox rooms, each with one source and one microphone."""

    rooms: int = 200
    """Impulse responses in the bank."""
    rt60_seconds: tuple[float, float] = (0.2, 1.0)
    """Reverberation time asked of each room (Sabine's formula gives its walls' absorption)."""
    distance_m: tuple[float, float] = (0.5, 4.0)
    """Distance from the talker to the microphone."""
    size_m: tuple[tuple[float, float], ...] = ((3.0, 8.0), (2.5, 7.0), (2.4, 3.2))
    """Length, width and height ranges of the rooms."""
    seed: int = 0
    """Training and evaluation banks differ by seed, so that no evaluated room was trained on."""

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


@dataclass(frozen=True)
class NoiseSegment:
    """A stretch of one noise recording: training and evaluation use stretches apart from each other."""

    kind: str
    """household, white or pink."""
    file: str
    """The recording's file name in the noise folder."""
    start: float
    """Start, as a share of the recording's length (0-1)."""
    end: float
    """End, as a share of its length."""


def noise_segments(part: str) -> tuple[NoiseSegment, ...]:
    """The segments of every noise recording that ``part`` (train or evaluation) may use: the first
    80 % trains, the last 15 % evaluates, and the 5 % between keeps them apart. The folder holds only
    the first 70 % of each real recording; the rest is held out from everyone here."""
    start, end = {"train": (0.0, 0.8), "evaluation": (0.85, 1.0)}[part]
    return tuple(
        NoiseSegment("household" if stem in HOUSEHOLD_NOISES else stem.split("_")[0], f"{stem}.flac", start, end)
        for stem in (*HOUSEHOLD_NOISES, *SYNTHETIC_NOISES)
    )


@dataclass(frozen=True)
class RoomConfig:
    """How often each part of a room is in a copy, and in what range its settings are drawn (each
    uniformly, independently per copy)."""

    reverb_share: float = 0.7
    """Share of copies spoken in a simulated room (the rest: dry, close to the microphone)."""
    noise_share: float = 0.8
    """Share of copies with a background: one of ``noise_kinds``, chosen alike."""
    noise_kinds: tuple[str, ...] = NOISE_KINDS
    """household (dishes, exercise bike, tap, a man miaowing), babble (other training talkers), white, pink."""
    snr_db: tuple[float, float] = (0.0, 30.0)
    """Speech-to-background power ratio (over the whole clip), in dB."""
    babble_talkers: tuple[int, int] = (3, 6)
    """How many other people talk at once in babble."""
    level_dbfs: tuple[float, float] | None = (-45.0, -15.0)
    """RMS level of the copy as the microphone delivers it, in dB relative to full scale; None keeps
    the clip's own."""
    colouring_share: float = 0.5
    """Share of copies through a microphone's colouring: a high-pass (80-400 Hz), a low-pass
    (3.4-7.5 kHz) and a tilt (a high shelf at 2 kHz, -6 to +6 dB), each in half of those copies."""
    clipping_share: float = 0.05
    """Share of copies clipped at a percentile (1-10 %) of their samples' magnitude."""
    floor_dbfs: tuple[float, float] | None = (-80.0, -60.0)
    """RMS level of the microphone's own hiss, in every copy; None: none."""
    simulation: RoomSimulation = field(default_factory=RoomSimulation)
    """The bank of simulated rooms the reverberation comes from."""

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))


# The copies of the models shipped before the rooms: white noise at 15-35 dB, nothing else.
WHITE_NOISE_ONLY = RoomConfig(
    reverb_share=0.0,
    noise_share=1.0,
    noise_kinds=("white",),
    snr_db=(15.0, 35.0),
    level_dbfs=None,
    colouring_share=0.0,
    clipping_share=0.0,
    floor_dbfs=None,
)


@dataclass(frozen=True)
class RoomCondition:
    """Every setting of one copy, drawn by ``draw_condition`` or set by an evaluation."""

    room: int | None = None
    """Index of the impulse response in the bank; None: dry."""
    noise: str | None = None
    """A noise file name, 'babble', or None: no background."""
    snr_db: float = 0.0
    """Speech-to-background ratio in dB, where there is a background."""
    talkers: int = 0
    """Other people talking, for babble."""
    level_dbfs: float | None = None
    """RMS level of the result; None leaves the level as it is."""
    high_pass_hz: float = 0.0
    """Cut-off of a high-pass filter (12 dB/octave); 0: none."""
    low_pass_hz: float = 0.0
    """Cut-off of a low-pass filter (12 dB/octave); 0: none."""
    tilt_db: float = 0.0
    """Gain of a high shelf at 2 kHz; 0: none."""
    clip_percentile: float = 0.0
    """Samples beyond this percentile of the magnitudes are clipped; 0: none."""
    floor_dbfs: float | None = None
    """RMS level of the microphone's own hiss (white), added after the level; None: none. A real
    microphone is never digitally silent, and the model should not learn what digital silence is."""


@dataclass(frozen=True)
class RoomSources:
    """Where a copy's rooms, noises and other talkers come from. Paths and settings only, so that
    worker processes load each once and cache keys can name them."""

    simulation: RoomSimulation
    """The bank of impulse responses (simulated and cached on first use)."""
    noises: tuple[NoiseSegment, ...]
    """The noise segments this side may use."""
    noise_dir: Path
    """The folder of the noise recordings."""
    talkers: tuple[Path, ...] = ()
    """Clips of other speakers, for babble (never of the speaker of the clip, never a test speaker's
    in training)."""

    def key(self) -> str:
        """What a copy's features depend on, for the feature cache."""
        from trainer.dataset import clip_id

        talkers = hashlib.sha256("\n".join(clip_id(p) for p in self.talkers).encode()).hexdigest()
        noises = [asdict(n) for n in self.noises]
        return json.dumps([self.simulation.to_dict(), noises, talkers])


def simulate_room(simulation: RoomSimulation, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """The impulse response of one random shoebox room at ``sample_rate``, scaled to a direct path of
    1 and starting at the direct sound (so that speech is not delayed), as float32."""
    import pyroomacoustics as pra

    for _ in range(100):
        size = np.array([rng.uniform(*r) for r in simulation.size_m])
        rt60 = rng.uniform(*simulation.rt60_seconds)
        try:
            absorption, max_order = pra.inverse_sabine(rt60, size)
        except ValueError:  # a room too small for that reverberation time: draw again
            continue
        source = rng.uniform(0.3, size - 0.3)
        direction = rng.standard_normal(3)
        microphone = source + rng.uniform(*simulation.distance_m) * direction / np.linalg.norm(direction)
        if np.all(microphone > 0.2) and np.all(microphone < size - 0.2):
            break
    else:
        raise RuntimeError("no room could be drawn for these settings")
    room = pra.ShoeBox(size, fs=sample_rate, materials=pra.Material(absorption), max_order=min(max_order, 60))
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    response = np.asarray(room.rir[0][0], dtype=np.float64)
    direct = int(np.argmax(np.abs(response)))
    return (response[direct:] / abs(response[direct])).astype(np.float32)


@lru_cache(maxsize=4)
def impulse_responses(simulation: RoomSimulation, sample_rate: int = 16000) -> tuple[np.ndarray, ...]:
    """The bank of ``simulation``, from the cache or simulated (once: about a minute for 200 rooms)."""
    key = hashlib.sha256(json.dumps([simulation.to_dict(), sample_rate, 1]).encode()).hexdigest()[:16]
    file = room_cache_dir() / f"rooms-{key}.npz"
    if file.is_file():
        with np.load(file) as stored:
            return tuple(stored[f"room_{i}"] for i in range(simulation.rooms))
    rng = np.random.default_rng([simulation.seed, 0x5EED])
    bank = tuple(simulate_room(simulation, sample_rate, rng) for _ in range(simulation.rooms))
    file.parent.mkdir(parents=True, exist_ok=True)
    partial = file.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(partial, **{f"room_{i}": r for i, r in enumerate(bank)})
    partial.replace(file)
    return bank


@lru_cache(maxsize=16)
def noise_samples(noise_dir: Path, segment: NoiseSegment, sample_rate: int = 16000) -> np.ndarray:
    """The samples of one noise segment, without its DC."""
    from edge.audio import load_audio

    samples = load_audio(noise_dir / segment.file, sample_rate)
    part = samples[int(segment.start * len(samples)) : int(segment.end * len(samples))]
    return part - part.mean()


def power(samples: np.ndarray) -> float:
    """Mean square of the samples (0 for none)."""
    return float(np.mean(np.square(samples))) if len(samples) else 0.0


def rms_dbfs(samples: np.ndarray) -> float:
    """RMS level in dB relative to a full-scale (±1) square wave."""
    return 10 * np.log10(max(power(samples), 1e-20))


def reverberate(samples: np.ndarray, response: np.ndarray) -> np.ndarray:
    """``samples`` as heard through a room's impulse response, cut to their own length."""
    from scipy.signal import fftconvolve

    return fftconvolve(samples, response.astype(np.float64))[: len(samples)]


def stretch_of(noise: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """``length`` samples of ``noise`` from a random offset, repeated where it is shorter."""
    start = int(rng.integers(0, len(noise)))
    return np.resize(np.roll(noise, -start), length)


def babble(talkers: tuple[Path, ...], count: int, length: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` other people talking at once: clips of distinct ``talkers`` at equal power, each
    looped to ``length`` samples from a random offset, summed."""
    from edge.audio import load_audio

    if not talkers:
        raise ValueError("babble needs clips of other talkers")
    chosen = rng.choice(len(talkers), size=min(count, len(talkers)), replace=False)
    mix = np.zeros(length)
    for index in chosen:
        voice = load_audio(talkers[index], sample_rate)
        voice = voice - voice.mean()
        mix += stretch_of(voice, length, rng) / np.sqrt(max(power(voice), 1e-20))
    return mix


def background(condition: RoomCondition, sources: RoomSources, length: int, sample_rate: int, rng) -> np.ndarray:
    """The background of a condition, ``length`` samples at an arbitrary level."""
    if condition.noise == "babble":
        return babble(sources.talkers, condition.talkers, length, sample_rate, rng)
    segment = next(s for s in sources.noises if s.file == condition.noise)
    return stretch_of(noise_samples(sources.noise_dir, segment, sample_rate), length, rng)


def colour(samples: np.ndarray, sample_rate: int, condition: RoomCondition) -> np.ndarray:
    """A microphone's colouring (audiomentations' filters, each with its setting fixed)."""
    from audiomentations import HighPassFilter, HighShelfFilter, LowPassFilter

    filters = []
    if condition.high_pass_hz:
        filters.append(HighPassFilter(condition.high_pass_hz, condition.high_pass_hz, 12, 12, p=1.0))
    if condition.low_pass_hz:
        filters.append(LowPassFilter(condition.low_pass_hz, condition.low_pass_hz, 12, 12, p=1.0))
    if condition.tilt_db:
        filters.append(HighShelfFilter(2000.0, 2000.0, condition.tilt_db, condition.tilt_db, 0.7, 0.7, p=1.0))
    if not filters:
        return samples
    out = samples.astype(np.float32)
    for transform in filters:
        out = transform(out, sample_rate)
    return out.astype(np.float64)


def render(
    samples: np.ndarray, sample_rate: int, condition: RoomCondition, sources: RoomSources, rng: np.random.Generator
) -> np.ndarray:
    """``samples`` (dry speech) as the microphone delivers them under ``condition``: in the room,
    with the background at the condition's SNR against the speech as it arrives, coloured, at the
    condition's level, with the microphone's hiss, clipped, and saturated at full scale. Same length
    as ``samples``."""
    from audiomentations import ClippingDistortion

    speech = samples - samples.mean()
    if condition.room is not None:
        speech = reverberate(speech, impulse_responses(sources.simulation, sample_rate)[condition.room])
    mix = speech
    if condition.noise is not None:
        noise = background(condition, sources, len(speech), sample_rate, rng)
        scale = np.sqrt(power(speech) / max(power(noise), 1e-20) / 10 ** (condition.snr_db / 10))
        mix = speech + scale * noise
    mix = colour(mix, sample_rate, condition)
    if condition.level_dbfs is not None:
        mix = mix * 10 ** ((condition.level_dbfs - rms_dbfs(mix)) / 20)
    if condition.floor_dbfs is not None:
        mix = mix + 10 ** (condition.floor_dbfs / 20) * rng.standard_normal(len(mix))
    if condition.clip_percentile:
        p = condition.clip_percentile
        mix = ClippingDistortion(int(p), int(p), p=1.0)(mix.astype(np.float32), sample_rate).astype(np.float64)
    return np.clip(mix, -1.0, 1.0)


def draw_condition(config: RoomConfig, sources: RoomSources, rng: np.random.Generator) -> RoomCondition:
    """A random room for one training copy, by ``config``'s shares and ranges."""
    room = int(rng.integers(config.simulation.rooms)) if rng.random() < config.reverb_share else None
    noise, snr, talkers = None, 0.0, 0
    kinds = [k for k in config.noise_kinds if k != "babble" or sources.talkers]
    if kinds and rng.random() < config.noise_share:
        kind = kinds[int(rng.integers(len(kinds)))]
        if kind == "babble":
            noise, talkers = "babble", int(rng.integers(config.babble_talkers[0], config.babble_talkers[1] + 1))
        else:
            files = [s.file for s in sources.noises if s.kind == kind]
            noise = files[int(rng.integers(len(files)))]
        snr = float(rng.uniform(*config.snr_db))
    coloured = rng.random() < config.colouring_share
    high_pass = float(rng.uniform(80, 400)) if coloured and rng.random() < 0.5 else 0.0
    low_pass = float(rng.uniform(3400, 7500)) if coloured and rng.random() < 0.5 else 0.0
    tilt = float(rng.uniform(-6, 6)) if coloured and rng.random() < 0.5 else 0.0
    clip = float(rng.integers(1, 11)) if rng.random() < config.clipping_share else 0.0
    level = float(rng.uniform(*config.level_dbfs)) if config.level_dbfs else None
    floor = float(rng.uniform(*config.floor_dbfs)) if config.floor_dbfs else None
    return RoomCondition(room, noise, snr, talkers, level, high_pass, low_pass, tilt, clip, floor)


def room_copy(
    samples: np.ndarray, sample_rate: int, config: RoomConfig, sources: RoomSources, rng: np.random.Generator
) -> np.ndarray:
    """One copy of ``samples`` from a random room: ``draw_condition`` then ``render``."""
    return render(samples, sample_rate, draw_condition(config, sources, rng), sources, rng)


def training_sources(config: RoomConfig, talkers: tuple[Path, ...] = ()) -> RoomSources:
    """The rooms and noise segments training may use, with ``talkers`` for babble."""
    return RoomSources(config.simulation, noise_segments("train"), noise_root(), tuple(talkers))


def babble_talkers(
    utterances, groups: list[tuple[str, ...]], per_speaker: int = 48, seed: int = 0
) -> dict[str, tuple[Path, ...]]:
    """For each speaker, up to ``per_speaker`` clips of the other speakers of the same group (a
    cross-validation fold), for babble: a fold's training copies then never hear a speaker that the
    fold holds out."""
    by_speaker: dict[str, list[Path]] = {}
    for u in utterances:
        by_speaker.setdefault(u.speaker, []).append(Path(u.path))
    rng = np.random.default_rng(seed)
    talkers = {}
    for group in groups:
        for speaker in group:
            others = sorted(p for s in group if s != speaker for p in by_speaker.get(s, ()))
            chosen = rng.permutation(len(others))[:per_speaker]
            talkers[speaker] = tuple(others[i] for i in sorted(chosen))
    return talkers
