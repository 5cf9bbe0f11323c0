"""Which blocks of a stream are speech, and where utterances start and end: the decisions shared
by the daemon's segmenter (``edge.segmenter``, which adds the features) and ``ser classify``'s
question whether a clip holds speech at all (``SpeechCheck``).

The stream is judged in blocks of one frame step (16 ms for the shipped models). A block is loud
when its level (DC removed) is above an absolute threshold and above the room's background (a low
percentile of the last 10 s of block levels) by a margin; a loud block is speech when the speech
detector (``edge.speech_detector``) hears speech in it (``VoiceActivity``). An utterance starts at
the first speech block (plus a little pre-roll), goes on while blocks are a little less far above
the background and a little less surely speech (or far enough above it, whatever the detector
says), and ends after a hang-over without; it is kept if its speech blocks span ``min_seconds``
(``UtteranceCutter``).
"""

from __future__ import annotations

import bisect
import collections
import enum
from dataclasses import dataclass

import numpy as np

from edge import reproducible
from edge.config import FrontendConfig
from edge.errors import BundleError
from edge.frontend import shared_columns
from edge.model_input import normalise
from edge.settings import SegmenterSettings
from edge.speech_detector import speech_detector

SILENCE_DB = -120.0  # level given to digital silence, so log10(0) never appears


def block_levels(blocks: np.ndarray) -> np.ndarray:
    """Level in dB relative to full scale of each row of ``blocks`` (samples in [-1, 1]): the mean
    power around the row's own mean, so that a DC offset (a constant, or a microphone's bias;
    SAVEE's neutral clips sit at -28 dBFS of it) is no sound. Summed and logged the same way on
    every CPU, so the device cuts where x86 does."""
    width = blocks.shape[1]
    alternating = blocks - (reproducible.fixed_order_sum(blocks) / width)[:, None]
    power = reproducible.fixed_order_sum(alternating * alternating) / width
    return np.where(power > 0, reproducible.DB_PER_NEPER * reproducible.log(np.maximum(power, 1e-30)), SILENCE_DB)


class BackgroundLevel:
    """The room's level: the ``percentile``-th percentile of the block levels of the last
    ``window_seconds`` (0: the quietest block; speech always has quiet gaps, so a low percentile
    follows the noise floor, and learns a new steady noise within the window). An order statistic
    of the levels themselves: no arithmetic, the same block on every CPU."""

    def __init__(self, block_seconds: float, window_seconds: float = 5.0, percentile: float = 0.0):
        self._window = max(1, round(window_seconds / block_seconds))  # blocks
        self._share = percentile / 100
        self._recent: collections.deque[float] = collections.deque()  # levels in arrival order
        self._sorted: list[float] = []  # the same levels, sorted

    def update(self, level: float) -> None:
        self._recent.append(level)
        bisect.insort(self._sorted, level)
        if len(self._recent) > self._window:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent.popleft())]

    def after_each(self, levels: np.ndarray) -> np.ndarray:
        """``update`` with each of ``levels`` in turn: the background level after each. The quietest
        block of a window not yet full (a clip's background) is a running minimum, taken at once."""
        if len(levels) and self._share == 0 and len(self._recent) + len(levels) <= self._window:
            backgrounds = np.minimum.accumulate(np.concatenate([self._sorted[:1], levels]))[-len(levels) :]
            self._recent.extend(levels)  # the window's state, for what comes next
            self._sorted = sorted(self._recent)
            return backgrounds
        backgrounds = np.empty(len(levels))
        for index, level in enumerate(levels):
            self.update(level)
            backgrounds[index] = self.level
        return backgrounds

    @property
    def level(self) -> float:
        return self._sorted[int(self._share * (len(self._sorted) - 1))] if self._sorted else SILENCE_DB


@dataclass(frozen=True)
class Levels:
    """What the voice-activity detector heard since it was last asked, for tuning ``threshold_db``."""

    level_db: float
    """The loudest block, dBFS."""
    floor_db: float
    """The background level it tracks now (``floor_percentile`` of the last ``floor_seconds`` of blocks), dBFS."""
    threshold_db: float
    """What a block must exceed now to start an utterance: max(threshold_db, floor + noise_margin_db)."""
    speech: float
    """The share of blocks that were speech, 0..1."""
    speech_probability: float
    """The speech detector's highest probability for a block loud enough to ask about, 0..1 (0:
    none was loud enough, or there is no detector)."""


class VoiceActivity:
    """Which blocks of a stream are speech: one ``block``-sample block at a time, a block is speech
    when its level is above ``threshold_db`` and ``noise_margin_db`` above the background, and the
    speech detector (``settings.detector``) finds speech in it. The one detector of the daemon's
    segmenter and of ``ser classify``'s "is there speech" check."""

    def __init__(self, settings: SegmenterSettings, block: int, sample_rate: int):
        self.settings = settings
        self.block = block
        self.detector = speech_detector(settings.detector)
        if self.detector is not None and self.detector.block != block:
            raise BundleError(f"speech detector {self.detector.name}: blocks of {self.detector.block} samples, not {block}")
        self._background = BackgroundLevel(block / sample_rate, settings.floor_seconds, settings.floor_percentile)
        self._pending = np.empty(0)
        self._reset_levels()

    def push(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The complete blocks in ``samples`` (after those held back from before), (blocks, block),
        whether each is speech (could start an utterance), and whether each keeps an utterance
        going (``hold_margin_db`` above the floor and ``hold_threshold`` likely speech, or
        ``hold_level_db`` above it); a partial block waits for the next push."""
        blocks, levels, rise, loud, holding = self.gate(samples)
        if self.detector is not None:
            probability = self.detector.push(blocks, holding)
            loud, holding = heard_as_speech(self.settings, loud, holding, rise, probability)
            self._probability = max(self._probability, float(np.nanmax(probability, initial=0.0)))
        if len(blocks):
            self._loudest = max(self._loudest, float(levels.max()))
            self._blocks += len(blocks)
            self._speech_blocks += int(loud.sum())
        return blocks, loud, holding

    def gate(self, samples: np.ndarray) -> tuple[np.ndarray, ...]:
        """The level gate alone, on the complete blocks in ``samples`` (a partial block waits):
        the blocks, their levels (dBFS), their rise above the background (dB), whether each is loud
        enough to start an utterance and whether to keep one going (what the detector is asked about)."""
        settings = self.settings
        self._pending = np.concatenate([self._pending, samples])
        n_blocks = len(self._pending) // self.block
        blocks = self._pending[: n_blocks * self.block].reshape(n_blocks, self.block)
        self._pending = self._pending[n_blocks * self.block :]
        levels = block_levels(blocks)
        rise = levels - self._background.after_each(levels)  # dB above the background
        audible = levels > settings.threshold_db
        loud = audible & (rise > settings.noise_margin_db)
        holding = audible & (rise > min(settings.hold_margin_db, settings.noise_margin_db))
        return blocks, levels, rise, loud, holding

    def take_levels(self) -> Levels:
        """The loudest block, the floor, the threshold now, the share of speech and the detector's
        highest probability since the last call."""
        floor = self._background.level
        levels = Levels(
            self._loudest,
            floor,
            max(self.settings.threshold_db, floor + self.settings.noise_margin_db),
            self._speech_blocks / self._blocks if self._blocks else 0.0,
            self._probability,
        )
        self._reset_levels()
        return levels

    def drop_pending(self) -> None:
        """Forget a partial block and the detector's context (after a gap in the audio); the background is kept."""
        self._pending = np.empty(0)
        if self.detector is not None:
            self.detector.reset()

    def _reset_levels(self) -> None:
        self._loudest, self._blocks, self._speech_blocks, self._probability = SILENCE_DB, 0, 0, 0.0


def heard_as_speech(
    settings: SegmenterSettings, loud: np.ndarray, holding: np.ndarray, rise: np.ndarray, probability: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The gate's blocks (``VoiceActivity.gate``) that the detector's ``probability`` makes speech
    (loud and at least ``speech_threshold``) and that keep an utterance going (at least
    ``hold_threshold``, a lower bar to go on than to start, or ``hold_level_db`` above the
    background whatever the detector says). NaN, a block not asked about, is never speech."""
    voiced, held = probability >= settings.speech_threshold, probability >= settings.hold_threshold
    return loud & voiced, holding & (held | (rise > settings.hold_level_db))


class Step(enum.Enum):
    """What one block is to the utterances (``UtteranceCutter.step``)."""

    OUTSIDE = "outside"
    """Before any utterance: part of the next one's pre-roll, if one starts soon."""
    START = "start"
    """Starts an utterance, after the pre-roll kept."""
    INSIDE = "inside"
    """Goes on with the open utterance."""
    END = "end"
    """The open utterance's last block (the hang-over is over): the utterance is done."""
    PART = "part"
    """The open utterance's last block for now (``max_seconds``): this part is done, the next block starts the next."""


@dataclass(frozen=True)
class Span:
    """Where an utterance, or a part of a long one, lies in the stream, in samples from its start."""

    start: int
    """Its first sample, pre-roll included."""
    end: int
    """After its last sample, hang-over included."""
    speech_start: int
    """Its first speech block's first sample."""
    speech_end: int
    """After its last block that held it."""
    part: int
    """1, or the number of this part of a long utterance."""
    kept: bool
    """Whether it counts: its speech blocks span ``min_seconds``, and it has ``min_samples``."""


class UtteranceCutter:
    """Where utterances start and end, from each block's decisions (``VoiceActivity.push``): a
    speech block starts one (with up to ``preroll_seconds`` of the blocks before), blocks that
    hold it keep it going, ``hangover_seconds`` of blocks that do not end it, and ``max_seconds``
    cuts it in parts. Only the boundaries: the samples are the caller's."""

    def __init__(self, settings: SegmenterSettings, block: int, rate: int, min_samples: int = 0):
        self.block = block
        block_seconds = block / rate
        self.preroll_blocks = round(settings.preroll_seconds / block_seconds)
        self._hangover_blocks = max(1, round(settings.hangover_seconds / block_seconds))
        self._max_samples = round(settings.max_seconds * rate)
        self._min_speech = round(settings.min_seconds * rate)
        self._min_samples = min_samples
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far: any open utterance is dropped."""
        self._position = 0  # the stream's sample at the start of the next block
        self._preroll = 0  # blocks kept before the next utterance
        self.in_utterance = False

    def step(self, speech: bool, holding: bool) -> tuple[Step, Span | None]:
        """The next block's part in the utterances, and the span of the utterance (or part) it ends."""
        block, position = self.block, self._position
        self._position += block
        if not self.in_utterance:
            if not speech:
                self._preroll = min(self._preroll + 1, self.preroll_blocks)
                return Step.OUTSIDE, None
            self._open(position - self._preroll * block, part=1, speech_at=position)
            self._preroll = 0
            return Step.START, None
        self._silent_blocks = 0 if holding else self._silent_blocks + 1
        if holding:
            self._held_to = position + block
        if speech:
            self._speech_to = position + block
        if self._silent_blocks >= self._hangover_blocks:
            self.in_utterance = False
            return Step.END, self._span()
        if position + block - self._start >= self._max_samples:
            part = self._span()
            self._open(position + block, part=part.part + 1, speech_at=None)
            return Step.PART, part
        return Step.INSIDE, None

    @property
    def keeps_open_utterance(self) -> bool:
        """Whether the open utterance counts however it goes on: its speech blocks already span
        ``min_seconds`` and it has ``min_samples``, and both only grow until it ends."""
        return (
            self.in_utterance
            and self._speech_to - self._speech_from >= self._min_speech
            and self._position - self._start >= self._min_samples
        )

    def flush(self) -> Span | None:
        """End of stream: the span of the open utterance, if any, which ends here."""
        span = self._span() if self.in_utterance else None
        self.reset()
        return span

    def _open(self, start: int, part: int, speech_at: int | None) -> None:
        """An utterance (part) from sample ``start``, its first speech block at ``speech_at`` (None: none yet)."""
        self.in_utterance, self._start, self._part, self._silent_blocks = True, start, part, 0
        self._speech_from = start if speech_at is None else speech_at
        self._held_to = self._speech_to = start if speech_at is None else speech_at + self.block

    def _span(self) -> Span:
        end = self._position
        kept = self._speech_to - self._speech_from >= self._min_speech and end - self._start >= self._min_samples
        return Span(self._start, end, self._speech_from, self._held_to, self._part, kept)


JUDGED_AT_ONCE = 16  # blocks (0.25 s) a speech check asks the detector about at a time


class SpeechCheck:
    """Whether a clip holds speech: push its samples, then ``found`` says whether the utterance rules
    cut a kept utterance from it (``SegmenterSettings.for_a_clip`` settings).

    Given the clip's ``features`` config (the emotion model's), whose columns hold the speech
    detector's features bit for bit (``edge.frontend.shared_columns``, as for the shipped bundles),
    the detector reads its frames from ``add_frames`` instead of computing them: a frontend less per
    clip, the same decisions. A block is then decided once the frames of its window are in."""

    def __init__(self, settings: SegmenterSettings, block: int, rate: int, features: FrontendConfig | None = None):
        self._voice = VoiceActivity(settings, block, rate)
        self._cutter = UtteranceCutter(settings, block, rate)
        self._found = False
        detector = self._voice.detector
        self._columns = None
        if detector is not None and features is not None:
            self._columns = shared_columns(detector.bundle.manifest.frontend, features)
        # With shared columns: the gate's results of the blocks not decided yet, and the detector's
        # normalised frames from frame number _first_frame on.
        self._waiting: list[np.ndarray] = []  # per push: rows of (rise, loud, holding)
        self._next_block = 0  # the clip's number of the first block waiting
        self._frames = np.empty((0, len(self._columns or ())))
        self._first_frame = 0

    def push(self, samples: np.ndarray) -> None:
        if self._found:
            return  # an utterance is enough: the rest of the clip costs nothing more
        if self._columns is None:
            _, speech, holding = self._voice.push(samples)
            self._step(speech, holding)
        else:
            _, _, rise, loud, holding = self._voice.gate(samples)
            self._waiting.append(np.stack([rise, loud, holding], axis=1))
            self._decide_ready()

    def add_frames(self, features: np.ndarray) -> None:
        """The clip's next frames of features (of the ``features`` config), in order, all of them
        by the time ``found`` is asked; ignored where the detector computes its own."""
        if self._found or self._columns is None or not len(features):
            return
        normalisation = self._voice.detector.bundle.manifest.normalisation
        self._frames = np.concatenate([self._frames, normalise(features[:, self._columns], normalisation)])
        self._decide_ready()

    def found(self) -> bool:
        """Whether the clip pushed so far (to its end) holds a kept utterance."""
        if not self._found:
            span = self._cutter.flush()
            self._found = span is not None and span.kept
        return self._found

    def _step(self, speech: np.ndarray, holding: np.ndarray) -> None:
        for block_speech, block_holding in zip(speech, holding):
            _, span = self._cutter.step(bool(block_speech), bool(block_holding))
            # Known as soon as an utterance has enough speech, not only once it ends: the detector
            # then stops for the rest of the clip.
            self._found = self._found or (span is not None and span.kept) or self._cutter.keeps_open_utterance
            if self._found:
                return

    def _decide_ready(self) -> None:
        """Decide the waiting blocks whose frame is in: block g completes frame g + 1 - blocks per
        frame and is judged, if asked about, by the window ending there (a block before the first
        whole window is not: NaN, as ``SpeechDetector.push`` gives at the start of a stream)."""
        detector = self._voice.detector
        waiting = np.concatenate(self._waiting) if self._waiting else np.empty((0, 3))
        blocks = self._next_block + np.arange(len(waiting))
        completed = blocks + 1 - detector.blocks_per_frame
        ready = int(np.count_nonzero(completed < self._first_frame + len(self._frames)))  # in order: a prefix
        blocks, rise, loud, holding = blocks[:ready], waiting[:ready, 0], waiting[:ready, 1] > 0, waiting[:ready, 2] > 0
        for start in range(0, ready, JUDGED_AT_ONCE):  # a few at a time: most clips are found early
            part = slice(start, start + JUDGED_AT_ONCE)
            probability = detector.judge_blocks(self._frames, self._first_frame, blocks[part], holding[part])
            self._step(*heard_as_speech(self._voice.settings, loud[part], holding[part], rise[part], probability))
            if self._found:
                return
        self._waiting, self._next_block = [waiting[ready:]], self._next_block + ready
        keep_from = max(self._next_block + 1 - detector.blocks_per_frame - detector.window + 1, self._first_frame)
        self._frames, self._first_frame = self._frames[keep_from - self._first_frame :], keep_from
