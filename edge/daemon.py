"""The listening service: microphone → segmenter → classifier → events, as one loop.

The loop runs in the main thread: it takes audio from the microphone's bounded buffer, cuts
utterances, classifies each and hands events to the sinks (stdout, MQTT). It is also where the
systemd watchdog is fed, so a stuck loop stops the keep-alives and gets the service restarted.
Signals only set flags that the loop reads between blocks (at least every quarter second).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge.api import EmotionStream
from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.errors import SerError
from edge.events import UNCERTAIN, EmotionEvent, EventFilter, EventStamper, StatusEvent
from edge.homeassistant import discovery_configs
from edge.microphone import Backoff, Microphone, MicrophoneError, require_pyaudio
from edge.pipe import EndOfInput, PipeInput
from edge.settings import CaptureSettings, DaemonSettings, SettingsError
from edge.systemd import ServiceNotifier

log = logging.getLogger(__name__)
READ_TIMEOUT = 0.25  # seconds; bounds how late a stop, reload or watchdog keep-alive can be


class Sink(Protocol):
    def publish(self, topic: str, payload: dict) -> None: ...


def audio_input(capture: CaptureSettings, target_rate: int) -> Microphone | PipeInput:
    """The microphone, or standard input if the settings say ``input = "-"``."""
    return PipeInput(capture, target_rate) if capture.input == "-" else Microphone(capture, target_rate)


def forget(settings: DaemonSettings, timeout: float = 10.0) -> int:
    """Remove the device from Home Assistant and the broker: empty retained discovery configs and
    retained state topics. Returns how many entities were removed; raises SerError if the broker
    cannot be reached within ``timeout`` seconds."""
    from edge.mqtt import MqttPublisher

    if not settings.mqtt.host:
        return 0
    stamper = EventStamper(settings.device_id, settings.topic_prefix)
    mqtt = MqttPublisher(settings.mqtt, stamper.topic("availability"), client_id=f"{settings.topic_prefix}-{settings.device_id}")
    configs = discovery_configs(settings.topic_prefix, settings.device_id, (), "", settings.mqtt.discovery_prefix)
    mqtt.start()
    try:
        if not mqtt.wait_connected(timeout):
            raise SerError(f"MQTT broker {settings.mqtt.host}:{settings.mqtt.port}: no connection within {timeout:.0f} s")
        for topic in [*configs, *(stamper.topic(kind) for kind in ("last_emotion", "state", "listening"))]:
            mqtt.publish(topic, "", retain=True)  # an empty retained message deletes the retained one
    finally:
        mqtt.stop(timeout)
    return len(configs)


class EmotionService:
    """Runs until ``request_stop``; ``request_reload`` re-reads settings and model between blocks."""

    def __init__(
        self,
        settings: DaemonSettings,
        output: Sink,
        notifier: ServiceNotifier | None = None,
        reload_settings: Callable[[], DaemonSettings] | None = None,
    ):
        self.settings = settings
        self.output = output
        self.notifier = notifier or ServiceNotifier({})
        self._reload_settings = reload_settings or (lambda: self.settings)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.classifier: Classifier | None = None  # loaded by run(), replaced by a reload
        self.stream: EmotionStream | None = None  # audio in, events out, for that classifier
        self._mqtt = None
        self._input: Microphone | PipeInput | None = None
        self._input_lost = False  # lost (or never opened) and said so: the next open is "back"
        self._reopen = Backoff(settings.capture.retry_min_seconds, settings.capture.retry_max_seconds)
        self._stamper = EventStamper(settings.device_id, settings.topic_prefix)
        self._filter = EventFilter(settings.events)
        self.paused = False
        """Listening paused (MQTT command, SIGUSR1): audio is read and dropped before the segmenter."""
        self._wanted_paused = False  # set from signal handlers and MQTT's thread, applied by the loop
        self._levels_due = 0.0  # monotonic time of the next levels diagnostic

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def request_pause(self, paused: bool) -> None:
        """Pause (True) or resume (False) listening; the loop applies it before its next block."""
        self._wanted_paused = paused

    # -- events ----------------------------------------------------------------------------

    def emit(self, event: EmotionEvent | StatusEvent) -> None:
        topic, payload = self._stamper.stamp(event)
        self.output.publish(topic, payload)
        if self._mqtt is not None:
            self._mqtt.publish(topic, payload)
            # Retained summaries, for whoever subscribes later (Home Assistant's sensors after a restart).
            if event.kind == "emotion":
                self._mqtt.publish(self._stamper.topic("last_emotion"), payload, retain=True)
            else:
                self._mqtt.publish(self._stamper.topic("state"), self._state(payload), retain=True)

    def _state(self, status_payload: dict) -> dict:
        """The service's state after a status event: status, microphone, listening, drop counters."""
        microphone = "open" if self._input is not None and self._input.is_open else "lost" if self._input_lost else "closed"
        return {
            "status": status_payload["status"],
            "microphone": microphone,
            "listening": "OFF" if self.paused else "ON",
            "dropped_events": status_payload["dropped_events"],
            "dropped_audio_seconds": status_payload["dropped_audio_seconds"],
            "time": status_payload["time"],
        }

    def _announce(self) -> None:
        """Home Assistant discovery configs, retained (at start, on reload, when HA comes online)."""
        settings = self.settings
        if self._mqtt is None or not settings.mqtt.discovery:
            return
        labels = (*self.classifier.manifest.labels, UNCERTAIN)
        configs = discovery_configs(
            settings.topic_prefix, settings.device_id, labels, self.classifier.manifest.name, settings.mqtt.discovery_prefix
        )
        for topic, config in configs.items():
            self._mqtt.publish(topic, config, retain=True)

    def _on_home_assistant_status(self, text: str) -> None:
        if text.strip() == "online":  # Home Assistant (re)started: it wants the configs again
            self._announce()

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
        self.emit(StatusEvent(status, detail, self._mqtt.dropped if self._mqtt else 0, dropped_audio))
        text = f"{status.replace('_', ' ')}: {detail}" if detail else status.replace("_", " ")
        self.notifier.status(text)
        (log.warning if status in ("microphone_lost", "reload_failed") else log.info)("%s", text)

    # -- set-up ----------------------------------------------------------------------------

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
            classifier, classifier.manifest.frontend.sample_rate, settings.segmenter, live=settings.capture.input == "microphone"
        )

    def _start_mqtt(self, settings: DaemonSettings) -> None:
        if settings.mqtt.host:
            from edge.mqtt import MqttPublisher

            self._mqtt = MqttPublisher(
                settings.mqtt, self._stamper.topic("availability"), client_id=f"{settings.topic_prefix}-{settings.device_id}"
            )
            self._mqtt.subscribe(self._stamper.topic("listening/set"), self._on_listening_command)
            if settings.mqtt.discovery:
                self._mqtt.subscribe(f"{settings.mqtt.discovery_prefix}/status", self._on_home_assistant_status)
            self._mqtt.start()
            self._announce()
            self._publish_listening()

    def _describe_model(self) -> str:
        bundle = self.classifier.bundle
        return f"{bundle.manifest.name} ({bundle.variant}) sha256 {bundle.model_sha256[:12]} on {bundle.runtime}"

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Load the model, signal READY, then listen until stopped. The microphone is opened inside
        the loop, and reopened with backoff whenever it is missing or lost, so the service runs (and
        feeds the watchdog) without one. Raises SerError if the model cannot be loaded or PyAudio
        is missing at start (a reload failure keeps the old model instead)."""
        self.classifier, self.stream = self._load(self.settings)
        if self.settings.capture.input == "microphone":
            require_pyaudio()  # a missing extra is not fixed by retrying
        self._start_mqtt(self.settings)
        self.status("started", f"device {self.settings.device_id}")
        self.status("model_loaded", self._describe_model())
        self._input = audio_input(self.settings.capture, self.classifier.manifest.frontend.sample_rate)
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
        self._publish_levels()

    def _publish_levels(self) -> None:
        """The detector's levels every ``levels_seconds`` on MQTT (a low-rate diagnostic), if asked."""
        every = self.settings.mqtt.levels_seconds
        if self._mqtt is None or every <= 0 or time.monotonic() < self._levels_due:
            return
        self._levels_due = time.monotonic() + every
        levels = self.stream.take_levels()
        self._mqtt.publish(self._stamper.topic("levels"), {k: round(v, 2) for k, v in dataclasses.asdict(levels).items()})

    def _apply_pause(self, paused: bool) -> None:
        self.paused = paused
        if not paused:
            self.stream.reset()  # what was heard before the pause is not joined to what comes after
        self.status("paused" if paused else "resumed", "audio is dropped until resumed" if paused else "")
        self._publish_listening()

    def _publish_listening(self) -> None:
        """The pause switch's state, retained, as Home Assistant's MQTT switch expects it."""
        if self._mqtt is not None:
            self._mqtt.publish(self._stamper.topic("listening"), "OFF" if self.paused else "ON", retain=True)

    def _on_listening_command(self, text: str) -> None:
        """``ON`` resumes, ``OFF`` pauses (from MQTT's network thread)."""
        if text.strip().upper() in ("ON", "OFF"):
            self.request_pause(text.strip().upper() == "OFF")
        else:
            log.warning("listening command %r ignored: send ON or OFF", text)

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
        detail = f"{device.name} (index {device.index}), {self._input.rate} Hz" if device.index >= 0 else device.name
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
        try:
            settings = self._reload_settings()
            classifier, stream = self._load(settings)
        except SerError as error:
            self.status("reload_failed", f"{error}; keeping {self.classifier.manifest.name}")
            self.notifier.ready(f"listening with {self.classifier.manifest.name} (reload failed)")
            return
        old, self.settings = self.settings, settings
        self.classifier, self.stream = classifier, stream
        self._stamper = EventStamper(settings.device_id, settings.topic_prefix)
        self._filter = EventFilter(settings.events)
        if settings.mqtt != old.mqtt or (settings.device_id, settings.topic_prefix) != (old.device_id, old.topic_prefix):
            if self._mqtt is not None:
                self._mqtt.stop()
                self._mqtt = None
            self._start_mqtt(settings)
        self._announce()  # the model's labels or name may have changed
        self.status("reloaded", self._describe_model())
        if settings.capture != old.capture or self._input.target_rate != classifier.manifest.frontend.sample_rate:
            self._input.close()
            self._input = audio_input(settings.capture, classifier.manifest.frontend.sample_rate)
            self._reopen = Backoff(settings.capture.retry_min_seconds, settings.capture.retry_max_seconds)  # opened by the loop
        self.notifier.ready(f"listening with {classifier.manifest.name}")
