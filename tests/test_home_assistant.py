"""What Home Assistant shows of the device, without a broker: the service's state after each status
event, and the discovery configs' choices (the broker and the templates: tests/test_mqtt.py)."""

from __future__ import annotations

import pytest

from edge.events import STATUSES
from edge.homeassistant import SERVICE_STATES, discovery_configs, service_state


@pytest.mark.parametrize(
    "status, microphone, listening, expected",
    [
        ("started", "closed", True, "starting"),
        ("model_loaded", "closed", True, "starting"),
        ("microphone_open", "open", True, "listening"),
        ("microphone_lost", "lost", True, "no microphone"),
        ("microphone_back", "open", True, "listening"),
        ("paused", "open", False, "paused"),
        ("paused", "lost", False, "paused"),  # paused says more than a missing microphone
        ("resumed", "open", True, "listening"),
        ("reloaded", "open", True, "listening"),  # not the last lifecycle word: what it does now
        ("reload_failed", "lost", True, "no microphone"),
        ("stopped", "closed", False, "stopped"),
    ],
)
def test_the_service_status_is_what_the_service_is_doing(status, microphone, listening, expected):
    assert service_state(status, microphone, listening) == expected


def test_every_status_event_gives_one_of_the_sensors_options():
    states = {service_state(s, m, listening) for s in STATUSES for m in ("open", "lost", "closed") for listening in (True, False)}
    assert states == set(SERVICE_STATES)


def test_the_entities_say_what_their_values_are():
    configs = {topic.split("/")[-2]: config for topic, config in discovery_configs("ser", "k", ("sad", "uncertain"), "m").items()}
    assert configs["status"]["device_class"] == "enum" and configs["status"]["options"] == list(SERVICE_STATES)
    assert "state_class" not in configs["confidence"] and "json_attributes_template" in configs["confidence"]
    assert "icon" not in configs["listening"]
