"""Raw PCM from standard input, for any recorder: ``arecord -f S16_LE -r 16000 -c 1 | ser listen --input -``.

Read as it arrives (``select`` bounds each wait, so the loop still feeds the watchdog), converted
to mono float64 at the model's rate with the same code as files and the microphone. Nothing is
dropped: a pipe that is read slowly makes its writer wait. The end of the input ends the stream.
"""

from __future__ import annotations

import os
import select
import sys
from dataclasses import dataclass

import numpy as np

from edge.audio import StreamResampler, to_mono
from edge.settings import CaptureSettings

# Sample format: (numpy dtype, the value that stands for full scale).
PCM_DTYPES = {"s16le": ("<i2", 2.0**15), "s32le": ("<i4", 2.0**31), "f32le": ("<f4", 1.0)}
DEFAULT_RATE = 16000
READ_BYTES = 65536


class EndOfInput(Exception):
    """The input has ended: no more audio will come (not an error: the service stops cleanly)."""


@dataclass(frozen=True)
class PipeDevice:
    """What the status events name as the input."""

    name: str = "standard input"
    index: int | None = None


class PipeInput:
    """Standard input (or the file descriptor ``fd``) as mono float64 blocks at ``target_rate``: an
    ``edge.audio.AudioInput``, as ``edge.microphone.Microphone`` is."""

    def __init__(self, settings: CaptureSettings, target_rate: int, fd: int | None = None):
        self.settings = settings
        self.target_rate = target_rate
        self.rate = settings.sample_rate or DEFAULT_RATE
        self.device = PipeDevice(f"standard input ({settings.format}, {self.rate} Hz, {settings.channels} channel(s))")
        self.dropped_seconds = 0.0  # never: the writer waits instead
        self._fd = sys.stdin.fileno() if fd is None else fd
        self._dtype, self._full_scale = PCM_DTYPES[settings.format]
        self._frame_bytes = np.dtype(self._dtype).itemsize * settings.channels
        self._open = False

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> PipeDevice:
        self._resampler = StreamResampler(self.rate, self.target_rate)
        self._partial = b""  # bytes of an incomplete sample frame, completed by the next read
        self._ended = False
        self._open = True
        return self.device

    def read(self, timeout: float) -> np.ndarray:
        """The audio that has arrived (empty if none within ``timeout`` seconds); at the end, the
        resampler's tail once, then EndOfInput."""
        if self._ended:
            raise EndOfInput("end of standard input")
        ready, _, _ = select.select([self._fd], [], [], timeout)
        if not ready:
            return np.empty(0)
        data = self._partial + os.read(self._fd, READ_BYTES)
        if len(data) == len(self._partial):  # nothing more: end of input
            self._ended = True
            return self._resampler.flush()
        usable = len(data) // self._frame_bytes * self._frame_bytes
        self._partial = data[usable:]
        frames = np.frombuffer(data[:usable], dtype=self._dtype).astype(np.float64) / self._full_scale
        if self.settings.format == "f32le":  # floats may hold anything: NaN is silence, the rest full scale at most
            frames = np.clip(np.nan_to_num(frames, nan=0.0), -1.0, 1.0)
        return self._resampler.push(to_mono(frames.reshape(-1, self.settings.channels)))

    def close(self) -> None:
        self._open = False
