"""``ser``: classify audio files on the device, inspect model bundles, and listen (one module per
command, sharing ``edge.cli.common``)."""

from edge.cli import classify, daemon, devices, info, levels, listen  # noqa: F401 - importing them registers the commands
from edge.cli.common import main

__all__ = ["main"]
