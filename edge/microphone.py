"""Microphone input: a PyAudio stream as mono float64 blocks at the model's sample rate.

PortAudio calls back from its own thread with each block of 16-bit PCM; the block goes into a
bounded queue and the processing loop takes it from there, so a slow loop drops audio (counted)
instead of growing memory. Downmix and resampling are the same code as for files (``edge.audio``).
"""

from __future__ import annotations

import ctypes
import logging
import queue
import time
from dataclasses import dataclass

import numpy as np

from edge.audio import StreamResampler, pcm16_to_float, to_mono
from edge.errors import MicrophoneError, MissingPyAudio
from edge.settings import CaptureSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InputDevice:
    """One audio input as PortAudio lists it."""

    index: int
    name: str
    channels: int
    """Most input channels it offers."""
    default_rate: int
    """Its default sample rate in Hz."""
    host_api: str
    is_default: bool


_QUIET_HANDLERS: list = []  # the C callbacks below, kept alive for as long as the libraries may call them


def quiet_audio_libraries() -> None:
    """Keep ALSA's and JACK's probing messages (dozens of "ALSA lib ..." and "Cannot connect to
    server" lines each time PortAudio starts) out of the log: libasound and libjack print through
    handlers that can be replaced, here by ones that drop the message. The project's own log lines
    say what matters (which device opened, or why none did)."""
    if _QUIET_HANDLERS:
        return
    try:
        asound = ctypes.CDLL("libasound.so.2")
        handler = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p)(
            lambda *message: None
        )
        asound.snd_lib_error_set_handler(handler)
        _QUIET_HANDLERS.append(handler)
    except (OSError, AttributeError):
        pass  # no ALSA: nothing to quieten
    try:
        jack = ctypes.CDLL("libjack.so.0")
        drop = ctypes.CFUNCTYPE(None, ctypes.c_char_p)(lambda message: None)
        jack.jack_set_error_function(drop)
        jack.jack_set_info_function(drop)
        _QUIET_HANDLERS.append(drop)
    except (OSError, AttributeError):
        pass  # no JACK client library


def require_pyaudio():
    """The pyaudio module; raises MissingPyAudio saying which extra to install."""
    try:
        import pyaudio
    except ImportError:
        raise MissingPyAudio("microphone input needs PyAudio, which is not installed: pip install 'edge-ser[mic]'") from None
    quiet_audio_libraries()
    return pyaudio


def list_input_devices(pa=None) -> list[InputDevice]:
    """Every device with at least one input channel."""
    own = pa is None
    pa = pa or require_pyaudio().PyAudio()
    try:
        try:
            default = pa.get_default_input_device_info()["index"]
        except OSError:
            default = None
        devices = []
        for index in range(pa.get_device_count()):
            info = pa.get_device_info_by_index(index)
            if info["maxInputChannels"] > 0:
                devices.append(
                    InputDevice(
                        index,
                        info["name"],
                        int(info["maxInputChannels"]),
                        int(info["defaultSampleRate"]),
                        pa.get_host_api_info_by_index(info["hostApi"])["name"],
                        index == default,
                    )
                )
        return devices
    finally:
        if own:
            pa.terminate()


def choose_device(devices: list[InputDevice], wanted: str | int | None) -> InputDevice:
    """The device by index, exact name, or unique part of a name; None: the default input."""
    if not devices:
        raise MicrophoneError("no audio input device (is the sound server running?)")
    if wanted is None:
        default = [d for d in devices if d.is_default]
        if not default:
            raise MicrophoneError("no default audio input device; choose one with --device (see `ser devices`)")
        return default[0]
    if isinstance(wanted, int) or str(wanted).isdigit():
        matches = [d for d in devices if d.index == int(wanted)]
    else:
        matches = [d for d in devices if d.name == wanted] or [d for d in devices if str(wanted).lower() in d.name.lower()]
    if len(matches) != 1:
        found = "no input device matches" if not matches else f"{len(matches)} input devices match"
        raise MicrophoneError(f"device {wanted!r}: {found} it (see `ser devices`)")
    return matches[0]


class Backoff:
    """When to try to open a device again: at once at first; after each failure twice as long as
    after the one before, from ``first_seconds`` up to ``longest_seconds``; at once again after a
    success or ``reset``."""

    def __init__(self, first_seconds: float, longest_seconds: float):
        self.first_seconds = first_seconds
        self.longest_seconds = longest_seconds
        self.reset()

    def reset(self) -> None:
        """The next attempt is due now, and a failure waits ``first_seconds``."""
        self._due = 0.0  # monotonic time of the next attempt
        self._delay = self.first_seconds

    def wait_seconds(self) -> float:
        """Seconds until the next attempt is due (0 if it is)."""
        return max(0.0, self._due - time.monotonic())

    def failed(self) -> float:
        """An attempt failed: the next is due after the current delay, which then doubles. Returns
        the seconds until the next attempt."""
        delay = self._delay
        self._due = time.monotonic() + delay
        self._delay = min(delay * 2, self.longest_seconds)
        return delay


class Microphone:
    """An open input stream; ``read`` returns mono float64 samples at ``target_rate`` (an
    ``edge.audio.AudioInput``)."""

    def __init__(self, settings: CaptureSettings, target_rate: int):
        self.settings = settings
        self.target_rate = target_rate
        self.device: InputDevice | None = None
        self.dropped_seconds = 0.0
        """Audio dropped because the buffer was full (processing fell behind)."""
        self._pa = None
        self._stream = None
        self._queue: queue.Queue[bytes] = queue.Queue()
        self._last_audio = 0.0
        self._continue = None  # PyAudio's paContinue, set by open()

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    def open(self) -> InputDevice:
        """Open the configured device; a fresh PortAudio session each time, so a restarted sound
        server is found again. Raises MicrophoneError naming the device and the reason."""
        self.close()
        pyaudio = require_pyaudio()
        self._continue = pyaudio.paContinue  # returned from every callback: looked up once
        settings = self.settings
        try:
            self._pa = pyaudio.PyAudio()
            device = choose_device(list_input_devices(self._pa), settings.device)
            rate = settings.sample_rate or device.default_rate
            block = max(1, round(rate * settings.block_seconds))
            self._queue = queue.Queue(maxsize=max(1, round(settings.buffer_seconds / settings.block_seconds)))
            self._channels = settings.channels
            self._resampler = StreamResampler(rate, self.target_rate)
            self._last_audio = time.monotonic()
            self._stream = self._pa.open(
                format=pyaudio.paInt16,
                channels=settings.channels,
                rate=rate,
                input=True,
                input_device_index=device.index,
                frames_per_buffer=block,
                stream_callback=self._on_audio,
            )
        except MicrophoneError:
            self.close()
            raise
        except (OSError, ValueError) as error:
            self.close()
            raise MicrophoneError(f"device {settings.device or 'default'}: cannot open ({error})") from None
        self.device = device
        self.rate = rate
        log.info("microphone %r (index %d) open: %d Hz, %d channel(s)", device.name, device.index, rate, settings.channels)
        return device

    def _on_audio(self, data, frame_count, time_info, status):
        try:
            self._queue.put_nowait(data)
        except queue.Full:
            self.dropped_seconds += frame_count / self.rate
        return None, self._continue

    def read(self, timeout: float) -> np.ndarray:
        """The next block (possibly empty while the resampler fills), or an empty array after
        ``timeout`` seconds without audio. Raises MicrophoneError once the device has delivered
        nothing for ``stall_seconds`` or its stream has stopped."""
        if self._stream is None:
            raise MicrophoneError("microphone is not open")
        try:
            data = self._queue.get(timeout=timeout)
        except queue.Empty:
            silent_for = time.monotonic() - self._last_audio
            if not self._stream.is_active():
                raise MicrophoneError(f"device {self.device.name!r}: the input stream stopped") from None
            if silent_for >= self.settings.stall_seconds:
                raise MicrophoneError(f"device {self.device.name!r}: no audio for {silent_for:.1f} s") from None
            return np.empty(0)
        self._last_audio = time.monotonic()
        return self._resampler.push(to_mono(pcm16_to_float(data, self._channels)))

    def close(self) -> None:
        """Stop and release the stream and PortAudio; safe to call at any time."""
        stream, pa, self._stream, self._pa = self._stream, self._pa, None, None
        for action in (lambda: stream and stream.stop_stream(), lambda: stream and stream.close(), lambda: pa and pa.terminate()):
            try:
                action()
            except OSError:
                pass  # the sound server may already be gone
