"""Events: small typed messages, written MQTT-style as ``<topic> <json>`` lines.

Topics are ``<prefix>/<device_id>/emotion`` (one per utterance) and ``<prefix>/<device_id>/status``
(service life cycle); MQTT also carries a retained ``<prefix>/<device_id>/availability`` of
``online`` or ``offline``. Payloads never contain audio. The schema is ``docs/events.md``; its
version is in every payload and changes whenever a field changes meaning or disappears.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field

from edge.settings import EventSettings

SCHEMA_VERSION = 1
STATUSES = (
    "started",
    "model_loaded",
    "microphone_open",
    "microphone_lost",
    "microphone_back",
    "paused",
    "resumed",
    "reloaded",
    "reload_failed",
    "stopped",
)


@dataclass(frozen=True)
class EmotionEvent:
    """The emotion of one utterance (or one part of a long one)."""

    emotion: str
    """The most probable class."""
    confidence: float
    """Its pooled probability, 0..1."""
    scores: dict[str, float]
    """Pooled probability of every class in the model's label order."""
    start: float
    """Unix time of the utterance's first sample (pre-roll included)."""
    end: float
    """Unix time just after its last sample (hang-over included)."""
    duration: float
    """Seconds of audio classified (end - start)."""
    part: int
    """1, or which part of an utterance longer than the segmenter's max_seconds."""
    model: str
    """Bundle name."""
    model_sha256: str
    """sha256 of the model file that classified it."""
    kind = "emotion"


@dataclass(frozen=True)
class StatusEvent:
    """A change in the service's life: started, model_loaded, microphone_lost, stopped, ..."""

    status: str
    """One of STATUSES."""
    detail: str = ""
    """Human-readable context: the device, the model, the error."""
    dropped_events: int = 0
    """Events not delivered to MQTT so far (queue full while the broker was away)."""
    dropped_audio_seconds: float = 0.0
    """Audio dropped so far because processing fell behind capture."""
    kind = "status"

    def __post_init__(self):
        if self.status not in STATUSES:
            raise ValueError(f"unknown status {self.status!r}")


UNCERTAIN = "uncertain"  # the emotion of an event below the settings' min_confidence


class EventFilter:
    """Applies the [events] settings to each emotion event: relabels a guess ``uncertain``, then
    lets it out only if its emotion is allowed, differs from the last one out (``only_changes``)
    and the cooldown since the last one out has passed."""

    def __init__(self, settings: EventSettings):
        self.settings = settings
        self._last_emotion: str | None = None
        self._last_end = -math.inf

    def apply(self, event: EmotionEvent) -> EmotionEvent | None:
        """The event to send (relabelled if uncertain), or None if it is held back."""
        settings = self.settings
        if event.confidence < settings.min_confidence:
            event = dataclasses.replace(event, emotion=UNCERTAIN)
        if settings.labels is not None and event.emotion not in settings.labels:
            return None
        if settings.only_changes and event.emotion == self._last_emotion:
            return None
        if event.end - self._last_end < settings.cooldown_seconds:
            return None
        self._last_emotion, self._last_end = event.emotion, event.end
        return event


# The device's MQTT topics besides its events' (``<prefix>/<device_id>/<kind>``, docs/events.md),
# and the fixed payloads they carry.
AVAILABILITY, LAST_EMOTION, STATE, LEVELS = "availability", "last_emotion", "state", "levels"
LISTENING, LISTENING_COMMAND = "listening", "listening/set"
ONLINE, OFFLINE = "online", "offline"
"""``availability``'s payloads (and Home Assistant's own on its status topic)."""
ON, OFF = "ON", "OFF"
"""The listening switch's states and commands."""
MICROPHONE_AFTER = {
    "started": "closed",
    "microphone_open": "open",
    "microphone_back": "open",
    "microphone_lost": "lost",
    "stopped": "closed",
}
"""The microphone's state (open, lost, closed) after a status event; other events leave it as it was."""


def device_topic(topic_prefix: str, device_id: str, kind: str) -> str:
    """``<prefix>/<device_id>/<kind>``: where the device's ``kind`` of message goes."""
    return f"{topic_prefix}/{device_id}/{kind}"


@dataclass
class EventStamper:
    """Adds what every payload carries: schema, type, device, sequence number and time. One thread
    (the service's loop) stamps every event."""

    device_id: str
    topic_prefix: str = "ser"
    _sequence: int = field(default=0, init=False)

    def stamp(self, event: EmotionEvent | StatusEvent) -> tuple[str, dict]:
        """(topic, payload) with the next sequence number; sequence numbers count from 1 per run."""
        self._sequence += 1
        payload = {
            "schema": SCHEMA_VERSION,
            "type": event.kind,
            "device_id": self.device_id,
            "sequence": self._sequence,
            "time": round(time.time(), 3),
            **_rounded(asdict(event)),
        }
        return device_topic(self.topic_prefix, self.device_id, event.kind), payload


def _rounded(values: dict) -> dict:
    """Floats to millisecond / 4-digit precision, so lines stay short and readable."""

    def tidy(value):
        if isinstance(value, float):
            return round(value, 4)
        if isinstance(value, dict):
            return {k: tidy(v) for k, v in value.items()}
        return value

    return {k: tidy(v) for k, v in values.items()}


def event_line(topic: str, payload: dict) -> str:
    """One event as a line: topic, a space, compact JSON."""
    return f"{topic} {json.dumps(payload, separators=(',', ':'))}"


class StdoutSink:
    """Writes each event as one line and flushes at once, so a pipe sees it immediately."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def publish(self, topic: str, payload: dict) -> None:
        self.stream.write(event_line(topic, payload) + "\n")
        self.stream.flush()
