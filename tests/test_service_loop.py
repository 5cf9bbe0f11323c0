"""The listening service's loop in process: standard input is a real pipe the test writes PCM
into, the events land in a list. What a user sees of the loop (the event sequence, the last
event at the end of the input, a pause) without a microphone or a subprocess."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from support.helpers import read_speech

from edge.daemon import EmotionService
from edge.microphone import InputDevice, MicrophoneError
from edge.pipe import EndOfInput, PipeInput
from edge.settings import CaptureSettings, DaemonSettings

RATE = 16000


class CollectingSink:
    """The events the service publishes, in order; ``wait_for`` blocks until one matches."""

    def __init__(self):
        self.events: list[tuple[str, dict]] = []
        self._changed = threading.Condition()

    def publish(self, topic: str, payload: dict) -> None:
        with self._changed:
            self.events.append((topic, payload))
            self._changed.notify_all()

    def wait_for(self, match, timeout: float = 60.0) -> None:
        with self._changed:
            assert self._changed.wait_for(lambda: any(match(p) for _, p in self.events), timeout), self.events

    def emotions(self) -> list[dict]:
        return [p for _, p in self.events if p["type"] == "emotion"]


def pcm(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1 - 2**-15) * 32768).astype("<i2").tobytes()


@pytest.fixture
def pipe_service():
    """A service reading s16le from a pipe: (service, sink, write end of the pipe)."""
    read_end, write_end = os.pipe()
    sink = CollectingSink()
    settings = DaemonSettings(device_id="loop-test", capture=CaptureSettings(input="-"))
    service = EmotionService(settings, sink, open_input=lambda capture, rate: PipeInput(capture, rate, fd=read_end))
    yield service, sink, write_end
    os.close(read_end)


def run_feeding(service: EmotionService, feed) -> None:
    """Run the service until the input ends; ``feed`` writes to the pipe from another thread."""
    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    service.run()
    writer.join(timeout=10)


def test_a_reload_keeps_the_event_sequence_growing(pipe_service, speech_files):
    service, sink, write_end = pipe_service
    gap = np.zeros(2 * RATE)

    def feed():
        os.write(write_end, pcm(np.concatenate([gap, read_speech(speech_files[0]), gap])))
        sink.wait_for(lambda p: p["type"] == "emotion")
        service.request_reload()
        sink.wait_for(lambda p: p.get("status") == "reloaded")
        os.write(write_end, pcm(np.concatenate([read_speech(speech_files[1]), gap])))
        os.close(write_end)

    run_feeding(service, feed)
    sequences = [p["sequence"] for _, p in sink.events]
    assert sequences == list(range(1, len(sequences) + 1)), sink.events
    kinds = [p.get("status", p["type"]) for _, p in sink.events]
    assert kinds.index("emotion") < kinds.index("reloaded") < len(kinds) - 1 - kinds[::-1].index("emotion")
    assert len(sink.emotions()) == 2 and kinds[-1] == "stopped"


def test_the_end_of_the_input_gives_the_last_utterance_and_stops(pipe_service, speech_files):
    service, sink, write_end = pipe_service

    def feed():
        os.write(write_end, pcm(np.concatenate([np.zeros(RATE), read_speech(speech_files[2])])))  # no pause after it
        os.close(write_end)

    run_feeding(service, feed)
    assert len(sink.emotions()) == 1
    assert [p.get("status") for _, p in sink.events][-1] == "stopped"


def test_audio_heard_while_paused_gives_no_event(pipe_service, speech_files):
    service, sink, write_end = pipe_service
    gap = np.zeros(2 * RATE)
    service.request_pause(True)

    def feed():
        sink.wait_for(lambda p: p.get("status") == "paused")
        os.write(write_end, pcm(np.concatenate([gap, read_speech(speech_files[3]), gap])))
        os.close(write_end)

    run_feeding(service, feed)
    assert sink.emotions() == []


def piped_run(settings: DaemonSettings, before_audio, audio: np.ndarray) -> CollectingSink:
    """One run of a service on a pipe: ``before_audio(service, sink)`` from the feeding thread,
    then ``audio`` and the end of the input. The events it published."""
    read_end, write_end = os.pipe()
    sink = CollectingSink()
    service = EmotionService(settings, sink, open_input=lambda capture, rate: PipeInput(capture, rate, fd=read_end))

    def feed():
        before_audio(service, sink)
        os.write(write_end, pcm(audio))
        os.close(write_end)

    run_feeding(service, feed)
    os.close(read_end)
    return sink


def test_a_pause_is_kept_in_the_state_directory_for_the_next_run(tmp_path, speech_files):
    settings = DaemonSettings(device_id="loop-test", capture=CaptureSettings(input="-"), state_directory=str(tmp_path))
    gap = np.zeros(2 * RATE)
    utterance = np.concatenate([gap, read_speech(speech_files[3]), gap])

    def pause(service, sink):
        service.request_pause(True)
        sink.wait_for(lambda p: p.get("status") == "paused")

    assert piped_run(settings, pause, utterance).emotions() == []
    assert (tmp_path / "paused").exists()

    # The next run starts paused, says why, and hears nothing.
    sink = piped_run(settings, lambda service, sink: None, utterance)
    statuses = [p for _, p in sink.events if p["type"] == "status"]
    assert [p["status"] for p in statuses[:3]] == ["started", "model_loaded", "paused"]
    assert statuses[2]["detail"].startswith("kept from before the restart") and sink.emotions() == []

    def resume(service, sink):
        service.request_pause(False)
        sink.wait_for(lambda p: p.get("status") == "resumed")

    assert len(piped_run(settings, resume, utterance).emotions()) == 1
    assert not (tmp_path / "paused").exists()
    statuses = [p["status"] for _, p in piped_run(settings, lambda service, sink: None, gap).events]
    assert "paused" not in statuses and statuses[-1] == "stopped"  # resumed is kept too: the next run listens


class FlakyMicrophone:
    """A microphone that is missing at first, then delivers ``first`` in 0.1 s reads, disappears
    (its stream stops), comes back and delivers ``second``, then ends the input."""

    def __init__(self, capture, target_rate, first: np.ndarray, second: np.ndarray):
        self.target_rate, self.rate, self.dropped_seconds = target_rate, target_rate, 0.0
        self.device, self.is_open, self.opened = None, False, 0
        self._parts, self._pending = [first, second], []

    def open(self):
        self.opened += 1
        if self.opened == 1:
            raise MicrophoneError("device 'flaky': cannot open (no such device)")
        read = RATE // 10
        part = self._parts.pop(0)
        self._pending = [part[i : i + read] for i in range(0, len(part), read)]
        self.device, self.is_open = InputDevice(3, "flaky", 1, RATE, "ALSA", True), True
        return self.device

    def read(self, timeout: float) -> np.ndarray:
        if self._pending:
            return self._pending.pop(0)
        if self._parts:
            raise MicrophoneError("device 'flaky': the input stream stopped")
        raise EndOfInput("the test is over")

    def close(self) -> None:
        self.is_open = False


def test_a_microphone_that_is_missing_then_disappears_and_comes_back_is_said_and_heard(speech_files):
    gap = np.zeros(2 * RATE)
    first, second = (np.concatenate([gap, read_speech(path), gap]) for path in speech_files[4:6])
    sink = CollectingSink()
    settings = DaemonSettings(device_id="loop-test", capture=CaptureSettings(retry_min_seconds=0.01, retry_max_seconds=0.02))
    microphone = None

    def open_input(capture, rate):
        nonlocal microphone
        microphone = FlakyMicrophone(capture, rate, first, second)
        return microphone

    EmotionService(settings, sink, open_input=open_input).run()
    kinds = [p.get("status", p["type"]) for _, p in sink.events]
    assert kinds == [
        "started", "model_loaded", "microphone_lost", "microphone_back", "emotion",
        "microphone_lost", "microphone_back", "emotion", "stopped",
    ]  # fmt: skip
    assert microphone.opened == 3
