"""Events to an MQTT broker (extra ``mqtt``, paho-mqtt), alongside stdout.

The connection runs in paho's network thread, reconnecting with exponential backoff. While the
broker is away, events wait in a bounded queue (the oldest are dropped and counted beyond it) and
go out in order once it is back. Retained messages are not queued: the last one of each topic is
published again on every (re)connection, so a broker that restarted without persistence (the
eclipse-mosquitto image's default) has the device's whole state again at once.
``<prefix>/<device>/availability`` is ``online`` (retained) while connected, and ``offline``
(retained) after a clean stop or, through the last will, after the device vanishes.
"""

from __future__ import annotations

import collections
import json
import logging
import ssl
import sys
import threading
from collections.abc import Callable

from edge.errors import SerError
from edge.events import OFFLINE, ONLINE
from edge.settings import MqttSettings, read_credentials

log = logging.getLogger(__name__)


class MqttPublisher:
    """Publishes (topic, payload) pairs to the broker in ``settings``."""

    def __init__(self, settings: MqttSettings, availability_topic: str | None, client_id: str):
        """``availability_topic``: where ``online``/``offline`` and the last will go; None for a
        client that is not the device (``ser daemon --forget``)."""
        try:
            import paho.mqtt.client as mqtt
        except ImportError:
            raise SerError("MQTT needs paho-mqtt: pip install 'edge-ser[mqtt]'") from None
        self.settings = settings
        self.availability_topic = availability_topic
        self.dropped = 0
        """Events dropped because the queue was full while the broker was away."""
        self._pending: collections.deque[tuple[str, bytes]] = collections.deque()  # events while away
        self._retained: dict[str, bytes] = {}  # topic → its last retained message, for every (re)connection
        self._subscriptions: dict[str, Callable[[str], None]] = {}
        self._adopted: set[str] = set()  # topics whose retained message on the broker is kept as ours
        self._connected = False
        self._stopping = False  # a disconnection from here on is ours: no warning, no reconnection
        self._ever_connected = threading.Event()
        self._lock = threading.Lock()
        self._client = client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        if settings.credentials_file:
            client.username_pw_set(*read_credentials(settings.credentials_file))
        if settings.tls:
            client.tls_set(ca_certs=settings.ca_file, cert_reqs=ssl.CERT_REQUIRED)
        if availability_topic is not None:
            client.will_set(availability_topic, OFFLINE, qos=1, retain=True)
        client.reconnect_delay_set(round(settings.reconnect_min_seconds) or 1, round(settings.reconnect_max_seconds))
        client.max_queued_messages_set(settings.queue_size)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._last_failure = None

    def start(self) -> None:
        """Connect in the background; events queue until the broker answers."""
        self._client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_seconds)
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.settings.host, self.settings.port, reason_code)
            return
        log.info("MQTT connected to %s:%d", self.settings.host, self.settings.port)
        self._last_failure = None
        with self._lock:
            if self.availability_topic is not None:
                client.publish(self.availability_topic, ONLINE, qos=1, retain=True)
            for topic in [*self._subscriptions, *self._adopted]:
                client.subscribe(topic, qos=1)
            for topic, message in self._retained.items():
                client.publish(topic, message, qos=self.settings.qos, retain=True)
            while self._pending:
                topic, message = self._pending.popleft()
                client.publish(topic, message, qos=self.settings.qos)
            self._connected = True
        self._ever_connected.set()

    def _on_connect_fail(self, client, userdata) -> None:
        # paho calls this inside its `except OSError` block, so the error is the one being handled.
        reason = str(sys.exc_info()[1] or "connection failed")
        if reason != self._last_failure:  # once per distinct reason, not on every retry
            self._last_failure = reason
            log.warning("MQTT broker %s:%d: %s; retrying with backoff", self.settings.host, self.settings.port, reason)

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        with self._lock:
            was_connected, self._connected = self._connected, False
        if self._stopping:
            log.info("MQTT disconnected from %s:%d", self.settings.host, self.settings.port)
        elif was_connected:
            log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.settings.host, self.settings.port, reason_code)

    def subscribe(self, topic: str, handler: Callable[[str], None]) -> None:
        """Call ``handler`` with the text of every message on ``topic`` (from paho's network thread),
        subscribing again after each reconnection. Call before ``start``."""
        self._subscriptions[topic] = handler

    def adopt_retained(self, topic: str) -> None:
        """Keep the broker's retained message on ``topic`` (one this device published in an earlier
        run) as if published now, unless this run publishes one first: so that a broker that
        restarts without persistence gets it again too. Call before ``start``."""
        self._adopted.add(topic)

    def _on_message(self, client, userdata, message) -> None:
        if message.topic in self._adopted:
            if message.retain and message.payload:
                with self._lock:
                    self._retained.setdefault(message.topic, message.payload)
            return
        handler = self._subscriptions.get(message.topic)
        if handler is not None:
            handler(message.payload.decode("utf-8", errors="replace"))

    def publish(self, topic: str, payload: dict | str, retain: bool = False):
        """Send a JSON object (or plain text) now if connected (returns paho's MQTTMessageInfo),
        else queue it (dropping the oldest beyond ``queue_size``; returns None). A retained message
        (what a subscriber gets on subscribing; empty: delete it) is kept instead of queued and
        sent again on every (re)connection."""
        message = (payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))).encode()
        with self._lock:
            if retain:
                self._retained[topic] = message
            if self._connected:
                return self._client.publish(topic, message, qos=self.settings.qos, retain=retain)
            if retain:
                return None
            if len(self._pending) >= self.settings.queue_size:
                self._pending.popleft()
                self.dropped += 1
            self._pending.append((topic, message))
            return None

    def wait_connected(self, timeout: float) -> bool:
        """Whether the broker accepted the connection within ``timeout`` seconds."""
        return self._ever_connected.wait(timeout)

    def stop(self, timeout: float = 1.0) -> None:
        """Retained ``offline``, then disconnect; gives up waiting for the broker after ``timeout``."""
        with self._lock:
            connected = self._connected
            self._stopping = True
        if connected and self.availability_topic is not None:
            info = self._client.publish(self.availability_topic, OFFLINE, qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError):
                pass  # the connection went away meanwhile; the last will says offline instead
        self._client.disconnect()
        self._client.loop_stop()
        if self._pending:
            log.warning("MQTT: %d event(s) still queued at stop were not delivered", len(self._pending))
