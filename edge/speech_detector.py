"""Is someone speaking? A small int8 model of ours, block by block, over the frontend's features
of the last third of a second (``trainer.speech_detector`` trains it; ``models/speech-detector``
ships it).

It is a bundle like the emotion models, loaded and verified the same way, and it always runs its
int8 model: its input is the bit-exact frontend's, quantized, and the model is computed in
integers here (``edge.int8_dense``: TFLite's own int8 kernels round differently on arm64), so the
same blocks are speech on x86-64 and on the Pi. The segmenter asks it only about the blocks its
level gate lets through (louder than the room's floor by a margin); its frontend runs only then,
restarted on the blocks kept from before, so that every question has its context.
"""

from __future__ import annotations

import functools

import numpy as np

from edge import reproducible
from edge.bundle import ModelBundle, load_bundle
from edge.errors import BundleError
from edge.frontend import StreamingFrontend
from edge.int8_dense import Int8Dense
from edge.model_input import normalise


def speech_detector(name_or_path: str) -> SpeechDetector | None:
    """A detector for a new stream, from the bundle ``name_or_path`` (a shipped name or a folder);
    None for "none" (the level alone decides). Raises BundleError as ``load_bundle`` does."""
    return None if name_or_path == "none" else SpeechDetector(*detector_model(name_or_path))


@functools.lru_cache(maxsize=4)
def detector_model(name_or_path: str) -> tuple[ModelBundle, Int8Dense]:
    """The detector bundle, verified, and its int8 network, read once per process: the network keeps
    no state between windows, so every stream's detector (each file of ``ser classify``) shares it."""
    bundle = load_bundle(name_or_path, variant="int8")
    if not bundle.manifest.is_speech_detector:
        raise BundleError(f"{bundle.path}: not a speech detector (its labels are {', '.join(bundle.manifest.labels)})")
    return bundle, Int8Dense(bundle.interpreter)


class SpeechDetector:
    """Feed a stream's blocks in order with ``push``; get each block's speech probability."""

    def __init__(self, bundle: ModelBundle, network: Int8Dense):
        manifest = bundle.manifest
        frontend = manifest.frontend
        if frontend.frame_length % frontend.frame_step or frontend.delta_order:
            raise BundleError(f"{bundle.path}: a speech detector needs frames of whole blocks and no deltas")
        self.bundle = bundle
        self.block = frontend.frame_step
        """Samples per block: the frontend's frame step."""
        self.window = manifest.windowing.window_frames
        """Frames a block is judged by: the window ending with the frame the block completes."""
        self.blocks_per_frame = frontend.frame_length // frontend.frame_step
        """Blocks a frame spans: block g completes frame g + 1 - blocks_per_frame."""
        self._kept_blocks = self.window + self.blocks_per_frame  # a window's frames and the dropped one
        self._frontend = StreamingFrontend(frontend)
        self._network = network
        self.reset()

    @property
    def name(self) -> str:
        return self.bundle.manifest.name

    def reset(self) -> None:
        """Forget the stream (after a gap in the audio)."""
        self._blocks = 0  # blocks pushed since the reset
        self._history = np.empty(0)  # the samples of the last blocks, enough to rebuild a window's frames
        self._warm = False  # whether the frontend has had every block since _first_frame's
        self._recent = np.empty((0, self.bundle.manifest.frontend.n_features))  # the last normalised frames
        self._next_frame = 0  # the stream's frame number of the frame after _recent's last

    def push(self, blocks: np.ndarray, asked: np.ndarray) -> np.ndarray:
        """The probability that each of ``blocks`` (the stream's next complete blocks, (blocks,
        block)) is speech, for those ``asked``; NaN for the others and for those before the
        stream has a whole window of frames. A block is judged by the window of frames ending
        with the frame it completes.

        The frontend runs only while blocks are asked about (in a quiet room, never): a push with
        none lets it go cold, and the next that has one starts it again on the blocks kept from
        before, enough for a whole window. Its frames are the same bits either way: each frame
        is computed from its own samples, except the first after a start, whose pre-emphasis
        lacks the sample before it, and which is dropped."""
        samples = blocks.reshape(-1)
        history = self._history
        self._history = np.concatenate([history, samples])[-self._kept_blocks * self.block :]
        blocks_before, self._blocks = self._blocks, self._blocks + len(blocks)
        probabilities = np.full(len(blocks), np.nan)
        if not asked.any():
            self._warm = False
            return probabilities
        normalisation = self.bundle.manifest.normalisation
        if self._warm:
            self._add_frames(normalise(self._frontend.push(samples), normalisation))
        else:
            self._frontend.reset()
            started = blocks_before - len(history) // self.block  # the stream's block (and frame) number of its first sample
            frames = normalise(self._frontend.push(np.concatenate([history, samples])), normalisation)
            self._recent, self._next_frame = frames[:0], started
            self._add_frames(frames if started == 0 else frames[1:], dropped=started > 0)
            self._warm = True
        # Frame t spans blocks t .. t + blocks_per_frame - 1: block g completes frame g + 1 - blocks_per_frame.
        completed = blocks_before + np.arange(len(blocks)) + 1 - self.blocks_per_frame
        first_recent = self._next_frame - len(self._recent)
        judged = np.flatnonzero(asked & (completed - self.window + 1 >= first_recent))
        if len(judged):
            probabilities[judged] = self.judge(self._recent, completed[judged] - first_recent)
        self._recent = self._recent[max(len(self._recent) - (self.window - 1), 0) :]
        return probabilities

    def judge_blocks(self, frames: np.ndarray, first_frame: int, blocks: np.ndarray, asked: np.ndarray) -> np.ndarray:
        """What ``push`` gives the stream's blocks numbered ``blocks`` (NaN where not asked, or
        before the stream's first whole window), from its normalised frames ``frames``, which
        start at frame number ``first_frame`` and hold every window needed."""
        completed = blocks + 1 - self.blocks_per_frame
        probability = np.full(len(blocks), np.nan)
        judged = np.flatnonzero(asked & (completed - self.window + 1 >= 0))
        if len(judged):
            probability[judged] = self.judge(frames, completed[judged] - first_frame)
        return probability

    def judge(self, frames: np.ndarray, ends: np.ndarray) -> np.ndarray:
        """The speech probability of the windows of normalised ``frames`` that end at the indices
        ``ends`` (each at least ``window - 1``)."""
        return self.window_probabilities(np.stack([frames[end - self.window + 1 : end + 1] for end in ends]))

    def window_probabilities(self, windows: np.ndarray) -> np.ndarray:
        """The speech probability of normalised windows, (windows, frames, features) → (windows,):
        the int8 model computed in integers (``edge.int8_dense``), the softmax in edge.reproducible."""
        manifest = self.bundle.manifest
        outputs = self._network(manifest.input_quantization.quantize(windows))
        return reproducible.softmax(manifest.output_quantization.dequantize(outputs))[:, 1]

    def _add_frames(self, frames: np.ndarray, dropped: bool = False) -> None:
        self._next_frame += int(dropped)
        self._recent = np.concatenate([self._recent, frames])
        self._next_frame += len(frames)
