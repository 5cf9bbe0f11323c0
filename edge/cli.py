"""``ser``: classify audio files on the device and inspect model bundles."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from edge import process

process.tune()  # before numpy loads

import click

from edge.config import DEFAULT_MODEL, VARIANTS
from edge.errors import SerError
from edge.runtime import RUNTIME_NAMES


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


@click.group()
@click.version_option(package_name="edge-ser")
def main():
    """Speech emotion recognition on the device."""


_worker_classifier = None  # in a `ser classify --jobs` worker process: its own loaded bundle


def _start_worker(bundle_path: str, runtime: str | None, variant: str) -> None:
    global _worker_classifier
    from edge.bundle import load_bundle
    from edge.classifier import Classifier

    _worker_classifier = Classifier(load_bundle(bundle_path, runtime=runtime, variant=variant))


def _classify_or_error(classifier, path: Path):
    """The file's Prediction, or the SerError saying why it cannot be classified."""
    try:
        return classifier.classify_file(path)
    except SerError as error:
        return error


def _classify_in_worker(path: Path):
    return _classify_or_error(_worker_classifier, path)


def _results(classifier, files: list[Path], jobs: int):
    """Each file's Prediction or SerError, in the files' order; with ``jobs`` > 1 computed by that
    many worker processes, each with the same bundle, runtime and variant as ``classifier``. If a
    worker dies (a crash in a decoder or interpreter), one line instead of a traceback; the files
    after the last one printed were not classified."""
    if jobs <= 1:
        yield from (_classify_or_error(classifier, path) for path in files)
        return
    import multiprocessing  # only here: the pool's modules cost a one-file start 15 ms
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    bundle = classifier.bundle
    context = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else None)
    try:
        with ProcessPoolExecutor(
            jobs, mp_context=context, initializer=_start_worker, initargs=(str(bundle.path), bundle.runtime.name, bundle.variant)
        ) as pool:
            yield from pool.map(_classify_in_worker, files)
    except BrokenProcessPool:
        raise click.ClickException("a worker process died; run again with --jobs 1 to find the file that kills it") from None


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@model_option
@runtime_option
@variant_option
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line, for programs.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Files classified at once, each in its own process (default: the number of cores).",
)
def classify(paths, model, runtime, variant, as_json, jobs):
    """Classify audio FILES and FOLDERS: emotion, confidence and per-class scores per file.

    A file that cannot be classified is reported on one line and the others still run; the exit
    status is 1 if any file failed. Output comes in the order of the files, however many jobs.
    """
    from edge.classifier import Classifier

    bundle = _load(model, runtime, variant)
    classifier = Classifier(bundle)
    click.echo(f"model {bundle.manifest.name} ({bundle.variant}, {bundle.path}) on {bundle.runtime}", err=True)
    labels = bundle.manifest.labels
    files = expand_inputs(paths)
    if not files:
        raise click.ClickException("no audio files found in " + ", ".join(map(str, paths)))
    if not as_json:
        click.echo(f"{'file':40} {'emotion':10} {'conf':>5}  " + " ".join(f"{label[:5]:>5}" for label in labels))
    failures = 0
    results = _results(classifier, files, min(jobs or os.cpu_count() or 1, len(files)))
    for path, result in zip(files, results):
        if isinstance(result, SerError):
            failures += 1
            if as_json:
                click.echo(json.dumps({"file": str(path), "error": str(result)}))
            click.echo(f"error: {result}", err=True)
        elif as_json:
            record = {
                "file": str(path),
                "emotion": result.emotion,
                "confidence": round(result.confidence, 4),
                "scores": {k: round(v, 4) for k, v in result.scores.items()},
                "duration": round(result.duration, 3),
                "windows": result.windows,
            }
            click.echo(json.dumps(record))
        else:
            scores = " ".join(f"{result.scores[label]:5.2f}" for label in labels)
            click.echo(f"{str(path)[-40:]:40} {result.emotion:10} {result.confidence:5.2f}  {scores}")
    if failures:
        click.echo(f"{failures} of {len(files)} file(s) could not be classified", err=True)
        sys.exit(1)


@main.command()
@model_option
@runtime_option
@variant_option
def info(model, runtime, variant):
    """Print a bundle's manifest and verify every model file's hash and the frontend fingerprint."""
    from edge.bundle import verified_model_file

    bundle = _load(model, runtime, variant)
    manifest = bundle.manifest
    try:
        for name, (file, sha256) in manifest.model_files().items():
            verified_model_file(bundle.path, file, sha256)
    except SerError as error:
        raise click.ClickException(str(error)) from None
    click.echo(json.dumps(manifest.document, indent=2))
    click.echo(f"bundle: {bundle.path}", err=True)
    click.echo(f"runtime: {bundle.runtime}", err=True)
    click.echo(f"model files: {', '.join(f for f, _ in manifest.model_files().values())} (sha256 verified)", err=True)
    click.echo(f"variant: {bundle.variant} runs here", err=True)
    click.echo(f"fingerprint: {manifest.fingerprint} verified (this frontend reproduces it)", err=True)


@main.command()
def devices():
    """List audio input devices: index, name, channels and default rate (for --device)."""
    from edge.microphone import list_input_devices

    try:
        found = list_input_devices()
    except SerError as error:
        raise click.ClickException(str(error)) from None
    if not found:
        raise click.ClickException("no audio input device (is the sound server running?)")
    click.echo(f"{'index':>5}  {'name':40} {'channels':>8} {'rate':>7}  host API")
    for device in found:
        mark = " (default)" if device.is_default else ""
        click.echo(
            f"{device.index:>5}  {device.name[:40]:40} {device.channels:>8} {device.default_rate:>7}  {device.host_api}{mark}"
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


class HumanSink:
    """`ser listen`'s output: one readable line per utterance; status changes go to the log."""

    def publish(self, topic: str, payload: dict) -> None:
        if payload["type"] != "emotion":
            return
        clock = time.strftime("%H:%M:%S", time.localtime(payload["end"]))
        part = f"  (part {payload['part']})" if payload["part"] > 1 else ""
        top = sorted(payload["scores"].items(), key=lambda item: -item[1])[1:3]
        others = ", ".join(f"{label} {score:.2f}" for label, score in top)
        click.echo(
            f"{clock}  {payload['duration']:5.1f} s  {payload['emotion']:9} {payload['confidence']:.2f}   ({others}){part}"
        )


@main.command()
@listen_options
@click.option("--events", is_flag=True, help="Print the daemon's MQTT-style event lines instead.")
def listen(config_file, model, runtime, variant, events, **overrides):
    """Listen to the microphone and print the emotion of each utterance as it ends (Ctrl-C stops)."""
    from edge.events import StdoutSink

    _configure_logging(overrides)
    _run_service(_settings_loader(config_file, model, runtime, variant, overrides), StdoutSink() if events else HumanSink())


@main.command()
@listen_options
@click.option("--interval", default=1.0, show_default=True, help="Seconds between lines.")
@click.option("--seconds", type=float, default=None, help="Stop after this long (default: at Ctrl-C or the end of the input).")
def levels(config_file, model, runtime, variant, interval, seconds, **overrides):
    """Print, about once a second, the input's level, the noise floor the level gate uses, the
    threshold a block must pass, the speech detector's highest probability for a block that passed
    it, and how much counted as speech: to set threshold_db and speech_threshold for the room."""
    from edge.bundle import read_manifest, resolve_bundle_path
    from edge.daemon import READ_TIMEOUT, audio_input
    from edge.pipe import EndOfInput
    from edge.voice_activity import VoiceActivity

    _configure_logging(overrides)
    try:
        settings = _settings_loader(config_file, model, runtime, variant, overrides)()
        frontend = read_manifest(resolve_bundle_path(settings.model)).frontend
        source = audio_input(settings.capture, frontend.sample_rate)
        device = source.open()
    except SerError as error:
        raise click.ClickException(str(error)) from None
    try:
        voice = VoiceActivity(settings.segmenter, frontend.frame_step, frontend.sample_rate)
    except SerError as error:
        source.close()
        raise click.ClickException(str(error)) from None
    segmenter = settings.segmenter
    detector = (
        f" and the speech detector {voice.detector.name} gives it at least {segmenter.speech_threshold:g} (speech_threshold)"
        if voice.detector
        else ""
    )
    click.echo(
        f"{device.name}: a block is speech if it is above {segmenter.threshold_db:g} dBFS and {segmenter.noise_margin_db:g} dB "
        f"above the floor (threshold_db, noise_margin_db){detector}",
        err=True,
    )
    click.echo(f"{'time':8}  {'level':>10}  {'floor':>10}  {'threshold':>10}  {'speech p':>8}  speech")
    started = time.monotonic()
    next_line = started + interval
    try:
        while seconds is None or time.monotonic() - started < seconds:
            try:
                voice.push(source.read(READ_TIMEOUT))
            except EndOfInput:
                break
            except SerError as error:
                raise click.ClickException(str(error)) from None
            if time.monotonic() >= next_line:
                next_line += interval
                heard = voice.take_levels()
                click.echo(
                    f"{time.strftime('%H:%M:%S')}  {heard.level_db:6.1f} dBFS  {heard.floor_db:6.1f} dBFS  "
                    f"{heard.threshold_db:6.1f} dBFS  {heard.speech_probability:8.2f}  "
                    f"{'yes' if heard.speech else 'no '} {heard.speech:4.0%}"
                )
    except KeyboardInterrupt:
        pass
    finally:
        source.close()


@main.command()
@listen_options
@click.option("--forget", is_flag=True, help="Remove this device's Home Assistant entities and retained MQTT state, then exit.")
def daemon(config_file, model, runtime, variant, forget, **overrides):
    """Run as a service: events on stdout (one `<topic> <json>` line each) and MQTT; logs on stderr.

    Speaks systemd's notify protocol (READY, STATUS, WATCHDOG); SIGTERM stops, SIGHUP reloads the
    settings and the model (keeping the old model if the new one fails its checks), SIGUSR1 pauses
    listening and SIGUSR2 resumes it (as does MQTT's <prefix>/<device>/listening/set OFF / ON).
    """
    from edge.events import StdoutSink

    _configure_logging(overrides)
    load_settings = _settings_loader(config_file, model, runtime, variant, overrides)
    if forget:
        from edge.mqtt_device import forget as forget_device

        try:
            settings = load_settings()
            removed = forget_device(settings)
        except SerError as error:
            raise click.ClickException(str(error)) from None
        click.echo(
            f"removed {removed} Home Assistant entities and the retained state of {settings.device_id} from {settings.mqtt.host}"
            if settings.mqtt.host
            else "no MQTT broker configured: nothing to forget"
        )
        return
    _run_service(load_settings, StdoutSink())


if __name__ == "__main__":
    main(prog_name="ser")
