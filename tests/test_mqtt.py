"""Events to a real mosquitto broker: the same as stdout, through a broker restart, with a retained
availability status and a last will."""

from __future__ import annotations

import json
import queue
import signal
import time
from datetime import UTC, datetime

import jinja2
import pytest
from support.broker import PASSWORD, USERNAME, Subscriber, daemon_with_mqtt
from support.helpers import REPO, run_ser
from support.service_process import ServiceProcess

CLIPS = sorted((REPO / "examples").glob("*.flac"))[:2]
pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("ravdess_dir")]


def test_mqtt_gets_the_stdout_events_survives_a_broker_restart_and_ends_offline(tmp_path, microphone, broker):
    subscriber = Subscriber(broker.port, "ser/mqtt/#", "test-subscriber", persistent=True)
    service = daemon_with_mqtt(tmp_path, microphone, broker)
    assert subscriber.next(topic_suffix="/availability")[1] == b"online"

    microphone.play(CLIPS[0])
    _, on_stdout, _ = service.next_event(type="emotion", timeout=5)
    topic, payload, _ = subscriber.next(topic_suffix="/emotion")
    assert (topic, json.loads(payload)) == ("ser/mqtt/emotion", on_stdout)

    broker.stop()
    microphone.play(CLIPS[1])
    _, while_away, _ = service.next_event(type="emotion", timeout=5)  # stdout goes on without the broker
    broker.start()
    topic, payload, _ = subscriber.next(topic_suffix="/emotion", timeout=15)  # queued, sent after reconnecting
    assert json.loads(payload) == while_away
    subscriber.close()

    assert service.stop() < 2.0 and service.process.returncode == 0
    sequences = [json.loads(line.split(" ", 1)[1])["sequence"] for line in service.lines]
    assert sequences == list(range(1, len(sequences) + 1)), "the stdout stream lost events"
    stopped = json.loads(service.lines[-1].split(" ", 1)[1])
    assert stopped["status"] == "stopped" and stopped["dropped_events"] == 0

    late = Subscriber(broker.port, "ser/mqtt/availability", "test-late")
    assert late.next()[1:] == (b"offline", True)
    late.close()


def test_the_last_will_marks_a_vanished_device_offline(tmp_path, microphone, broker):
    service = daemon_with_mqtt(tmp_path, microphone, broker)
    watcher = Subscriber(broker.port, "ser/mqtt/availability", "test-watcher")
    assert watcher.next()[1:] == (b"online", True)
    service.signal(signal.SIGKILL)
    assert watcher.next()[1] == b"offline"
    watcher.close()
    late = Subscriber(broker.port, "ser/mqtt/availability", "test-late")
    assert late.next()[1:] == (b"offline", True)
    late.close()


def test_events_reach_the_broker_over_tls_with_a_verified_certificate(tmp_path, microphone, broker):
    subscriber = Subscriber(broker.port, "ser/mqtt/#", "test-tls-subscriber")
    service = daemon_with_mqtt(tmp_path, microphone, broker, tls=True)
    assert subscriber.next(topic_suffix="/availability")[1] == b"online"
    microphone.play(CLIPS[0])
    _, on_stdout, _ = service.next_event(type="emotion", timeout=5)
    assert json.loads(subscriber.next(topic_suffix="/emotion")[1]) == on_stdout
    subscriber.close()
    assert service.stop() < 2.0


def test_a_broker_whose_certificate_does_not_verify_gets_nothing_and_stdout_goes_on(tmp_path, microphone, broker):
    subscriber = Subscriber(broker.port, "ser/mqtt/#", "test-untrusted")
    credentials = tmp_path / "mqtt-credentials"
    credentials.write_text(f"{USERNAME}:{PASSWORD}\n")
    config = tmp_path / "ser.toml"
    config.write_text(
        f'device_id = "mqtt"\n[mqtt]\nhost = "localhost"\nport = {broker.tls_port}\ntls = true\n'
        f'credentials_file = "{credentials}"\n'
    )  # the system CAs: the test CA is not among them
    service = ServiceProcess("--config", str(config), env=microphone.env, log_path=tmp_path / "daemon.log")
    service.next_event(status="microphone_open")
    microphone.play(CLIPS[0])
    assert service.next_event(type="emotion", timeout=5)[1]["emotion"]
    with pytest.raises(AssertionError, match="no MQTT message"):
        subscriber.next(timeout=2.0)
    subscriber.close()
    assert service.stop() < 2.0 and service.process.returncode == 0
    assert "certificate verify failed" in service.log()


def test_the_listening_switch_pauses_and_resumes_from_mqtt(tmp_path, microphone, broker):
    subscriber = Subscriber(broker.port, "ser/mqtt/#", "test-switch")
    service = daemon_with_mqtt(tmp_path, microphone, broker)
    assert subscriber.next(topic_suffix="/listening")[1:] == (b"ON", False)  # the state, retained for late readers
    subscriber.client.publish("ser/mqtt/listening/set", "OFF", qos=1)
    service.next_event(status="paused", timeout=5)
    assert subscriber.next(topic_suffix="/listening")[1] == b"OFF"
    microphone.play(CLIPS[0])
    assert service.no_event(2.0) == [], "an event while paused"
    subscriber.client.publish("ser/mqtt/listening/set", "ON", qos=1)
    service.next_event(status="resumed", timeout=5)
    assert subscriber.next(topic_suffix="/listening")[1] == b"ON"
    subscriber.client.publish("ser/mqtt/listening/set", "ON", qos=1)  # already on: answered all the same
    assert subscriber.next(topic_suffix="/listening", timeout=5)[1] == b"ON"
    microphone.play(CLIPS[1])
    assert service.next_event(type="emotion", timeout=5)[1]["emotion"]
    late = Subscriber(broker.port, "ser/mqtt/listening", "test-late-switch")
    assert late.next()[1:] == (b"ON", True)
    late.close()
    subscriber.close()
    assert service.stop() < 2.0


# What Home Assistant's MQTT integration requires of each kind of entity (its event, sensor,
# binary_sensor and switch documentation), beyond the device block and availability all share.
REQUIRED = {
    "event": {"state_topic": str, "event_types": list},
    "sensor": {"state_topic": str},
    "binary_sensor": {"state_topic": str},
    "switch": {"command_topic": str, "state_topic": str},
}
ENTITIES = {
    ("event", "emotion"),
    ("sensor", "last_emotion"),
    ("sensor", "confidence"),
    ("switch", "listening"),
    ("sensor", "status"),
    ("binary_sensor", "microphone"),
    ("sensor", "dropped_events"),
    ("sensor", "dropped_audio"),
}
LABELS = ["neutral", "happy", "sad", "angry", "fearful", "disgust", "surprised", "uncertain"]


def collect(subscriber: Subscriber, seconds: float, suffix: str = "") -> dict:
    """topic → (payload bytes, retained) of what arrives within ``seconds`` on topics ending in ``suffix``."""
    seen, deadline = {}, time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            topic, payload, retained = subscriber.messages.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if topic.endswith(suffix):
            seen[topic] = (payload, retained)
    return seen


def heard_by_a_new_subscriber(broker, topic: str, seconds: float = 2.0, suffix: str = "") -> dict:
    """``collect`` for a subscriber that arrives now: what the broker retained (and whatever else comes)."""
    subscriber = Subscriber(broker.port, topic, f"test-new-{time.monotonic_ns()}")
    try:
        return collect(subscriber, seconds, suffix)
    finally:
        subscriber.close()


def render(template: str, payload: dict) -> str:
    """A template as Home Assistant renders it on a message (Jinja2, value_json, its to_json and
    timestamp_utc filters)."""
    environment = jinja2.Environment()
    environment.filters["to_json"] = json.dumps
    environment.filters["timestamp_utc"] = lambda value: datetime.fromtimestamp(value, UTC).isoformat()
    return environment.from_string(template).render(value_json=payload, value=json.dumps(payload))


def test_home_assistant_discovers_the_device_fires_events_and_forgets_it(tmp_path, microphone, broker):
    service = daemon_with_mqtt(tmp_path, microphone, broker)
    home_assistant = Subscriber(broker.port, "homeassistant/#", "test-home-assistant")
    configs = collect(home_assistant, 2.0, "/config")
    assert {tuple(topic.split("/")[1:4:2]) for topic in configs} == ENTITIES
    parsed = {}
    for topic, (payload, retained) in configs.items():
        component, node, name, last = topic.split("/")[1:]
        config = json.loads(payload)
        assert retained and node == "mqtt" and last == "config", topic
        assert all(isinstance(config.get(key), kind) for key, kind in REQUIRED[component].items()), (topic, config)
        assert config["unique_id"] == f"edge_ser_mqtt_{name}" and config["availability_topic"] == "ser/mqtt/availability"
        assert config["device"] == {
            "identifiers": ["edge_ser_mqtt"],
            "name": "Speech emotion mqtt",
            "manufacturer": "edge-ser",
            "model": "lstm-multilingual",
            "sw_version": "0.1.0",
        }
        parsed[(component, name)] = config
    assert parsed[("event", "emotion")]["event_types"] == LABELS
    assert (
        parsed[("sensor", "last_emotion")]["device_class"] == "enum" and parsed[("sensor", "last_emotion")]["options"] == LABELS
    )
    assert {n for (_, n), c in parsed.items() if c.get("entity_category") == "diagnostic"} == {
        "status",
        "microphone",
        "dropped_events",
        "dropped_audio",
    }

    # A played clip fires the event entity and, through the retained last_emotion, the sensors.
    state = Subscriber(broker.port, "ser/mqtt/#", "test-states")
    microphone.play(CLIPS[1])
    _, emotion, _ = service.next_event(type="emotion", timeout=5)
    fired = json.loads(render(parsed[("event", "emotion")]["value_template"], emotion))
    assert fired["event_type"] == emotion["emotion"] and set(fired) >= {"confidence", "scores", "start", "end", "duration"}
    assert datetime.fromisoformat(fired["start_time"]).timestamp() == pytest.approx(emotion["start"], abs=1e-3)
    assert datetime.fromisoformat(fired["end_time"]).timestamp() == pytest.approx(emotion["end"], abs=1e-3)
    assert json.loads(state.next(topic_suffix="/emotion")[1]) == emotion
    assert json.loads(state.next(topic_suffix="/last_emotion")[1]) == emotion
    assert render(parsed[("sensor", "last_emotion")]["value_template"], emotion) == emotion["emotion"]
    confidence = parsed[("sensor", "confidence")]
    assert float(render(confidence["value_template"], emotion)) == round(emotion["confidence"] * 100, 1)
    assert "state_class" not in confidence  # a value per utterance: no long-term statistics
    uncertain = {**emotion, "emotion": "uncertain"}  # relabelled by min_confidence: whose confidence it is
    most_likely = max(emotion["scores"], key=emotion["scores"].get)
    assert json.loads(render(confidence["json_attributes_template"], uncertain)) == {"emotion": most_likely}
    assert "icon" not in parsed[("switch", "listening")]  # Home Assistant's own icon tells on from off
    state.close()
    retained = {
        topic: json.loads(payload)
        for topic, (payload, was_retained) in heard_by_a_new_subscriber(  # what Home Assistant reads after its restart
            broker, "ser/mqtt/+", 1.5
        ).items()
        if was_retained and payload[:1] == b"{"
    }
    assert retained["ser/mqtt/last_emotion"] == emotion
    assert render(parsed[("binary_sensor", "microphone")]["value_template"], retained["ser/mqtt/state"]) == "ON"
    status = parsed[("sensor", "status")]
    assert status["device_class"] == "enum" and status["options"] == [
        "starting",
        "listening",
        "paused",
        "no microphone",
        "stopped",
    ]
    assert render(status["value_template"], retained["ser/mqtt/state"]) == "listening"
    assert json.loads(render(status["json_attributes_template"], retained["ser/mqtt/state"])) == {"last_event": "microphone_open"}

    # Home Assistant restarts: it says online, and gets every config again.
    home_assistant.client.publish("homeassistant/status", "online", qos=1)
    again = collect(home_assistant, 2.0, "/config")
    assert {t: json.loads(p) for t, (p, _) in again.items()} == {t: json.loads(p) for t, (p, _) in configs.items()}
    home_assistant.close()

    # The daemon restarts: the same unique ids. Then --forget empties every retained config.
    assert service.stop() < 2.0
    service = daemon_with_mqtt(tmp_path, microphone, broker)
    restarted = heard_by_a_new_subscriber(broker, "homeassistant/#", suffix="/config")
    assert {t: json.loads(p)["unique_id"] for t, (p, _) in restarted.items()} == {
        t: json.loads(p)["unique_id"] for t, (p, _) in configs.items()
    }
    refused = run_ser("daemon", "--config", str(tmp_path / "ser.toml"), "--forget")
    assert refused.returncode != 0 and "device mqtt is online" in refused.stderr and "stop its daemon first" in refused.stderr
    assert len(heard_by_a_new_subscriber(broker, "homeassistant/#", suffix="/config")) == 8  # untouched
    assert "lost" not in (tmp_path / "daemon.log").read_text()  # and the daemon kept its connection
    assert service.stop() < 2.0
    forgot = run_ser("daemon", "--config", str(tmp_path / "ser.toml"), "--forget")
    assert forgot.returncode == 0 and "removed 8 Home Assistant entities and the retained state of mqtt" in forgot.stdout
    assert heard_by_a_new_subscriber(broker, "homeassistant/#", suffix="/config") == {}
    assert heard_by_a_new_subscriber(broker, "ser/mqtt/#", 1.5) == {}  # availability too: nothing of the device is left
    log = (tmp_path / "daemon.log").read_text()
    assert "WARNING" not in log and "MQTT disconnected" in log, log[-2000:]  # a stop is not a lost connection


def retained_now(broker, topic: str = "#", seconds: float = 1.5) -> dict:
    """topic → payload of every retained message a new subscriber to ``topic`` gets (live messages
    that arrive meanwhile are left out)."""
    subscriber, retained = Subscriber(broker.port, topic, f"test-retained-{time.monotonic_ns()}"), {}
    deadline = time.monotonic() + seconds
    try:
        while (left := deadline - time.monotonic()) > 0:
            try:
                message_topic, payload, was_retained = subscriber.messages.get(timeout=left)
            except queue.Empty:
                break
            if was_retained:
                retained[message_topic] = payload
    finally:
        subscriber.close()
    return retained


def test_a_broker_that_lost_everything_gets_it_all_again_and_a_pause_outlives_the_daemon(tmp_path, microphone, broker):
    state_directory = tmp_path / "state"
    service = daemon_with_mqtt(tmp_path, microphone, broker, top=f'state_directory = "{state_directory}"\n')
    microphone.play(CLIPS[1])
    service.next_event(type="emotion", timeout=5)
    switch = Subscriber(broker.port, "ser/mqtt/listening", "test-pause")
    switch.client.publish("ser/mqtt/listening/set", "OFF", qos=1)
    service.next_event(status="paused", timeout=5)
    switch.close()
    time.sleep(0.5)  # the pause's retained state goes to the broker just after its line to stdout
    before = retained_now(broker)
    assert {"ser/mqtt/availability", "ser/mqtt/listening", "ser/mqtt/state", "ser/mqtt/last_emotion"} <= set(before)
    assert sum(topic.startswith("homeassistant/") for topic in before) == 8

    # A broker without persistence restarts: nothing retained is left, until the daemon reconnects.
    broker.restart_forgetting()
    deadline = time.monotonic() + 15
    while (after := retained_now(broker)).get("ser/mqtt/availability") != b"online" and time.monotonic() < deadline:
        pass
    assert after == before  # every config, the switch, the last emotion and the state: as they were

    # The daemon restarts: still paused, and says so; the retained state says so to Home Assistant.
    assert service.stop() < 2.0
    assert (state_directory / "paused").exists()
    service = daemon_with_mqtt(tmp_path, microphone, broker, top=f'state_directory = "{state_directory}"\n')
    statuses = [json.loads(line.split(" ", 1)[1]).get("status") for line in service.lines]
    assert statuses[:3] == ["started", "model_loaded", "paused"], service.lines
    retained = retained_now(broker, "ser/mqtt/+")
    assert retained["ser/mqtt/listening"] == b"OFF" and json.loads(retained["ser/mqtt/state"])["service"] == "paused"
    microphone.play(CLIPS[0])
    assert service.no_event(2.0) == [], "an event while paused"
    assert service.stop() < 2.0


def test_levels_go_to_mqtt_at_a_low_rate_when_asked(tmp_path, microphone, broker):
    subscriber = Subscriber(broker.port, "ser/mqtt/levels", "test-levels")
    service = daemon_with_mqtt(tmp_path, microphone, broker, extra="levels_seconds = 1.0\n")
    quiet = json.loads(subscriber.next(timeout=5)[1])
    assert set(quiet) == {"level_db", "floor_db", "threshold_db", "speech", "speech_probability"} and quiet["speech"] == 0.0
    microphone.play(CLIPS[1])
    heard = [json.loads(subscriber.next(timeout=5)[1]) for _ in range(3)]
    assert any(h["speech"] > 0 and h["level_db"] > h["threshold_db"] and h["speech_probability"] >= 0.5 for h in heard)
    subscriber.close()
    assert service.stop() < 2.0
