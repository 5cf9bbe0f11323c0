"""Events to a real mosquitto broker: the same as stdout, through a broker restart, with a retained
availability status and a last will."""

from __future__ import annotations

import json
import signal

import pytest
from broker import PASSWORD, USERNAME, Broker, Subscriber
from conftest import REPO
from service_process import ServiceProcess
from sound_server import VirtualMicrophone, require_programs

CLIPS = sorted((REPO / "examples").glob("*.flac"))[:2]
pytestmark = pytest.mark.usefixtures("ravdess_dir")


@pytest.fixture
def microphone(tmp_path_factory):
    require_programs("pulseaudio", "pacat", "paplay", "pactl")
    mic = VirtualMicrophone(tmp_path_factory.mktemp("pulse"))
    mic.start()
    yield mic
    mic.kill()


@pytest.fixture
def broker(tmp_path_factory):
    require_programs("mosquitto", "mosquitto_passwd")
    pytest.importorskip("paho.mqtt.client", reason="needs the mqtt extra (script/test installs it)")
    server = Broker(tmp_path_factory.mktemp("mosquitto"))
    server.start()
    yield server
    server.stop()


def daemon_with_mqtt(tmp_path, microphone, broker, tls: bool = False) -> ServiceProcess:
    credentials = tmp_path / "mqtt-credentials"
    credentials.write_text(f"{USERNAME}:{PASSWORD}\n")
    config = tmp_path / "ser.toml"
    where = f'host = "localhost"\nport = {broker.tls_port}\ntls = true\nca_file = "{broker.ca_file}"\n' if tls else \
        f'host = "127.0.0.1"\nport = {broker.port}\n'  # fmt: skip
    config.write_text(f'device_id = "mqtt"\n[mqtt]\n{where}credentials_file = "{credentials}"\nreconnect_max_seconds = 2\n')
    service = ServiceProcess("--config", str(config), env=microphone.env, log_path=tmp_path / "daemon.log")
    service.next_event(status="microphone_open")
    return service


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
    config.write_text(f'device_id = "mqtt"\n[mqtt]\nhost = "localhost"\nport = {broker.tls_port}\ntls = true\n'
                      f'credentials_file = "{credentials}"\n')  # the system CAs: the test CA is not among them
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
    microphone.play(CLIPS[1])
    assert service.next_event(type="emotion", timeout=5)[1]["emotion"]
    late = Subscriber(broker.port, "ser/mqtt/listening", "test-late-switch")
    assert late.next()[1:] == (b"ON", True)
    late.close()
    subscriber.close()
    assert service.stop() < 2.0
