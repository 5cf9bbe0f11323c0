"""Settings of the listening daemon: capture, segmentation, MQTT and the service, in one place.

Model-side configuration (frontend, windowing, normalisation) lives in ``edge.config`` and travels
in the bundle's manifest; these are the device's own choices, read from a TOML file::

    device_id = "kitchen"
    model = "lstm-multilingual"

    [capture]
    device = "pulse"

    [segmenter]
    hangover_seconds = 0.4

    [mqtt]
    host = "broker.local"
    credentials_file = "/etc/ser/mqtt-credentials"

Every field has a default, so an empty file is a valid configuration.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from pathlib import Path

from edge.config import VARIANTS, check, checked_fields
from edge.errors import SettingsError

PCM_FORMATS = ("s16le", "s32le", "f32le")  # raw PCM on standard input, as arecord, parecord and pw-record write it


MICROPHONE, STANDARD_INPUT = "microphone", "-"
"""The inputs the daemon listens to (``[capture] input``): PyAudio's device, or raw PCM on standard input."""


@dataclass(frozen=True)
class CaptureSettings:
    """How audio is read: from the microphone (PyAudio), or raw PCM from standard input."""

    input: str = MICROPHONE
    """microphone (PyAudio), or "-": raw PCM from standard input (arecord, parecord, pw-record, a
    sidecar); the end of the input ends the service after the last utterance's event."""
    format: str = "s16le"
    """Sample format of raw PCM on standard input: s16le, s32le or f32le (little-endian)."""
    device: str | int | None = None
    """Input device: its index, its name or a unique part of it (see `ser devices`); None: the default input."""
    sample_rate: int | None = None
    """Capture rate in Hz; None: the device's default rate (16000 for standard input). Audio is
    resampled to the model's rate."""
    channels: int = 1
    """Channels to open; they are averaged to mono."""
    block_seconds: float = 0.2
    """Audio per block delivered by the device. Each block wakes the service once, and the wake-ups
    cost more than the sums: longer blocks cost less CPU, and an event may come up to a block later
    (docs/benchmarks.md has the figures). The voice activity detector still judges 16 ms at a time,
    with the same decisions whatever the block."""
    buffer_seconds: float = 5.0
    """Most audio held between capture and processing; blocks beyond it are dropped and counted."""
    stall_seconds: float = 2.0
    """No audio for this long means the microphone is lost."""
    retry_min_seconds: float = 0.5
    """First wait before reopening a lost microphone; doubles on each failure."""
    retry_max_seconds: float = 30.0
    """Longest wait between attempts to reopen the microphone."""


CLIP_MIN_SPEECH_SECONDS = 0.2
"""A clip holds speech when the segmenter finds an utterance in it with this much from its first
to its last speech block: a syllable (a few one-word corpus clips have little more)."""
CLIP_SPEECH_THRESHOLD = 0.6
"""The speech probability that starts an utterance in a clip, at most: a little below a room's, as
a clip may start with its speech, before the detector has a whole window of it."""


@dataclass(frozen=True)
class SegmenterSettings:
    """How voice activity detection cuts the stream into utterances."""

    threshold_db: float = -65.0
    """A 16 ms block is speech only if its level is above this, in dB relative to full scale (the
    quietest corpus recordings here, RAVDESS actors 9 and 20 speaking softly, peak at -54 dBFS)."""
    noise_margin_db: float = 7.0
    """... and this many dB above the room's background level (``floor_percentile``), to start an utterance."""
    hold_margin_db: float = 5.0
    """Once an utterance is open, a block keeps it going when it is this many dB above the
    background (and the detector finds speech in it, at ``hold_threshold``): a speaker's quieter syllables."""
    hold_level_db: float = 7.0
    """Once an utterance is open, a block this many dB above the background keeps it going even
    where the detector hears no speech: a sigh or a breath between the words."""
    floor_percentile: float = 40.0
    """The room's background level is this percentile of the block levels of the last
    ``floor_seconds`` (0: the quietest block). Other people talking dip now and then; the 40th
    percentile of 10 s is about their level, and a speaker's long sentence barely moves it."""
    floor_seconds: float = 10.0
    """How much of the stream the background level looks back on: a new steady noise (a
    television switched on) is the background after about 60 % of this."""
    detector: str = "speech-detector"
    """The speech detector (a shipped bundle's name or a bundle folder) that judges the blocks loud
    enough to be speech: dishes, a tap or a man miaowing are loud but not speech. "none": the
    level alone decides."""
    speech_threshold: float = 0.7
    """A loud enough block starts an utterance when the detector gives it at least this probability
    (0-1): higher rejects more noise and misses more soft speech."""
    hold_threshold: float = 0.3
    """Once an utterance is open, a block keeps it going from this probability on (at most
    ``speech_threshold``): a speaker's weaker syllables hold it, the start still needs clear speech."""
    min_seconds: float = 0.3
    """Utterances with less than this from their first to their last speech block (a block that
    could start one) are dropped; so are those too short for the model's input (pre-roll and
    hang-over count there)."""
    max_seconds: float = 10.0
    """Longer utterances are emitted in parts of at most this length."""
    hangover_seconds: float = 0.8
    """Silence that ends an utterance; shorter pauses stay inside it. The event follows this long
    after the speech ends."""
    preroll_seconds: float = 1.0
    """Audio kept from before the first speech block: the shipped models learnt from clips with
    about a second of room sound around the speech, and hear an utterance best with as much
    (docs/benchmarks.md, "The segmenter's pre-roll and hang-over")."""

    def for_a_clip(self) -> SegmenterSettings:
        """These settings for a clip heard on its own (a file, an array) instead of a room heard for
        a while: its quietest block is its background (a clip is mostly speech, so a percentile of
        its own blocks would be speech), a loud block is speech from ``CLIP_SPEECH_THRESHOLD`` on,
        and an utterance needs ``CLIP_MIN_SPEECH_SECONDS`` of speech blocks: the question is
        whether it holds speech at all, not where an utterance starts."""
        speech_threshold = min(self.speech_threshold, CLIP_SPEECH_THRESHOLD)
        return dataclasses.replace(
            self,
            floor_percentile=0.0,
            speech_threshold=speech_threshold,
            hold_threshold=min(self.hold_threshold, speech_threshold),
            min_seconds=min(self.min_seconds, CLIP_MIN_SPEECH_SECONDS),
        )


@dataclass(frozen=True)
class EventSettings:
    """Which emotion events go out (to stdout and MQTT alike), so automations fire on what matters."""

    min_confidence: float = 0.0
    """Below this confidence the event says ``uncertain`` instead of a label (its scores stay)."""
    labels: tuple[str, ...] | None = None
    """Only events with one of these emotions go out (``uncertain`` may be listed); None: all."""
    only_changes: bool = False
    """Only events whose emotion differs from the last one that went out."""
    cooldown_seconds: float = 0.0
    """After an event goes out, none for this many seconds (by the utterances' end times)."""


@dataclass(frozen=True)
class MqttSettings:
    """Where events are published besides stdout (extra ``mqtt``); off unless ``host`` is set."""

    host: str | None = None
    """Broker host name or address; None: no MQTT."""
    port: int = 1883
    """Broker port (8883 is usual with TLS)."""
    tls: bool = False
    """Connect with TLS, verifying the broker's certificate."""
    ca_file: str | None = None
    """CA certificate(s) for TLS; None: the system's."""
    credentials_file: str | None = None
    """File whose first line is ``username:password``; never on the command line."""
    qos: int = 1
    """MQTT quality of service for events: 0, 1 or 2."""
    keepalive_seconds: int = 30
    """Keep-alive interval; the broker publishes the last will after 1.5 times this without contact."""
    queue_size: int = 1000
    """Events held while the broker is away; the oldest are dropped (and counted) beyond it."""
    reconnect_min_seconds: float = 1.0
    """First wait before reconnecting; doubles on each failure."""
    reconnect_max_seconds: float = 60.0
    """Longest wait between reconnection attempts."""
    levels_seconds: float = 0.0
    """Every this many seconds, the input level, noise floor and speech share on ``<prefix>/<device>/levels``
    (as `ser levels` prints them), to tune ``threshold_db`` from afar; 0: never."""
    discovery: bool = True
    """Announce the device's entities to Home Assistant (MQTT discovery, edge.homeassistant)."""
    discovery_prefix: str = "homeassistant"
    """Home Assistant's discovery prefix; it says ``online`` on ``<prefix>/status`` when it (re)starts."""


MACHINE_ID = Path("/etc/machine-id")
APPLICATION_KEY = b"edge-ser device id v1"


def default_device_id(machine_id_file: Path = MACHINE_ID) -> str:
    """``ser-`` and 8 hex digits, stable for this installation and unique among the Pis of a house
    (which often share the host name ``raspberrypi``): an HMAC-SHA256 of systemd's machine id with
    a key of this application's, as machine-id(5) asks instead of exposing the id itself. Where
    there is no machine id (some containers), the host name."""
    try:
        machine_id = machine_id_file.read_text().strip()
    except OSError:
        machine_id = ""
    if not machine_id:
        import socket  # here, not at the top: `ser classify` reads this module and needs no socket (5 ms at start)

        return socket.gethostname()
    return "ser-" + hmac.new(APPLICATION_KEY, machine_id.encode(), hashlib.sha256).hexdigest()[:8]


@dataclass(frozen=True)
class DaemonSettings:
    """Everything `ser daemon` and `ser listen` run with."""

    device_id: str = field(default_factory=lambda: default_device_id())
    """Names this device in topics, payloads and the MQTT client id (default: ``default_device_id``)."""
    topic_prefix: str = "ser"
    """First topic level: events go to <prefix>/<device_id>/emotion and .../status."""
    model: str | None = None
    """A shipped bundle's name or a bundle folder; None: the default model."""
    runtime: str | None = None
    """TFLite interpreter: ai-edge-litert, tflite-runtime or tensorflow; None: the first installed."""
    variant: str | None = None
    """Model file: int8 or float32; None: the faster for this CPU if as accurate (edge.bundle.choose_variant)."""
    capture: CaptureSettings = field(default_factory=CaptureSettings)
    segmenter: SegmenterSettings = field(default_factory=SegmenterSettings)
    events: EventSettings = field(default_factory=EventSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    state_directory: str | None = field(default_factory=lambda: default_state_directory())
    """Where the service keeps what outlives a restart (a pause: ``edge.pause_file``); default:
    the one systemd gives the unit (StateDirectory=, $STATE_DIRECTORY); None: nothing is kept."""


def default_state_directory() -> str | None:
    """The first directory systemd's StateDirectory= gives the service, or None outside systemd."""
    return os.environ.get("STATE_DIRECTORY", "").split(":")[0] or None


SECTIONS = {"capture": CaptureSettings, "segmenter": SegmenterSettings, "events": EventSettings, "mqtt": MqttSettings}


def parse_settings(values: dict, where: str = "settings") -> DaemonSettings:
    """Daemon settings from a dict shaped like the TOML file: top-level keys and [sections]."""
    top = {key: value for key, value in values.items() if key not in SECTIONS}
    try:
        sections = {}
        for name, cls in SECTIONS.items():
            if name in values and not isinstance(values[name], dict):
                raise ValueError(f"{where}: [{name}] must be a table")
            sections[name] = cls(**checked_fields(cls, values.get(name, {}), f"{where} [{name}]", "setting"))
        settings = DaemonSettings(**checked_fields(DaemonSettings, top, where, "setting"), **sections)
    except ValueError as error:
        raise SettingsError(str(error)) from None
    check_settings(settings, where)
    return settings


def load_settings(path: str | Path | None) -> DaemonSettings:
    """Settings from a TOML file; None gives the defaults. Raises SettingsError naming the file."""
    if path is None:
        return DaemonSettings()
    import tomllib  # here, not at the top: `ser classify` reads this module and no TOML (4 ms at start)

    path = Path(path)
    try:
        values = tomllib.loads(path.read_text())
    except OSError as error:
        raise SettingsError(f"{path}: cannot read ({error.strerror})") from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(f"{path}: not valid TOML ({error})") from None
    return parse_settings(values, str(path))


def check_settings(settings: DaemonSettings, where: str) -> None:
    """Reject values that parse but make no sense, naming them (``edge.config.check``)."""
    segmenter, capture, mqtt, events = settings.segmenter, settings.capture, settings.mqtt, settings.events
    rules = [
        (segmenter.min_seconds > segmenter.max_seconds, "segmenter min_seconds", "is above max_seconds"),
        (segmenter.max_seconds <= 0 or segmenter.hangover_seconds <= 0, "segmenter lengths", "must be positive"),
        (segmenter.preroll_seconds < 0, "segmenter preroll_seconds", "must not be negative"),
        (not 0 < segmenter.speech_threshold <= 1, "segmenter speech_threshold", "must be above 0 and at most 1"),
        (not 0 <= segmenter.floor_percentile < 100, "segmenter floor_percentile", "must be from 0 up to 100"),
        (
            not 0 < segmenter.hold_threshold <= segmenter.speech_threshold,
            "segmenter hold_threshold",
            "must be above 0 and at most speech_threshold",
        ),
        (segmenter.floor_seconds <= 0, "segmenter floor_seconds", "must be above 0"),
        (not segmenter.detector, "segmenter detector", 'must name a speech detector bundle, or be "none"'),
        (capture.channels < 1, "capture channels", "must be at least 1"),
        (capture.input not in (MICROPHONE, STANDARD_INPUT), "capture input", "must be microphone or - (standard input)"),
        (capture.format not in PCM_FORMATS, "capture format", f"must be one of {', '.join(PCM_FORMATS)}"),
        (capture.sample_rate is not None and capture.sample_rate < 1, "capture sample_rate", "must be positive"),
        (
            capture.block_seconds <= 0 or capture.buffer_seconds < capture.block_seconds,
            "capture buffer_seconds",
            "must hold at least one block",
        ),
        (mqtt.qos not in (0, 1, 2), "mqtt qos", "must be 0, 1 or 2"),
        (not 0 <= events.min_confidence <= 1, "events min_confidence", "must be between 0 and 1"),
        (events.cooldown_seconds < 0, "events cooldown_seconds", "must not be negative"),
        (
            events.labels is not None and not all(isinstance(x, str) and x for x in events.labels),
            "events labels",
            "must be a list of emotion names",
        ),
        (settings.variant not in (None, *VARIANTS), "variant", f"must be {' or '.join(VARIANTS)}"),
        (mqtt.queue_size < 1, "mqtt queue_size", "must be at least 1"),
        (mqtt.levels_seconds < 0, "mqtt levels_seconds", "must not be negative"),
        (
            not settings.device_id or any(c in settings.device_id for c in "/+#"),
            "device_id",
            "must be non-empty and free of / + #",
        ),
    ]
    try:
        check(where, rules)
    except ValueError as error:
        raise SettingsError(str(error)) from None


def read_credentials(path: str | Path) -> tuple[str, str]:
    """(username, password) from the first line of a file, ``username:password``."""
    path = Path(path)
    try:
        line = next(iter(path.read_text().splitlines()), "")
    except OSError as error:
        raise SettingsError(f"{path}: cannot read MQTT credentials ({error.strerror})") from None
    username, colon, password = line.partition(":")
    if not colon or not username:
        raise SettingsError(f"{path}: MQTT credentials must be one line 'username:password'")
    return username, password


def with_overrides(settings: DaemonSettings, **overrides) -> DaemonSettings:
    """Settings with command-line overrides applied; keys are ``field`` or ``section.field``, None skips."""
    top, sections = {}, {name: {} for name in SECTIONS}
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.rpartition(".")
        (sections[section] if section else top)[name] = value
    replaced = {name: dataclasses.replace(getattr(settings, name), **values) for name, values in sections.items() if values}
    result = dataclasses.replace(settings, **top, **replaced)
    check_settings(result, "command line")
    return result
