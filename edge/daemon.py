"""The listening service: microphone → segmenter → classifier → events, as one loop.

The loop runs in the main thread: it takes audio from the microphone's bounded buffer, cuts
utterances, classifies each and hands events to the sinks (stdout, MQTT). It is also where the
systemd watchdog is fed, so a stuck loop stops the keep-alives and gets the service restarted.
Signals only set flags that the loop reads between blocks (at least every quarter second).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge.bundle import load_bundle
from edge.classifier import Classifier
from edge.errors import SerError
from edge.events import EmotionEvent, EventStamper, StatusEvent
from edge.microphone import Microphone, MicrophoneError
from edge.segmenter import Segmenter, Utterance
from edge.settings import DaemonSettings
from edge.systemd import ServiceNotifier

log = logging.getLogger(__name__)
READ_TIMEOUT = 0.25  # seconds; bounds how late a stop, reload or watchdog keep-alive can be


class Sink(Protocol):
    def publish(self, topic: str, payload: dict) -> None: ...


class EmotionService:
    """Runs until ``request_stop``; ``request_reload`` re-reads settings and model between blocks."""

    def __init__(self, settings: DaemonSettings, output: Sink, notifier: ServiceNotifier | None = None,
                 reload_settings: Callable[[], DaemonSettings] | None = None):  # fmt: skip
        self.settings = settings
        self.output = output
        self.notifier = notifier or ServiceNotifier({})
        self._reload_settings = reload_settings or (lambda: self.settings)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self._mqtt = None
        self._microphone: Microphone | None = None
        self._stamper = EventStamper(settings.device_id, settings.topic_prefix)

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    # -- events ----------------------------------------------------------------------------

    def emit(self, event: EmotionEvent | StatusEvent) -> None:
        topic, payload = self._stamper.stamp(event)
        self.output.publish(topic, payload)
        if self._mqtt is not None:
            self._mqtt.publish(topic, payload)

    def status(self, status: str, detail: str = "") -> None:
        """A status event with the drop counters, the same text to systemd and the log."""
        dropped_audio = self._microphone.dropped_seconds if self._microphone else 0.0
        self.emit(StatusEvent(status, detail, self._mqtt.dropped if self._mqtt else 0, dropped_audio))
        text = f"{status.replace('_', ' ')}: {detail}" if detail else status.replace("_", " ")
        self.notifier.status(text)
        (log.warning if status in ("microphone_lost", "reload_failed") else log.info)("%s", text)

    # -- set-up ----------------------------------------------------------------------------

    def _load(self, settings: DaemonSettings) -> tuple[Classifier, Segmenter]:
        """Model and segmenter for ``settings``; raises SerError if the bundle fails its checks."""
        bundle = load_bundle(settings.model, runtime=settings.runtime, variant=settings.variant)
        manifest = bundle.manifest
        segmenter = Segmenter(settings.segmenter, manifest.frontend, manifest.windowing.min_frames)
        return Classifier(bundle), segmenter

    def _start_mqtt(self, settings: DaemonSettings) -> None:
        if settings.mqtt.host:
            from edge.mqtt import MqttPublisher

            self._mqtt = MqttPublisher(settings.mqtt, self._stamper.topic("availability"),
                                       client_id=f"{settings.topic_prefix}-{settings.device_id}")  # fmt: skip
            self._mqtt.start()

    def _describe_model(self) -> str:
        bundle = self.classifier.bundle
        return f"{bundle.manifest.name} ({bundle.variant}) sha256 {bundle.model_sha256[:12]} on {bundle.runtime}"

    # -- the loop --------------------------------------------------------------------------

    def run(self) -> None:
        """Load, open, signal READY, then listen until stopped. Raises SerError if the model
        cannot be loaded at start (a reload failure keeps the old model instead)."""
        self.classifier, self.segmenter = self._load(self.settings)
        self._start_mqtt(self.settings)
        self.status("started", f"device {self.settings.device_id}")
        self.status("model_loaded", self._describe_model())
        self._microphone = Microphone(self.settings.capture, self.classifier.manifest.frontend.sample_rate)
        try:
            if self._open_microphone(lost_detail=None):
                self.notifier.ready(f"listening on {self._microphone.device.name} with {self.classifier.manifest.name}")
            while not self._stop.is_set():
                if self._reload.is_set():
                    self._reload.clear()
                    self._apply_reload()
                self._process_next_block()
                self.notifier.watchdog()
        finally:
            self.notifier.stopping()
            self._microphone.close()
            self.status("stopped")
            if self._mqtt is not None:
                self._mqtt.stop()

    def _process_next_block(self) -> None:
        try:
            samples = self._microphone.read(READ_TIMEOUT)
        except MicrophoneError as error:
            self._microphone.close()
            self._open_microphone(lost_detail=str(error))
            return
        self._stream_seconds += len(samples) / self.segmenter.rate
        for utterance in self.segmenter.push(samples):
            self._classify(utterance)

    def _classify(self, utterance: Utterance) -> None:
        prediction = self.classifier.classify_features(utterance.features, "utterance")
        # Wall-clock times from how far the stream has moved on since the utterance ended.
        now = time.time()
        start, end = (now - (self._stream_seconds - t) for t in (utterance.start, utterance.end))
        manifest = self.classifier.manifest
        self.emit(EmotionEvent(prediction.label, prediction.confidence, prediction.scores, start, end,
                               utterance.duration, utterance.part, manifest.name, self.classifier.bundle.model_sha256))  # fmt: skip

    def _open_microphone(self, lost_detail: str | None) -> bool:
        """Open (or reopen after ``lost_detail``) the microphone, retrying with backoff until it
        opens (True) or a stop is requested (False). The watchdog is fed while waiting."""
        settings = self.settings.capture
        delay = settings.retry_min_seconds
        if lost_detail is not None:
            self.status("microphone_lost", lost_detail)
        while not self._stop.is_set():
            try:
                device = self._microphone.open()
            except MicrophoneError as error:
                if lost_detail is None:
                    self.status("microphone_lost", str(error))
                    lost_detail = str(error)
                log.info("retrying the microphone in %.1f s", delay)
                self._sleep(delay)
                delay = min(delay * 2, settings.retry_max_seconds)
                continue
            self.segmenter.reset()
            self._stream_seconds = 0.0
            detail = f"{device.name} (index {device.index}), {self._microphone.rate} Hz"
            self.status("microphone_back" if lost_detail is not None else "microphone_open", detail)
            return True
        return False

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            self.notifier.watchdog()
            self._stop.wait(min(READ_TIMEOUT, max(0.0, deadline - time.monotonic())))

    def _apply_reload(self) -> None:
        """New settings and model, or the old ones kept (with a reload_failed status) if either fails."""
        self.notifier.reloading()
        try:
            settings = self._reload_settings()
            classifier, segmenter = self._load(settings)
        except SerError as error:
            self.status("reload_failed", f"{error}; keeping {self.classifier.manifest.name}")
            self.notifier.ready(f"listening with {self.classifier.manifest.name} (reload failed)")
            return
        old, self.settings = self.settings, settings
        self.classifier, self.segmenter = classifier, segmenter
        self._stamper = EventStamper(settings.device_id, settings.topic_prefix)
        if settings.mqtt != old.mqtt or (settings.device_id, settings.topic_prefix) != (old.device_id, old.topic_prefix):
            if self._mqtt is not None:
                self._mqtt.stop()
                self._mqtt = None
            self._start_mqtt(settings)
        self.status("reloaded", self._describe_model())
        if settings.capture != old.capture or self._microphone.target_rate != classifier.manifest.frontend.sample_rate:
            self._microphone.close()
            self._microphone = Microphone(settings.capture, classifier.manifest.frontend.sample_rate)
            self._open_microphone(lost_detail=None)
        else:
            self.segmenter.reset()
            self._stream_seconds = 0.0
        self.notifier.ready(f"listening with {classifier.manifest.name}")
