"""``ser levels``: the input's level, floor and speech probability about once a second, to tune the segmenter."""

from __future__ import annotations

import time

import click

from edge.cli.common import _configure_logging, _settings_loader, listen_options, main
from edge.errors import SerError


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
