"""The daemon in a real Home Assistant, through a real mosquitto, as its users live with it: the
device and its entities appear, a spoken clip reaches them, the switch pauses and the pause
survives a restart of the daemon, the entities go unavailable and come back, a broker that lost
everything and a restarted Home Assistant get every state again, the automation of docs/events.md
fires once per utterance and never on a restart, and ``--forget`` leaves nothing behind."""

from __future__ import annotations

import json
import time

import pytest
from support.broker import Broker, Subscriber, daemon_with_mqtt
from support.helpers import REPO, run_ser
from support.home_assistant import HomeAssistant
from support.sound_server import require_programs

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ravdess_dir")]

ANGRY = REPO / "examples" / "03-01-05-02-01-01-18.flac"  # the model: angry, 0.99
DEVICE = "speech_emotion_kitchen"  # Home Assistant's object ids follow the device's name
ENTITIES = {
    f"event.{DEVICE}_emotion",
    f"sensor.{DEVICE}_last_emotion",
    f"sensor.{DEVICE}_last_emotion_confidence",
    f"switch.{DEVICE}_listening",
    f"sensor.{DEVICE}_service_status",
    f"binary_sensor.{DEVICE}_microphone",
    f"sensor.{DEVICE}_dropped_events",
    f"sensor.{DEVICE}_dropped_audio",
}
FIRED = "counter.soft_light"  # what the documented automation's light counts


def device_states(states: dict) -> dict[str, str]:
    return {entity: states[entity]["state"] for entity in ENTITIES if entity in states}


def mqtt_trouble(log: str) -> list[str]:
    """Home Assistant's warnings and errors about MQTT or our entities (discovery, templates), but
    the broker's restart that the test itself makes."""
    return [
        line
        for line in log.splitlines()
        if (" WARNING " in line or " ERROR " in line)
        and ("mqtt" in line.lower() or DEVICE in line or "has no attribute" in line)
        and "The connection was lost" not in line
    ]


@pytest.fixture
def home(tmp_path, microphone):
    require_programs("mosquitto", "mosquitto_passwd")
    pytest.importorskip("paho.mqtt.client", reason="needs the mqtt extra (script/test installs it)")
    (tmp_path / "mosquitto").mkdir()
    broker = Broker(tmp_path / "mosquitto")
    broker.start()
    home_assistant = HomeAssistant(tmp_path / "home-assistant")
    home_assistant.start()
    home_assistant.onboard()
    home_assistant.add_mqtt(broker)
    yield home_assistant, broker
    home_assistant.stop()
    broker.stop()


def test_the_daemon_lives_in_home_assistant_through_restarts_pauses_and_forget(tmp_path, microphone, home):
    home_assistant, broker = home
    state_directory = tmp_path / "state"
    top = f'state_directory = "{state_directory}"\n'

    def start_daemon():
        return daemon_with_mqtt(tmp_path, microphone, broker, top=top, device_id="kitchen")

    def fired() -> int:
        return int(home_assistant.states()[FIRED]["state"])

    # Discovery: one device, its eight entities, available, and no MQTT warning in Home Assistant's log.
    service = start_daemon()
    states = home_assistant.wait_for(
        lambda s: set(device_states(s)) == ENTITIES and "unavailable" not in device_states(s).values(), what="the entities"
    )
    assert states[f"switch.{DEVICE}_listening"]["state"] == "on"
    assert states[f"sensor.{DEVICE}_service_status"]["state"] == "listening"
    assert states[f"binary_sensor.{DEVICE}_microphone"]["state"] == "on"
    assert states[f"sensor.{DEVICE}_service_status"]["attributes"]["options"][:3] == ["starting", "listening", "paused"]
    assert mqtt_trouble(home_assistant.log()) == []

    # A spoken clip fires the event entity and updates the sensors; the automation fires once.
    microphone.play(ANGRY)
    _, emotion, _ = service.next_event(type="emotion", timeout=10)
    assert emotion["emotion"] == "angry" and emotion["confidence"] > 0.6
    states = home_assistant.wait_for(lambda s: s[f"sensor.{DEVICE}_last_emotion"]["state"] == "angry", what="the last emotion")
    event = states[f"event.{DEVICE}_emotion"]["attributes"]
    assert event["event_type"] == "angry" and event["confidence"] == emotion["confidence"]
    assert event["start_time"].startswith(time.strftime("%Y-%m-%dT", time.gmtime(emotion["start"])))
    confidence = states[f"sensor.{DEVICE}_last_emotion_confidence"]
    assert float(confidence["state"]) == round(emotion["confidence"] * 100, 1)
    assert confidence["attributes"]["emotion"] == "angry" and "state_class" not in confidence["attributes"]
    home_assistant.wait_for(lambda s: s[FIRED]["state"] == "1", what="the automation")

    # The switch pauses: nothing is heard; the pause survives a restart of the daemon, which
    # leaves the entities unavailable meanwhile, and the automation does not fire on the restart.
    home_assistant.call("switch", "turn_off", {"entity_id": f"switch.{DEVICE}_listening"})
    service.next_event(status="paused", timeout=10)
    home_assistant.wait_for(lambda s: s[f"sensor.{DEVICE}_service_status"]["state"] == "paused", what="paused")
    microphone.play(ANGRY)
    assert service.no_event(3.0) == [], "an event while paused"
    assert service.stop() < 2.0
    home_assistant.wait_for(
        lambda s: set(device_states(s).values()) == {"unavailable"}, what="unavailable after the daemon stopped"
    )
    service = start_daemon()
    states = home_assistant.wait_for(
        lambda s: "unavailable" not in device_states(s).values(), what="the entities back after the daemon's restart"
    )
    assert states[f"switch.{DEVICE}_listening"]["state"] == "off"
    assert states[f"sensor.{DEVICE}_service_status"]["state"] == "paused"
    home_assistant.call("switch", "turn_on", {"entity_id": f"switch.{DEVICE}_listening"})
    service.next_event(status="resumed", timeout=10)
    home_assistant.wait_for(lambda s: s[f"switch.{DEVICE}_listening"]["state"] == "on", what="listening again")

    # A broker that restarts with nothing kept, then a Home Assistant restart: every entity has its
    # state again (the last emotion too, heard in the daemon's run before its restart), and the
    # automation has still fired only once. The event entity has no state to get back: Home
    # Assistant shows it `unknown` until the next event.
    broker.restart_forgetting()
    time.sleep(4)  # the daemon reconnects within reconnect_max_seconds and publishes everything again
    home_assistant.restart()
    with_state = ENTITIES - {f"event.{DEVICE}_emotion"}
    states = home_assistant.wait_for(
        lambda s: with_state <= set(s) and not {"unknown", "unavailable"} & {s[e]["state"] for e in with_state},
        timeout=60,
        what="every state after the broker's and Home Assistant's restarts",
    )
    assert states[f"sensor.{DEVICE}_last_emotion"]["state"] == "angry"
    assert states[f"switch.{DEVICE}_listening"]["state"] == "on"
    assert states[f"sensor.{DEVICE}_service_status"]["state"] == "listening"
    assert fired() == 1

    # The next utterance fires it again, once.
    microphone.play(ANGRY)
    service.next_event(type="emotion", timeout=10)
    home_assistant.wait_for(lambda s: s[FIRED]["state"] == "2", what="the automation on the second utterance")
    time.sleep(2)
    assert fired() == 2

    # --forget, after the daemon stops, removes the entities and leaves nothing on the broker.
    assert service.stop() < 2.0
    forgot = run_ser("daemon", "--config", str(tmp_path / "ser.toml"), "--forget")
    assert forgot.returncode == 0, forgot.stderr
    home_assistant.wait_for(lambda s: not set(device_states(s)), what="the entities removed")
    watcher = Subscriber(broker.port, "#", "test-what-is-left")
    time.sleep(1.5)
    left = [topic for topic, _, retained in list(watcher.messages.queue) if retained and "kitchen" in topic]
    watcher.close()
    assert left == []
    assert fired() == 2
    assert mqtt_trouble(home_assistant.log()) == [], json.dumps(mqtt_trouble(home_assistant.log()), indent=1)
