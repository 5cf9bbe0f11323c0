"""What the ``ser`` commands share: the command group, the model options, the settings and logging
options of the commands that listen, and the service runner."""

from __future__ import annotations

from pathlib import Path

from edge import process

process.tune()  # before numpy loads

import click

from edge.config import DEFAULT_MODEL, VARIANTS
from edge.errors import SerError
from edge.runtime import RUNTIME_NAMES


@click.group()
@click.version_option(package_name="edge-ser")
def main():
    """Speech emotion recognition on the device."""


def expand_inputs(paths: tuple[Path, ...]) -> list[Path]:
    """Files as given, and the audio files (by suffix) inside folders, recursively and sorted."""
    from edge.audio import AUDIO_SUFFIXES

    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES))
        else:
            files.append(path)
    return files


def _load(model: str | None, runtime: str | None, variant: str | None):
    from edge.bundle import load_bundle

    try:
        return load_bundle(model, runtime=runtime, variant=variant)
    except SerError as error:
        raise click.ClickException(str(error)) from None


model_option = click.option(
    "--model",
    "-m",
    default=None,
    metavar="NAME|DIR",
    help=f"A shipped bundle's name or a bundle folder (default: {DEFAULT_MODEL}).",
)
variant_option = click.option(
    "--variant",
    type=click.Choice(VARIANTS),
    default=None,
    help="Model file to run (default: the faster on this CPU, float32 only if as accurate).",
)
runtime_option = click.option(
    "--runtime",
    type=click.Choice(RUNTIME_NAMES),
    default=None,
    help="TFLite interpreter (default: the first installed, in that order).",
)


# Command-line overrides of the TOML settings: (option, settings key, type, help).
OVERRIDES = [
    ("--input", "capture.input", str, "microphone, or - to read raw PCM from standard input (arecord, parecord, ...)."),
    ("--format", "capture.format", str, "Raw PCM format on standard input: s16le, s32le or f32le (default s16le)."),
    ("--device", "capture.device", str, "Input device index or name (see `ser devices`)."),
    ("--rate", "capture.sample_rate", int, "Capture rate in Hz (default: the device's; 16000 for standard input)."),
    ("--channels", "capture.channels", int, "Channels to open or read (averaged to mono)."),
    ("--device-id", "device_id", str, "Device name in topics and payloads (default: ser- and a keyed hash of the machine id)."),
    ("--hangover", "segmenter.hangover_seconds", float, "Seconds of silence that end an utterance."),
    ("--min-seconds", "segmenter.min_seconds", float, "Shortest speech kept, in seconds."),
    ("--max-seconds", "segmenter.max_seconds", float, "Longer utterances are emitted in parts."),
    ("--threshold-db", "segmenter.threshold_db", float, "Lowest speech level in dBFS."),
    ("--min-confidence", "events.min_confidence", float, "Below this confidence an event says 'uncertain'."),
    ("--labels", "events.labels", str, "Only events with these emotions, comma-separated (e.g. angry,sad)."),
    ("--only-changes", "events.only_changes", bool, "Only events whose emotion differs from the last one."),
    ("--cooldown", "events.cooldown_seconds", float, "Seconds after an event in which no other goes out."),
    ("--mqtt-host", "mqtt.host", str, "MQTT broker (credentials only from the config file)."),
    ("--mqtt-port", "mqtt.port", int, "MQTT broker port."),
]


def listen_options(command):
    """--config, --model, --runtime, logging and the overrides, shared by `listen`, `daemon` and `levels`."""
    for flag, key, kind, help_text in reversed(OVERRIDES):
        if kind is bool:
            flag = f"{flag}/--no-{flag[2:]}"
        command = click.option(flag, key.replace(".", "__"), type=kind, default=None, help=help_text)(command)
    command = click.option("--debug", "log_debug", is_flag=True, help="Log everything (--log-level debug).")(command)
    command = click.option(
        "--log-level",
        "log_level",
        type=click.Choice(LOG_LEVELS),
        default="info",
        show_default=True,
        help="Least important log lines shown (on stderr).",
    )(command)
    command = variant_option(command)
    command = runtime_option(command)
    command = model_option(command)
    return click.option(
        "--config",
        "-c",
        "config_file",
        type=click.Path(path_type=Path),
        default=None,
        help="TOML settings file (see firmware_scripts/ser.toml).",
    )(command)


LOG_LEVELS = ("debug", "info", "warning", "error")


def _configure_logging(options: dict) -> None:
    """Take --log-level and --debug out of ``options`` and set up the log on stderr with them."""
    import logging

    level = "debug" if options.pop("log_debug") else options.pop("log_level")
    options.pop("log_level", None)
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")


def _settings_loader(config_file, model, runtime, variant, overrides):
    """A function that (re)reads the settings file and applies the command line, for start and SIGHUP."""
    from edge.settings import load_settings, with_overrides

    values = {key.replace("__", "."): value for key, value in overrides.items()}
    if values.get("events.labels") is not None:
        values["events.labels"] = tuple(label.strip() for label in values["events.labels"].split(",") if label.strip())

    def load():
        return with_overrides(load_settings(config_file), model=model, runtime=runtime, variant=variant, **values)

    return load


class CannotStart(click.ClickException):
    """What restarting the service will not mend (settings, bundle, a missing extra): one line, and
    exit status 78 (EX_CONFIG), which the unit's RestartPreventExitStatus= keeps from restarting."""

    exit_code = 78


def _run_service(load_settings, output) -> None:
    import signal

    from edge.daemon import EmotionService
    from edge.systemd import ServiceNotifier

    try:
        service = EmotionService(load_settings(), output, ServiceNotifier(), reload_settings=load_settings)
    except SerError as error:
        raise CannotStart(str(error)) from None
    signal.signal(signal.SIGTERM, lambda *_: service.request_stop())
    signal.signal(signal.SIGINT, lambda *_: service.request_stop())
    signal.signal(signal.SIGHUP, lambda *_: service.request_reload())
    signal.signal(signal.SIGUSR1, lambda *_: service.request_pause(True))
    signal.signal(signal.SIGUSR2, lambda *_: service.request_pause(False))
    try:
        service.run()
    except SerError as error:  # only at start: a bad setting, bundle or installation
        raise CannotStart(str(error)) from None
    except BrokenPipeError:
        pass  # whoever read our stdout has gone; nothing more to say
