"""``ser listen``: the microphone's utterances and their emotions, one readable line each."""

from __future__ import annotations

import time

import click

from edge.cli.common import _configure_logging, _run_service, _settings_loader, listen_options, main


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
