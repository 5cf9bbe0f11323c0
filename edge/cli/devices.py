"""``ser devices``: the audio inputs PortAudio lists, for ``--device``."""

from __future__ import annotations

import click

from edge.cli.common import main
from edge.errors import SerError


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
