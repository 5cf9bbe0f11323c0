"""The listening service: microphone → segmenter → classifier → events, as one loop.

The loop runs in the main thread: it takes audio from the microphone's bounded buffer, cuts
utterances, classifies each and hands events to the sinks (stdout, MQTT). It is also where the
systemd watchdog is fed, so a stuck loop stops the keep-alives and gets the service restarted.
Signals only set flags that the loop reads between blocks (at least every quarter second).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from edge.audio import AudioInput
from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.errors import SerError
from edge.events import MICROPHONE_AFTER, UNCERTAIN, EmotionEvent, EventFilter, EventStamper, StatusEvent
from edge.microphone import Backoff, Microphone, MicrophoneError, require_pyaudio
from edge.pause_file import PauseFile
from edge.pipe import EndOfInput, PipeInput
from edge.settings import MICROPHONE, STANDARD_INPUT, CaptureSettings, DaemonSettings, SettingsError
from edge.speech_detector import detector_model
from edge.stream import EmotionStream
from edge.systemd import ServiceNotifier

if TYPE_CHECKING:
    from edge.mqtt_device import MqttDevice

log = logging.getLogger(__name__)
READ_TIMEOUT = 0.25  # seconds; bounds how late a stop, reload or watchdog keep-alive can be


class Sink(Protocol):
    def publish(self, topic: str, payload: dict) -> None: ...


def audio_input(capture: CaptureSettings, target_rate: int) -> AudioInput:
    """The microphone, or standard input if the settings say ``input = "-"``. Raises MissingPyAudio
    for a microphone without the `mic` extra: a missing extra is not fixed by retrying."""
    if capture.input == STANDARD_INPUT:
        return PipeInput(capture, target_rate)
    require_pyaudio()
    return Microphone(capture, target_rate)


class EmotionService:
    """Runs until ``request_stop``; ``request_reload`` re-reads settings and model between blocks."""

    def __init__(
        self,
        settings: DaemonSettings,
        output: Sink,
        notifier: ServiceNotifier | None = None,
        reload_settings: Callable[[], DaemonSettings] | None = None,
        open_input: Callable[[CaptureSettings, int], AudioInput] = audio_input,
    ):
        self.settings = settings
        self.output = output
        self.notifier = notifier or ServiceNotifier({})
        self._reload_settings = reload_settings or (lambda: self.settings)
        self._open_input = open_input  # the microphone or standard input, from the capture settings
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.classifier: Classifier | None = None  # loaded by run(), replaced by a reload
        self.stream: EmotionStream | None = None  # audio in, events out, for that classifier
        self._mqtt: MqttDevice | None = None  # when settings.mqtt.host is set
        self._input: AudioInput | None = None
        self._input_lost = False  # lost (or never opened) and said so: the next open is "back"
        self._microphone = "closed"  # as the status events so far say (MICROPHONE_AFTER), for a new broker
        self._reopen = Backoff(settings.capture.retry_min_seconds, settings.capture.retry_max_seconds)
        self._stamper = EventStamper(settings.device_id, settings.topic_prefix)
        self._filter = EventFilter(settings.events)
        self._pause_file = PauseFile(settings.state_directory)
        self.paused = self._pause_file.paused()
        """Listening paused (MQTT command, SIGUSR1, or kept from the last run): audio is read and
        dropped before the segmenter."""
        self._wanted_paused = self.paused  # set from signal handlers and MQTT's thread, applied by the loop

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def request_pause(self, paused: bool) -> None:
        """Pause (True) or resume (False) listening; the loop applies it before its next block."""
        self._wanted_paused = paused

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Load the model, signal READY, then listen until stopped. The microphone is opened inside
        the loop, and reopened with backoff whenever it is missing or lost, so the service runs (and
        feeds the watchdog) without one. Raises SerError if the model cannot be loaded or PyAudio
        is missing at start (a reload failure keeps the old model instead)."""
        self.classifier, self.stream = self._load(self.settings)
        self._input = self._open_input(self.settings.capture, self.classifier.manifest.frontend.sample_rate)  # opened below
        self._start_mqtt()
        self.status("started", f"device {self.settings.device_id}")
        self.status("model_loaded", self._describe_model())
        if self.paused:
            self.status("paused", "kept from before the restart: audio is dropped until resumed")
        self.notifier.ready(f"running {self.classifier.manifest.name}, opening the microphone")
        try:
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self._apply_reload()
                if self._wanted_paused != self.paused:
                    self._apply_pause(self._wanted_paused)
                if self._input.is_open:
                    self._process_next_block()
                else:
                    self._try_microphone()
                self.notifier.watchdog()
        finally:
            self.notifier.stopping()
            self._input.close()
            self.status("stopped")
            if self._mqtt is not None:
                self._mqtt.stop()

    def _process_next_block(self) -> None:
        try:
            samples = self._input.read(READ_TIMEOUT)
        except EndOfInput:  # a pipe closed: the last utterance's event, then a clean stop
            for event in self.stream.close():
                self._utterance_event(event)
            self.request_stop()
            return
        except MicrophoneError as error:
            self._input.close()
            self._lose_microphone(str(error))
            self._reopen.reset()  # try again at once
            return
        if self.paused:
            return  # dropped before the segmenter: no features, no events
        for event in self.stream.push(samples):
            self._utterance_event(event)
        if self._mqtt is not None and self._mqtt.levels_due():
            self._mqtt.publish_levels(self.stream.take_levels())

    # -- events ----------------------------------------------------------------------------

    def emit(self, event: EmotionEvent | StatusEvent) -> None:
        topic, payload = self._stamper.stamp(event)
        self.output.publish(topic, payload)
        if self._mqtt is not None:
            self._mqtt.publish(topic, payload)

    def _utterance_event(self, event: EmotionEvent) -> None:
        """An utterance's emotion event, through the [events] filter."""
        kept = self._filter.apply(event)
        if kept is None:
            log.debug("event held back by the [events] filter: %s %.2f", event.emotion, event.confidence)
        else:
            self.emit(kept)

    def status(self, status: str, detail: str = "") -> None:
        """A status event with the drop counters, the same text to systemd and the log."""
        dropped_audio = self._input.dropped_seconds if self._input else 0.0
        self._microphone = MICROPHONE_AFTER.get(status, self._microphone)
        self.emit(StatusEvent(status, detail, self._mqtt.dropped if self._mqtt else 0, dropped_audio))
        text = f"{status.replace('_', ' ')}: {detail}" if detail else status.replace("_", " ")
        self.notifier.status(text)
        (log.warning if status in ("microphone_lost", "reload_failed") else log.info)("%s", text)

    # -- set-up, pause, microphone and reload ------------------------------------------------

    def _load(self, settings: DaemonSettings) -> tuple[Classifier, EmotionStream]:
        """Model and audio-to-events stream for ``settings``; raises SerError if the bundle fails its checks."""
        classifier = Classifier(load_bundle(settings.model, runtime=settings.runtime, variant=settings.variant))
        unknown = set(settings.events.labels or ()) - {*classifier.manifest.labels, UNCERTAIN}
        if unknown:
            raise SettingsError(
                f"events labels: {', '.join(sorted(unknown))} not among the model's "
                f"({', '.join(classifier.manifest.labels)}) or {UNCERTAIN}"
            )
        # The input delivers audio at the model's rate already; a pipe delivers every sample, perhaps
        # faster than real time, so its event times count from its start.
        return classifier, EmotionStream(
            classifier, classifier.manifest.frontend.sample_rate, settings.segmenter, live=settings.capture.input == MICROPHONE
        )

    def _model_labels(self) -> tuple[tuple[str, ...], str]:
        """The labels an event can carry (the model's and ``uncertain``) and the model's name."""
        return (*self.classifier.manifest.labels, UNCERTAIN), self.classifier.manifest.name

    def _start_mqtt(self) -> None:
        if self.settings.mqtt.host:
            from edge.mqtt_device import MqttDevice  # paho and ssl only when a broker is configured

            self._mqtt = MqttDevice(self.settings, on_listening=lambda listening: self.request_pause(not listening))
            self._mqtt.start(*self._model_labels(), listening=not self.paused, microphone=self._microphone)

    def _describe_model(self) -> str:
        bundle = self.classifier.bundle
        return f"{bundle.manifest.name} ({bundle.variant}) sha256 {bundle.model_sha256[:12]} on {bundle.runtime}"

    def _apply_pause(self, paused: bool) -> None:
        self.paused = paused
        self._pause_file.keep(paused)
        if not paused:
            self.stream.reset()  # what was heard before the pause is not joined to what comes after
        self.status("paused" if paused else "resumed", "audio is dropped until resumed" if paused else "")

    def _try_microphone(self) -> None:
        """Open the microphone if its next attempt is due (``Backoff``), else wait (at most READ_TIMEOUT)."""
        wait = self._reopen.wait_seconds()
        if wait > 0:
            self._stop.wait(min(READ_TIMEOUT, wait))
            return
        try:
            device = self._input.open()
        except MicrophoneError as error:
            self._lose_microphone(str(error))
            log.info("retrying the microphone in %.1f s", self._reopen.failed())
            return
        self.stream.reset()
        self._reopen.reset()
        detail = f"{device.name} (index {device.index}), {self._input.rate} Hz" if device.index is not None else device.name
        self.status("microphone_back" if self._input_lost else "microphone_open", detail)
        self._input_lost = False
        self.notifier.status(f"listening on {device.name} with {self.classifier.manifest.name}")

    def _lose_microphone(self, reason: str) -> None:
        """Say once (status event, STATUS, log) that there is no microphone, until one opens."""
        if not self._input_lost:
            self._input_lost = True
            self.status("microphone_lost", reason)

    def _apply_reload(self) -> None:
        """New settings and model, or the old ones kept (with a reload_failed status) if either fails."""
        self.notifier.reloading()
        detector_model.cache_clear()  # a speech detector replaced on disk is verified again
        try:
            settings = self._reload_settings()
            classifier, stream = self._load(settings)
        except SerError as error:
            self.status("reload_failed", f"{error}; keeping {self.classifier.manifest.name}")
            self.notifier.ready(f"listening with {self.classifier.manifest.name} (reload failed)")
            return
        old, self.settings = self.settings, settings
        self.classifier, self.stream = classifier, stream
        # The same stamper: sequence numbers go on growing through a reload (docs/events.md).
        self._stamper.device_id, self._stamper.topic_prefix = settings.device_id, settings.topic_prefix
        self._filter = EventFilter(settings.events)
        if settings.state_directory != old.state_directory:
            self._pause_file = PauseFile(settings.state_directory)
            self._pause_file.keep(self.paused)
        if settings.mqtt != old.mqtt or (settings.device_id, settings.topic_prefix) != (old.device_id, old.topic_prefix):
            if self._mqtt is not None:
                self._mqtt.stop()
                self._mqtt = None
            self._start_mqtt()
        elif self._mqtt is not None:
            self._mqtt.announce(*self._model_labels())  # the model's labels or name may have changed
        self.status("reloaded", self._describe_model())
        if settings.capture != old.capture or self._input.target_rate != classifier.manifest.frontend.sample_rate:
            self._input.close()
            self._input = self._open_input(settings.capture, classifier.manifest.frontend.sample_rate)
            self._reopen = Backoff(settings.capture.retry_min_seconds, settings.capture.retry_max_seconds)  # opened by the loop
        self.notifier.ready(f"listening with {classifier.manifest.name}")
