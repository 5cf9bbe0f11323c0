"""``ser daemon``: the listening service (systemd's), or ``--forget`` to remove the device from Home Assistant."""

from __future__ import annotations

import click

from edge.cli.common import _configure_logging, _run_service, _settings_loader, listen_options, main
from edge.errors import SerError


@main.command()
@listen_options
@click.option(
    "--forget",
    is_flag=True,
    help="Remove this device's Home Assistant entities and retained MQTT state, then exit (stop its daemon first).",
)
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
