"""Home Assistant MQTT discovery: the retained config messages that make the device's entities
appear in Home Assistant by themselves (https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery).

One device with
- an ``event`` entity fired once per utterance (event types: the model's labels and ``uncertain``;
  confidence, scores, start, end and duration as attributes),
- a ``sensor`` for the last emotion (``device_class: enum``) and one for its confidence, both read
  from the retained ``last_emotion`` topic, so they survive a Home Assistant restart,
- the ``switch`` that pauses listening,
- diagnostic entities: the service's state (listening, paused, no microphone, ...), microphone,
  dropped events and dropped audio, read from the retained ``state`` topic,
all sharing the availability topic and its last will. Configs go out at start and again whenever
Home Assistant says ``online`` on ``<prefix>/status``; ``ser daemon --forget`` empties them.
"""

from __future__ import annotations

import re

import edge
from edge.events import (
    AVAILABILITY,
    LAST_EMOTION,
    LISTENING,
    LISTENING_COMMAND,
    OFF,
    OFFLINE,
    ON,
    ONLINE,
    STATE,
    EmotionEvent,
    device_topic,
)

# Jinja templates Home Assistant applies to our payloads (docs/events.md).
EVENT_TEMPLATE = (
    '{{ {"event_type": value_json.emotion, "confidence": value_json.confidence, "scores": value_json.scores, '
    '"start": value_json.start, "end": value_json.end, "duration": value_json.duration, '
    '"start_time": value_json.start | timestamp_utc, "end_time": value_json.end | timestamp_utc} | to_json }}'
)
# The confidence sensor's attribute: whose probability it is (the most probable label's, also when
# min_confidence has relabelled the event ``uncertain``).
CONFIDENCE_ATTRIBUTES_TEMPLATE = '{{ {"emotion": (value_json.scores | dictsort(by="value") | last)[0]} | to_json }}'
SERVICE_STATES = ("starting", "listening", "paused", "no microphone", "stopped")
"""The Service status sensor's states (``service_state``)."""


def service_state(status: str, microphone: str, listening: bool) -> str:
    """What the service is doing after the status event ``status`` (one of ``SERVICE_STATES``),
    given the microphone's state (open, lost, closed) and whether it listens."""
    if status == "stopped":
        return "stopped"
    if not listening:
        return "paused"
    return {"open": "listening", "lost": "no microphone"}.get(microphone, "starting")


def object_id(text: str) -> str:
    """``text`` as Home Assistant allows it in a discovery topic: letters, digits, _ and -."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", text)


def discovery_configs(
    topic_prefix: str, device_id: str, labels: tuple[str, ...], model: str, discovery_prefix: str = "homeassistant"
) -> dict[str, dict]:
    """Discovery topic → config for every entity of the device; ``labels`` includes ``uncertain``."""

    def topic(kind: str) -> str:
        return device_topic(topic_prefix, device_id, kind)

    node = object_id(device_id)
    common = {
        "device": {
            "identifiers": [f"edge_ser_{node}"],
            "name": f"Speech emotion {device_id}",
            "manufacturer": "edge-ser",
            "model": model,
            "sw_version": edge.__version__,
        },
        "origin": {"name": "edge-ser", "sw_version": edge.__version__},
        "availability_topic": topic(AVAILABILITY),
        "payload_available": ONLINE,
        "payload_not_available": OFFLINE,
    }
    state, last = topic(STATE), topic(LAST_EMOTION)
    entities = {
        ("event", "emotion"): {
            "name": "Emotion",
            "state_topic": topic(EmotionEvent.kind),
            "event_types": list(labels),
            "value_template": EVENT_TEMPLATE,
            "icon": "mdi:account-voice",
        },
        ("sensor", "last_emotion"): {
            "name": "Last emotion",
            "state_topic": last,
            "value_template": "{{ value_json.emotion }}",
            "device_class": "enum",
            "options": list(labels),
            "icon": "mdi:emoticon-outline",
        },
        ("sensor", "confidence"): {
            # No state_class: a value per utterance, not a measurement to keep long-term statistics of.
            "name": "Last emotion confidence",
            "state_topic": last,
            "unit_of_measurement": "%",
            "value_template": "{{ (value_json.confidence * 100) | round(1) }}",
            "json_attributes_topic": last,
            "json_attributes_template": CONFIDENCE_ATTRIBUTES_TEMPLATE,
            "icon": "mdi:gauge",
        },
        ("switch", "listening"): {
            # No icon: Home Assistant's switch icon shows on and off apart.
            "name": "Listening",
            "state_topic": topic(LISTENING),
            "command_topic": topic(LISTENING_COMMAND),
            "payload_on": ON,
            "payload_off": OFF,
            "state_on": ON,
            "state_off": OFF,
        },
        ("sensor", "status"): {
            "name": "Service status",
            "state_topic": state,
            "value_template": "{{ value_json.service }}",
            "device_class": "enum",
            "options": list(SERVICE_STATES),
            "json_attributes_topic": state,
            "json_attributes_template": '{{ {"last_event": value_json.status} | to_json }}',
            "entity_category": "diagnostic",
            "icon": "mdi:information-outline",
        },
        ("binary_sensor", "microphone"): {
            "name": "Microphone",
            "state_topic": state,
            "device_class": "connectivity",
            "value_template": "{{ 'ON' if value_json.microphone == 'open' else 'OFF' }}",
            "entity_category": "diagnostic",
        },
        ("sensor", "dropped_events"): {
            "name": "Dropped events",
            "state_topic": state,
            "state_class": "total_increasing",
            "value_template": "{{ value_json.dropped_events }}",
            "entity_category": "diagnostic",
        },
        ("sensor", "dropped_audio"): {
            "name": "Dropped audio",
            "state_topic": state,
            "state_class": "total_increasing",
            "device_class": "duration",
            "unit_of_measurement": "s",
            "value_template": "{{ value_json.dropped_audio_seconds }}",
            "entity_category": "diagnostic",
        },
    }
    return {
        f"{discovery_prefix}/{component}/{node}/{name}/config": {**config, "unique_id": f"edge_ser_{node}_{name}", **common}
        for (component, name), config in entities.items()
    }
