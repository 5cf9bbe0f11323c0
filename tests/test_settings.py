"""Daemon settings: a TOML file with typed sections, command-line overrides, clear errors."""

from __future__ import annotations

import json
import re
import socket

import pytest

from edge.events import EmotionEvent, EventStamper, StatusEvent, StdoutSink, event_line
from edge.settings import (
    MACHINE_ID,
    DaemonSettings,
    SettingsError,
    default_device_id,
    load_settings,
    read_credentials,
    with_overrides,
)

EXAMPLE = "firmware_scripts/ser.toml"


def test_an_empty_file_gives_the_defaults(tmp_path):
    path = tmp_path / "ser.toml"
    path.write_text("")
    assert load_settings(path) == DaemonSettings()


def test_the_shipped_example_config_parses(tmp_path):
    from support.helpers import REPO

    settings = load_settings(REPO / EXAMPLE)
    assert settings.mqtt.host is None and settings.capture.device is None


def test_the_example_config_shows_every_setting_with_its_default():
    """Each key of each section is in the shipped ser.toml, commented out with its default value."""
    import dataclasses
    import tomllib

    from support.helpers import REPO

    from edge.settings import SECTIONS

    lines = (REPO / EXAMPLE).read_text().splitlines()
    shown, section = {}, ""
    for line in lines:
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif line.startswith("# ") and " = " in line.split("#")[1]:
            key_value = line[2:].split("  #")[0].strip()
            key = key_value.split(" = ")[0]
            if key.isidentifier():
                shown[(section, key)] = tomllib.loads(key_value)[key]
    for name, cls in SECTIONS.items():
        for field in dataclasses.fields(cls):
            assert (name, field.name) in shown, f"[{name}] {field.name} is not in {EXAMPLE}"
            default = field.default if field.default is not dataclasses.MISSING else None
            if default is not None and not isinstance(default, tuple):
                assert shown[(name, field.name)] == default, f"[{name}] {field.name}: {EXAMPLE} shows another value"


def test_sections_and_types_are_read(tmp_path):
    path = tmp_path / "ser.toml"
    path.write_text(
        'device_id = "kitchen"\nmodel = "gru-multilingual"\n[capture]\ndevice = 3\nchannels = 2\n'
        '[segmenter]\nhangover_seconds = 1\n[mqtt]\nhost = "broker"\nqos = 2\n'
    )
    settings = load_settings(path)
    assert (settings.device_id, settings.model, settings.capture.device, settings.capture.channels) == (
        "kitchen",
        "gru-multilingual",
        3,
        2,
    )
    assert settings.segmenter.hangover_seconds == 1.0 and isinstance(settings.segmenter.hangover_seconds, float)
    assert (settings.mqtt.host, settings.mqtt.qos) == ("broker", 2)


@pytest.mark.parametrize(
    "text, message",
    [
        ("colour = 1\n", "unknown setting(s) colour"),
        ("[capture]\nrate = 16000\n", "[capture]: unknown setting(s) rate"),
        ('[mqtt]\nport = "1883"\n', "port must be int"),
        ("[segmenter]\nmin_seconds = 20.0\n", "min_seconds is above max_seconds"),
        ("[segmenter]\nhold_threshold = 0.8\n", "hold_threshold must be above 0 and at most speech_threshold"),
        ("[segmenter]\nfloor_seconds = 0.0\n", "floor_seconds must be above 0"),
        ('device_id = "a/b"\n', "device_id must be non-empty and free of / + #"),
        ("[mqtt]\nqos = 3\n", "qos must be 0, 1 or 2"),
        ("mqtt = 1\n", "[mqtt] must be a table"),
        ("this is not toml", "not valid TOML"),
    ],
)
def test_a_bad_file_is_one_error_naming_the_file_and_the_setting(tmp_path, text, message):
    path = tmp_path / "ser.toml"
    path.write_text(text)
    with pytest.raises(SettingsError) as error:
        load_settings(path)
    assert str(path) in str(error.value) and message in str(error.value)


def test_a_missing_file_is_one_error(tmp_path):
    with pytest.raises(SettingsError, match="cannot read"):
        load_settings(tmp_path / "nope.toml")


def test_command_line_overrides_replace_single_fields():
    settings = with_overrides(
        DaemonSettings(), device_id="hall", **{"capture.device": "pulse", "mqtt.port": 1884, "segmenter.hangover_seconds": None}
    )
    assert (settings.device_id, settings.capture.device, settings.mqtt.port) == ("hall", "pulse", 1884)
    assert settings.segmenter == DaemonSettings().segmenter
    with pytest.raises(SettingsError, match="command line: segmenter min_seconds"):
        with_overrides(DaemonSettings(), **{"segmenter.min_seconds": 99.0})


def test_credentials_come_from_a_file(tmp_path):
    path = tmp_path / "credentials"
    path.write_text("sensor:s3cr:et\n")
    assert read_credentials(path) == ("sensor", "s3cr:et")
    path.write_text("no colon here\n")
    with pytest.raises(SettingsError, match="username:password"):
        read_credentials(path)


def test_an_event_is_one_line_topic_space_json_with_sequence_and_no_audio(capsys):
    stamper = EventStamper("kitchen")
    sink = StdoutSink()
    event = EmotionEvent(
        "angry", 0.61234567, {"angry": 0.61234567, "sad": 0.38765433}, 1.7e9, 1.7e9 + 2.5, 2.5, 1, "lstm-multilingual", "ab" * 32
    )
    sink.publish(*stamper.stamp(StatusEvent("started")))
    sink.publish(*stamper.stamp(event))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["ser/kitchen/status", "ser/kitchen/emotion"]
    payloads = [json.loads(line.split(" ", 1)[1]) for line in lines]
    assert [p["sequence"] for p in payloads] == [1, 2]
    assert payloads[1] == {
        "schema": 1,
        "type": "emotion",
        "device_id": "kitchen",
        "sequence": 2,
        "time": payloads[1]["time"],
        "emotion": "angry",
        "confidence": 0.6123,
        "scores": {"angry": 0.6123, "sad": 0.3877},
        "start": 1.7e9,
        "end": 1.7e9 + 2.5,
        "duration": 2.5,
        "part": 1,
        "model": "lstm-multilingual",
        "model_sha256": "ab" * 32,
    }
    assert event_line("t", {"a": 1}) == 't {"a":1}'


def test_unknown_statuses_are_refused():
    with pytest.raises(ValueError):
        StatusEvent("exploded")


def test_the_default_device_id_is_a_keyed_hash_of_the_machine_id_stable_and_unique(tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    first.write_text("3d1219c7c4c5404aaa1f6d2a48adfda4\n")
    second.write_text("0f5e9a1c2b3d4e5f60718293a4b5c6d7\n")
    device_id = default_device_id(first)
    assert re.fullmatch(r"ser-[0-9a-f]{8}", device_id)
    assert device_id == default_device_id(first) != default_device_id(second)
    assert "3d1219c7" not in device_id  # the machine id itself is not exposed
    assert default_device_id(tmp_path / "missing") == socket.gethostname()
    if MACHINE_ID.is_file():
        assert DaemonSettings().device_id == default_device_id()


def test_event_filters_come_from_the_events_table(tmp_path):
    path = tmp_path / "ser.toml"
    path.write_text(
        '[events]\nmin_confidence = 0.6\nlabels = ["angry", "uncertain"]\nonly_changes = true\ncooldown_seconds = 30\n'
    )
    events = load_settings(path).events
    assert (events.min_confidence, events.labels, events.only_changes, events.cooldown_seconds) == (
        0.6,
        ("angry", "uncertain"),
        True,
        30.0,
    )
    for bad, message in [
        ("min_confidence = 1.5", "min_confidence must be between 0 and 1"),
        ("labels = [1, 2]", "labels must be a list of emotion names"),
        ("cooldown_seconds = -1", "cooldown_seconds must not be negative"),
    ]:
        path.write_text(f"[events]\n{bad}\n")
        with pytest.raises(SettingsError, match=message):
            load_settings(path)
