"""Pieces of the daemon that are specified without a sound server or broker: choosing the input
device, the bounded capture buffer, the bounded MQTT queue while the broker is away and the
retained state that the status events make."""

from __future__ import annotations

import pytest

from edge.audio import pcm16_to_float
from edge.microphone import Backoff, InputDevice, Microphone, MicrophoneError, choose_device
from edge.settings import CaptureSettings, MqttSettings

DEVICES = [
    InputDevice(0, "USB PnP Sound Device: Audio (hw:1,0)", 1, 48000, "ALSA", False),
    InputDevice(2, "pulse", 32, 44100, "ALSA", False),
    InputDevice(3, "default", 32, 44100, "ALSA", True),
]


@pytest.mark.parametrize("wanted, index", [(None, 3), (2, 2), ("2", 2), ("pulse", 2), ("usb pnp", 0), ("default", 3)])
def test_a_device_is_chosen_by_index_name_or_unique_part_of_a_name(wanted, index):
    assert choose_device(DEVICES, wanted).index == index


@pytest.mark.parametrize(
    "wanted, message", [("a", "2 input devices match"), ("hdmi", "no input device matches"), (7, "no input device matches")]
)
def test_an_unknown_or_ambiguous_device_is_one_clear_error(wanted, message):
    with pytest.raises(MicrophoneError, match=message):
        choose_device(DEVICES, wanted)
    with pytest.raises(MicrophoneError, match="no audio input device"):
        choose_device([], None)


def test_the_capture_buffer_is_bounded_and_counts_what_it_drops():
    microphone = Microphone(CaptureSettings(block_seconds=0.032, buffer_seconds=0.1), 16000)
    microphone.rate = 16000
    import queue

    microphone._queue = queue.Queue(maxsize=3)
    for _ in range(5):
        microphone._on_audio(b"\0\0" * 512, 512, None, 0)
    assert microphone._queue.qsize() == 3 and microphone.dropped_seconds == pytest.approx(2 * 512 / 16000)


def test_pcm16_is_scaled_like_soundfile():
    samples = pcm16_to_float(b"\x00\x80\xff\x7f\x00\x00\x00\x40", 2)
    assert samples.tolist() == [[-1.0, 32767 / 32768], [0.0, 0.5]]


def test_mqtt_keeps_at_most_queue_size_events_while_the_broker_is_away():
    pytest.importorskip("paho.mqtt.client", reason="needs the mqtt extra")
    from edge.mqtt import MqttPublisher

    publisher = MqttPublisher(MqttSettings(host="127.0.0.1", port=9, queue_size=3), "ser/x/availability", "test")
    for sequence in range(1, 6):
        publisher.publish("ser/x/emotion", {"sequence": sequence})
    assert publisher.dropped == 2
    assert [message[1] for message in publisher._pending] == [b'{"sequence":3}', b'{"sequence":4}', b'{"sequence":5}']


def test_the_retained_state_follows_the_status_events_while_events_queue_for_the_broker():
    pytest.importorskip("paho.mqtt.client", reason="needs the mqtt extra")
    import json

    from edge.events import EventStamper, StatusEvent
    from edge.mqtt_device import MqttDevice
    from edge.settings import DaemonSettings

    settings = DaemonSettings(device_id="hall", mqtt=MqttSettings(host="127.0.0.1", port=9, discovery=False))
    commands = []
    device, stamper = MqttDevice(settings, on_listening=commands.append), EventStamper("hall")
    publisher, published = device._publisher, []
    publish = publisher.publish
    publisher.publish = lambda topic, payload, retain=False: published.append((topic, payload, retain)) or publish(
        topic, payload, retain
    )
    for status in ("started", "microphone_open", "paused", "microphone_lost", "resumed", "microphone_back", "stopped"):
        device.publish(*stamper.stamp(StatusEvent(status)))
    states = [(m["service"], m["status"], m["microphone"], m["listening"]) for t, m, retain in published if t == "ser/hall/state"]
    assert states == [
        ("starting", "started", "closed", "ON"),
        ("listening", "microphone_open", "open", "ON"),
        ("paused", "paused", "open", "OFF"),
        ("paused", "microphone_lost", "lost", "OFF"),  # paused says more than the missing microphone
        ("no microphone", "resumed", "lost", "ON"),
        ("listening", "microphone_back", "open", "ON"),
        ("stopped", "stopped", "closed", "ON"),
    ]
    assert [m for t, m, retain in published if t == "ser/hall/listening" and retain] == ["OFF", "ON"]
    # The broker is away: each retained topic keeps its last message for the connection, the
    # events queue in order.
    assert json.loads(publisher._retained["ser/hall/state"])["status"] == "stopped"
    assert publisher._retained["ser/hall/listening"] == b"ON"
    assert [json.loads(m)["sequence"] for t, m in publisher._pending if t == "ser/hall/status"] == list(range(1, 8))
    assert all(t == "ser/hall/status" for t, _ in publisher._pending)

    device._on_listening_command(" off ")  # the switch's commands, as Home Assistant sends them
    published.clear()
    device._on_listening_command("ON")  # already listening: answered with the state all the same
    assert published == [("ser/hall/listening", "ON", True)]
    device._on_listening_command("maybe")  # ignored, with a warning
    assert commands == [False, True]


def test_reopening_backs_off_doubling_to_a_ceiling_and_starts_over_after_a_success(monkeypatch):
    now = [100.0]
    monkeypatch.setattr("edge.microphone.time.monotonic", lambda: now[0])
    backoff = Backoff(first_seconds=0.5, longest_seconds=3.0)
    assert backoff.wait_seconds() == 0  # the first attempt is at once
    assert [backoff.failed() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert backoff.wait_seconds() == 3.0
    now[0] += 2.0
    assert backoff.wait_seconds() == 1.0
    backoff.reset()  # opened (or lost after a success): the next attempt is at once, the next wait short
    assert backoff.wait_seconds() == 0 and backoff.failed() == 0.5
