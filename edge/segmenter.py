"""Stream → utterances: voice activity detection, and features computed while the person speaks.

The stream is judged in blocks of one frame step (16 ms for the shipped models). A block is loud
when its level (DC removed) is above an absolute threshold and above the room's background (a low
percentile of the last 10 s of block levels) by a margin; a loud block is speech when the speech
detector (``edge.speech_detector``) hears speech in it (``VoiceActivity``). An utterance starts at
the first speech block (plus a little pre-roll), goes on while blocks are a little less far above
the background and a little less surely speech (or far enough above it, whatever the detector
says), and ends after a hang-over without; it is kept if its speech blocks span ``min_seconds``.
Its samples go through the streaming frontend as they arrive, restarted at the utterance's first
sample, so the features are bit-for-bit ``compute_features`` of exactly the utterance's samples
and only the flush and the model remain once it ends.
"""

from __future__ import annotations

import bisect
import collections
from dataclasses import dataclass

import numpy as np

from edge import reproducible
from edge.config import FrontendConfig
from edge.errors import BundleError
from edge.frontend import MOST_FRAMES, StreamingFrontend
from edge.settings import SegmenterSettings
from edge.speech_detector import speech_detector

SILENCE_DB = -120.0  # level given to digital silence, so log10(0) never appears
FEATURE_BATCH_FRAMES = MOST_FRAMES  # frames computed per frontend step while speech goes on: the
# offline path's batch (~2 s of audio), so the daemon's frontend costs about what the offline one
# does (16-frame steps cost twice as much in numpy calls); the utterance's end computes the rest


@dataclass(frozen=True)
class Utterance:
    """A stretch of speech cut from the stream, with its frontend features."""

    start: float
    """Seconds from the start of the stream to its first sample (pre-roll included)."""
    end: float
    """Seconds from the start of the stream to the sample after its last (hang-over included)."""
    features: np.ndarray
    """``compute_features`` of its samples: (frames, n_features)."""
    part: int
    """1, or the number of this part when a long utterance is emitted in parts."""
    speech_start: float
    """Seconds from the start of the stream to its first speech block (``start`` without the pre-roll)."""
    speech_end: float
    """Seconds from the start of the stream to the end of its last speech block (``end`` without the hang-over)."""

    @property
    def duration(self) -> float:
        return self.end - self.start


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
        settings = self.settings
        self._pending = np.concatenate([self._pending, samples])
        n_blocks = len(self._pending) // self.block
        blocks = self._pending[: n_blocks * self.block].reshape(n_blocks, self.block)
        self._pending = self._pending[n_blocks * self.block :]
        levels = block_levels(blocks)
        rise = np.empty(n_blocks)  # dB above the background
        for index, level in enumerate(levels):
            self._background.update(level)
            rise[index] = level - self._background.level
        audible = levels > settings.threshold_db
        loud = audible & (rise > settings.noise_margin_db)
        holding = audible & (rise > min(settings.hold_margin_db, settings.noise_margin_db))
        if self.detector is not None:
            probability = self.detector.push(blocks, holding)
            # NaN (not asked) is never speech. A lower bar to go on than to start (hysteresis).
            voiced, held = probability >= settings.speech_threshold, probability >= settings.hold_threshold
            loud, holding = loud & voiced, holding & (held | (rise > settings.hold_level_db))
            self._probability = max(self._probability, float(np.nanmax(probability, initial=0.0)))
        if n_blocks:
            self._loudest = max(self._loudest, float(levels.max()))
            self._blocks += n_blocks
            self._speech_blocks += int(loud.sum())
        return blocks, loud, holding

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


class Segmenter:
    """Feed mono float samples at the frontend's rate with ``push``; get finished utterances.
    ``with_features=False``: the utterances' boundaries only (their features empty), for asking
    whether a clip holds speech at all."""

    def __init__(self, settings: SegmenterSettings, frontend: FrontendConfig, min_frames: int = 1, with_features: bool = True):
        self.settings = settings
        self.rate = frontend.sample_rate
        self.block = frontend.frame_step
        block_seconds = self.block / self.rate
        self._preroll_blocks = round(settings.preroll_seconds / block_seconds)
        self._hangover_blocks = max(1, round(settings.hangover_seconds / block_seconds))
        self._max_samples = round(settings.max_seconds * self.rate)
        # Never emit what the model cannot classify: at least min_frames frames.
        self._model_min = (min_frames - 1) * frontend.frame_step + frontend.frame_length
        self._min_speech = round(settings.min_seconds * self.rate)
        self._frontend = StreamingFrontend(frontend, FEATURE_BATCH_FRAMES) if with_features else None
        self._no_features = np.empty((0, frontend.n_features))
        self.voice = VoiceActivity(settings, self.block, self.rate)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far (after a gap in the audio): any open utterance is dropped."""
        self.voice.drop_pending()
        self._position = 0  # samples judged so far
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=self._preroll_blocks)
        self._in_speech = False
        if self._frontend is not None:
            self._frontend.reset()

    def push(self, samples: np.ndarray) -> list[Utterance]:
        """Judge the new samples; returns the utterances (or parts) that ended in them."""
        finished = []
        for block, speech, holding in zip(*self.voice.push(samples)):
            finished.extend(self._step(block, bool(speech), bool(holding)))
            self._position += self.block
        return finished

    def flush(self) -> list[Utterance]:
        """End of stream: the open utterance, if any, ends here."""
        finished = [self._finish()] if self._in_speech else []
        self.reset()
        return [u for u in finished if u is not None]

    def _step(self, block: np.ndarray, speech: bool, holding: bool) -> list[Utterance]:
        """One block: speech starts an utterance; once open, a block that holds it (speech, or
        nearly) keeps it going, and ``hangover_seconds`` of blocks that do not end it."""
        if not self._in_speech:
            if not speech:
                self._preroll.append(block)
                return []
            self._begin(self._position - len(self._preroll) * self.block, part=1, samples=[*self._preroll, block])
            self._speech_from = self._position
            self._speech_to = self._last_speech_to = self._position + self.block
            self._preroll.clear()
            return []
        self._feed(block)
        self._silent_blocks = 0 if holding else self._silent_blocks + 1
        if holding:
            self._speech_to = self._position + self.block
        if speech:
            self._last_speech_to = self._position + self.block
        if self._silent_blocks >= self._hangover_blocks:
            self._in_speech = False
            return [u for u in [self._finish()] if u is not None]
        if self._samples >= self._max_samples:
            part = self._finish()
            self._begin(self._position + self.block, part=self._part + 1, samples=[])
            self._speech_from = self._speech_to = self._last_speech_to = self._position + self.block
            return [u for u in [part] if u is not None]
        return []

    def _begin(self, start: int, part: int, samples: list[np.ndarray]) -> None:
        self._in_speech, self._start, self._part = True, start, part
        self._samples, self._silent_blocks, self._features = 0, 0, []
        if self._frontend is not None:
            self._frontend.reset()
        for block in samples:
            self._feed(block)

    def _feed(self, block: np.ndarray) -> None:
        if self._frontend is not None:
            self._features.append(self._frontend.push(block))
        self._samples += len(block)

    def _finish(self) -> Utterance | None:
        """Close the current utterance; None when its speech blocks span too little or it has too few frames."""
        if self._frontend is not None:
            self._features.append(self._frontend.flush())
        if self._last_speech_to - self._speech_from < self._min_speech or self._samples < self._model_min:
            return None
        end = self._start + self._samples
        return Utterance(
            start=self._start / self.rate,
            end=end / self.rate,
            features=np.concatenate(self._features) if self._features else self._no_features,
            part=self._part,
            speech_start=self._speech_from / self.rate,
            speech_end=self._speech_to / self.rate,
        )
