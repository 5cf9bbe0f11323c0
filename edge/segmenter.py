"""Stream → utterances with their features, computed while the person speaks.

``edge.voice_activity`` decides which blocks are speech and where utterances start and end; the
segmenter keeps the samples: an utterance's samples go through the streaming frontend as they
arrive, restarted at the utterance's first sample, so the features are bit-for-bit
``compute_features`` of exactly the utterance's samples and only the flush and the model remain
once it ends.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from edge.config import FrontendConfig
from edge.frontend import StreamingFrontend, frames_span
from edge.settings import SegmenterSettings
from edge.voice_activity import Span, Step, UtteranceCutter, VoiceActivity

FEATURE_BATCH_FRAMES = 128  # frames computed per frontend step while speech goes on (~2 s of audio):
# few enough numpy calls that the daemon's frontend costs about what the offline one does (16-frame
# steps cost twice as much), few enough frames that the utterance's end, which computes the rest,
# is not delayed


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


class Segmenter:
    """Feed mono float samples at the frontend's rate with ``push``; get finished utterances."""

    def __init__(self, settings: SegmenterSettings, frontend: FrontendConfig, min_frames: int = 1):
        self.settings = settings
        self.rate = frontend.sample_rate
        self.block = frontend.frame_step
        # Never emit what the model cannot classify: at least min_frames frames.
        model_min = frames_span(min_frames, frontend.frame_length, frontend.frame_step)
        self.voice = VoiceActivity(settings, self.block, self.rate)
        self._cutter = UtteranceCutter(settings, self.block, self.rate, min_samples=model_min)
        self._frontend = StreamingFrontend(frontend, FEATURE_BATCH_FRAMES)
        self.reset()

    def reset(self) -> None:
        """Forget the stream so far (after a gap in the audio): any open utterance is dropped."""
        self.voice.drop_pending()
        self._cutter.reset()
        self._preroll: collections.deque[np.ndarray] = collections.deque(maxlen=self._cutter.preroll_blocks)
        self._features: list[np.ndarray] = []
        self._frontend.reset()

    def push(self, samples: np.ndarray) -> list[Utterance]:
        """Judge the new samples; returns the utterances (or parts) that ended in them."""
        finished = []
        for block, speech, holding in zip(*self.voice.push(samples)):
            step, span = self._cutter.step(bool(speech), bool(holding))
            if step is Step.OUTSIDE:
                self._preroll.append(block)
                continue
            if step is Step.START:
                self._frontend.reset()
                self._features = [self._frontend.push(b) for b in [*self._preroll, block]]
                self._preroll.clear()
                continue
            self._features.append(self._frontend.push(block))
            if span is not None:  # END or PART: the next part, if any, starts afresh
                finished.extend(self._finish(span))
                self._frontend.reset()
                self._features = []
        return finished

    def flush(self) -> list[Utterance]:
        """End of stream: the open utterance, if any, ends here."""
        span = self._cutter.flush()
        finished = self._finish(span) if span is not None else []
        self.reset()
        return finished

    def _finish(self, span: Span) -> list[Utterance]:
        """The utterance of ``span`` with its features, if it is kept."""
        self._features.append(self._frontend.flush())
        if not span.kept:
            return []
        return [
            Utterance(
                start=span.start / self.rate,
                end=span.end / self.rate,
                features=np.concatenate(self._features),
                part=span.part,
                speech_start=span.speech_start / self.rate,
                speech_end=span.speech_end / self.rate,
            )
        ]
