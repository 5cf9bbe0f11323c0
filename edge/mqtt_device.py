"""The listening device as MQTT and Home Assistant see it: its topics, beside the event lines.

Under ``<prefix>/<device_id>/``:

- ``emotion`` and ``status``: every event, as on stdout;
- ``last_emotion`` (retained): the last emotion event, for sensors that start after it;
- ``state`` (retained): status, microphone (open, lost, closed), listening, drop counters, as the
  status events tell them;
- ``listening`` (retained) and ``listening/set``: the pause switch's state and its command;
- ``levels``: the voice-activity detector's levels every ``levels_seconds``, if asked;
- ``availability``: ``online`` or ``offline`` (``edge.mqtt``).

Home Assistant's discovery configs (``edge.homeassistant``) go out at start, after a reload and
whenever Home Assistant says ``online``; ``forget`` empties them. Every retained topic goes out
again on each reconnection to the broker (``edge.mqtt``).
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import time
from collections.abc import Callable

from edge.errors import SerError
from edge.events import (
    AVAILABILITY,
    LAST_EMOTION,
    LEVELS,
    LISTENING,
    LISTENING_COMMAND,
    MICROPHONE_AFTER,
    OFF,
    ON,
    ONLINE,
    STATE,
    device_topic,
)
from edge.homeassistant import discovery_configs, service_state
from edge.mqtt import MqttPublisher
from edge.settings import DaemonSettings

log = logging.getLogger(__name__)
RETAINED = (LAST_EMOTION, STATE, LISTENING)  # the device's retained topics besides availability
AVAILABILITY_WAIT_SECONDS = 1.0  # how long --forget waits for a retained availability (the broker sends it at once)


def client_id(settings: DaemonSettings) -> str:
    """The daemon's MQTT client id: one per device (a second client with it would take over)."""
    return f"{settings.topic_prefix}-{settings.device_id}"


class MqttDevice:
    """Publishes the service's events and state to the broker in ``settings.mqtt``, announces the
    device to Home Assistant, and passes the listening switch's commands to ``on_listening``
    (True: listen, False: pause; called from MQTT's network thread)."""

    def __init__(self, settings: DaemonSettings, on_listening: Callable[[bool], None]):
        self.settings = settings
        self._on_listening = on_listening
        self._publisher = MqttPublisher(settings.mqtt, self.topic(AVAILABILITY), client_id(settings))
        self._labels: tuple[str, ...] = ()
        self._model = ""
        self._microphone = "closed"
        self._listening = True
        self._levels_due = 0.0  # monotonic time of the next levels message

    def topic(self, kind: str) -> str:
        return device_topic(self.settings.topic_prefix, self.settings.device_id, kind)

    @property
    def dropped(self) -> int:
        """Events dropped while the broker was away (the publisher's bounded queue)."""
        return self._publisher.dropped

    def start(self, labels: tuple[str, ...], model: str, listening: bool, microphone: str = "closed") -> None:
        """Connect in the background, announce the device with the model's ``labels`` (including
        ``uncertain``) and publish the switch's state; ``microphone`` is its state so far (a new
        broker after a reload: later status events keep it up to date)."""
        self._publisher.subscribe(self.topic(LISTENING_COMMAND), self._on_listening_command)
        self._publisher.adopt_retained(self.topic(LAST_EMOTION))  # the last emotion of an earlier run
        if self.settings.mqtt.discovery:
            self._publisher.subscribe(f"{self.settings.mqtt.discovery_prefix}/status", self._on_home_assistant_status)
        self._publisher.start()
        self._listening, self._microphone = listening, microphone
        self.announce(labels, model)
        self._publish_listening()

    def stop(self) -> None:
        self._publisher.stop()

    def announce(self, labels: tuple[str, ...], model: str) -> None:
        """Home Assistant discovery configs, retained (again whenever the model changes)."""
        self._labels, self._model = labels, model
        settings = self.settings
        if not settings.mqtt.discovery:
            return
        configs = discovery_configs(settings.topic_prefix, settings.device_id, labels, model, settings.mqtt.discovery_prefix)
        for topic, config in configs.items():
            self._publisher.publish(topic, config, retain=True)

    def publish(self, topic: str, payload: dict) -> None:
        """An event, then the retained summary it changes: ``last_emotion``, or ``state`` (and the
        switch's state on pause and resume)."""
        self._publisher.publish(topic, payload)
        if payload["type"] == "emotion":
            self._publisher.publish(self.topic(LAST_EMOTION), payload, retain=True)
            return
        status = payload["status"]
        self._microphone = MICROPHONE_AFTER.get(status, self._microphone)
        if status in ("paused", "resumed"):
            self._listening = status == "resumed"
            self._publish_listening()
        state = {
            "service": service_state(status, self._microphone, self._listening),
            "status": status,
            "microphone": self._microphone,
            "listening": ON if self._listening else OFF,
            "dropped_events": payload["dropped_events"],
            "dropped_audio_seconds": payload["dropped_audio_seconds"],
            "time": payload["time"],
        }
        self._publisher.publish(self.topic(STATE), state, retain=True)

    def levels_due(self) -> bool:
        """Whether the levels diagnostic is asked for and due now."""
        every = self.settings.mqtt.levels_seconds
        return every > 0 and time.monotonic() >= self._levels_due

    def publish_levels(self, levels) -> None:
        """The detector's ``edge.voice_activity.Levels``, rounded, on ``levels``."""
        self._levels_due = time.monotonic() + self.settings.mqtt.levels_seconds
        self._publisher.publish(self.topic(LEVELS), {k: round(v, 2) for k, v in dataclasses.asdict(levels).items()})

    def _publish_listening(self) -> None:
        """The pause switch's state, retained, as Home Assistant's MQTT switch expects it."""
        self._publisher.publish(self.topic(LISTENING), ON if self._listening else OFF, retain=True)

    def _on_listening_command(self, text: str) -> None:
        command = text.strip().upper()
        if command not in (ON, OFF):
            log.warning("listening command %r ignored: send %s or %s", text, ON, OFF)
            return
        self._on_listening(command == ON)
        if (command == ON) == self._listening:  # nothing changes: answer with the state all the same
            self._publish_listening()

    def _on_home_assistant_status(self, text: str) -> None:
        if text.strip() == ONLINE:  # Home Assistant (re)started: it wants the configs again
            self.announce(self._labels, self._model)


def forget(settings: DaemonSettings, timeout: float = 10.0) -> int:
    """Remove the device from Home Assistant and the broker: empty its retained discovery configs,
    state topics and availability. Returns how many entities were removed. Raises SerError if the
    broker cannot be reached within ``timeout`` seconds, or if the device is online (its daemon
    would announce it again on its next reconnection: stop it first)."""
    if not settings.mqtt.host:
        return 0
    availability = device_topic(settings.topic_prefix, settings.device_id, AVAILABILITY)
    # A client id of its own: the daemon's would make the broker close the daemon's connection.
    publisher = MqttPublisher(settings.mqtt, None, client_id=f"{client_id(settings)}-forget")
    heard = queue.Queue()
    publisher.subscribe(availability, heard.put)
    configs = discovery_configs(settings.topic_prefix, settings.device_id, (), "", settings.mqtt.discovery_prefix)
    publisher.start()
    try:
        if not publisher.wait_connected(timeout):
            raise SerError(f"MQTT broker {settings.mqtt.host}:{settings.mqtt.port}: no connection within {timeout:.0f} s")
        try:
            online = heard.get(timeout=AVAILABILITY_WAIT_SECONDS) == ONLINE  # the retained availability, if any
        except queue.Empty:
            online = False
        if online:
            raise SerError(
                f"device {settings.device_id} is online on {settings.mqtt.host}:{settings.mqtt.port}: stop its daemon first "
                "(sudo systemctl stop ser), then run --forget again"
            )
        last = None
        for topic in [*configs, *(device_topic(settings.topic_prefix, settings.device_id, k) for k in RETAINED), availability]:
            last = publisher.publish(topic, "", retain=True)  # an empty retained message deletes the retained one
        if last is not None:
            last.wait_for_publish(timeout)  # in order: the broker has them all
    finally:
        publisher.stop(timeout)
    return len(configs)
